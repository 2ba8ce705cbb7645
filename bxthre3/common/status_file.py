"""A role process's own state, as a small JSON file the TUI that started it reads.

Why a file and not a pipe or a socket: a pipe that nobody drains blocks the writer (a host
must never stall on its UI), a socket would need its own protocol and security, and a
file replaced atomically (write + rename) is always whole, survives the reader being
slow or gone, and is trivial to test. Only the local UI reads it. It may hold the cluster token (the controller's
screen shows it), so it is written mode 0600 through a randomly named temporary file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("bxthre3.status_file")  # the name log lines show: kept from before the move to packages

STATUS_INTERVAL_S = 0.5
"""How often a role rewrites its status file: fast enough for a live screen, cheap for a phone."""

MAX_STATUS_BYTES = 4 * 1024 * 1024
"""A reader refuses bigger files (a status file is a few KB; anything larger is not ours)."""


class StatusFile:
    """Writes ``snapshot()`` to ``path`` at most every ``interval`` seconds, atomically."""

    def __init__(
        self, path: Path | str, *, interval: float = STATUS_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self.clock = clock
        self._next = 0.0
        self._failed = False

    def maybe_write(self, snapshot: Callable[[], dict[str, Any]]) -> bool:
        """Write if the interval has passed; for loops that own their state (no locking needed)."""
        now = self.clock()
        if now < self._next:
            return False
        self._next = now + self.interval
        return self.write(snapshot())

    def write(self, data: dict[str, Any]) -> bool:
        """Replace the file with ``data`` plus pid and wall time; a failure is logged once, never raised."""
        body = json.dumps({**data, "pid": os.getpid(), "written_at": time.time()}, default=str)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)  # 0600, O_EXCL
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(body)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            if not self._failed:
                log.warning("cannot write status file %s: %s", self.path, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def run(self, stop: threading.Event, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Write every interval until ``stop``, for roles whose state is guarded by a lock."""
        while not stop.is_set():
            try:
                self.write(snapshot())
            except Exception:  # a snapshot bug must not kill the role it describes
                log.exception("status snapshot failed")
            stop.wait(self.interval)

    def start_thread(self, stop: threading.Event, snapshot: Callable[[], dict[str, Any]]) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop, snapshot), name="bxthre3-status", daemon=True)
        thread.start()
        return thread


def read_status_file(path: Path | str) -> dict[str, Any] | None:
    """The last snapshot, or None when there is none yet or it is not a status file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_STATUS_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_STATUS_BYTES:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
