"""A role the TUI runs: the same `bxthre3 <role>` a user would type, as a child process.

Why a child and not a thread: the controller's and host's loops would share the UI's GIL
(a 10,000-task DAG made key presses wait seconds), a crash in a role must not take the UI
with it, and quitting must stop everything, which a process group does reliably. The child
reports its own state through a status file (see `bxthre3.common.status_file`); its stderr goes
to a file the role screen tails, never to the terminal under the TUI.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from ..common import scratch
from ..common.logs import rotate_if_large
from ..common.processes import child_env, die_with_parent
from ..common.status_file import read_status_file

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
"""SIGTERM first (a node manager then stops its hosts, up to 5 s each); SIGKILL the group after this."""

MAX_TAIL_BYTES = 64 * 1024
"""The most of the role's output read per poll (a burst of log lines is skipped, not buffered)."""

MAX_OUTPUT_BYTES = 4 * 1024 * 1024
"""The role's captured output is emptied once read past this size: a UI left open for weeks must not fill
the temporary directory, and everything in it is also in the role's own rotated log file."""


class RoleProcess:
    """One running role: its command, status file and output, and how to stop it."""

    def __init__(self, role: str, argv: list[str], *, env: Mapping[str, str] | None = None) -> None:
        self.role = role
        self.workdir = scratch.make_dir(role)  # removed by stop(), at exit, or by the next start's sweep
        self.status_path = self.workdir / "status.json"
        self.output_path = self.workdir / "output.log"
        self.argv = [*argv, "--status-file", str(self.status_path)]
        self._offset = 0
        self._partial = b""
        with open(self.output_path, "ab") as output:  # append mode: emptying it (see MAX_OUTPUT_BYTES) is safe
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bxthre3", *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=child_env(dict(env) if env else None),
                start_new_session=True,  # its own group: stopped as one, and no terminal signals
                preexec_fn=die_with_parent,
            )
        log.info("started %s (pid %d): bxthre3 %s", role, self.proc.pid, " ".join(self.argv))

    @property
    def command_line(self) -> str:
        return shlex.join(["bxthre3", *self.argv[:-2]])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def returncode(self) -> int | None:
        return self.proc.poll()

    def status(self) -> dict[str, Any] | None:
        """The role's latest own snapshot (None until it has written one)."""
        data = read_status_file(self.status_path)
        if data is not None and data.get("pid") != self.proc.pid:
            return None  # not written by our child
        return data

    def host_pids(self) -> list[int]:
        """PIDs of the hosts this role's node manager runs (from its status)."""
        status = self.status() or {}
        hosts = (status.get("node_manager") or {}).get("hosts") or []
        return [h["pid"] for h in hosts if isinstance(h, dict) and isinstance(h.get("pid"), int)]

    def new_output_lines(self) -> list[str]:
        """Lines the role wrote since the last call (at most the last MAX_TAIL_BYTES of them)."""
        try:
            size = self.output_path.stat().st_size
            if size < self._offset:
                self._offset, self._partial = 0, b""
            if size - self._offset > MAX_TAIL_BYTES:
                self._offset, self._partial = size - MAX_TAIL_BYTES, b""
            with open(self.output_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(MAX_TAIL_BYTES)
        except OSError:
            return []
        self._offset += len(chunk)
        if self._offset >= size > MAX_OUTPUT_BYTES:  # all read: nothing is lost by emptying it
            rotate_if_large(self.output_path, MAX_OUTPUT_BYTES, backups=0)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def tail(self, lines: int = 5) -> list[str]:
        """The last ``lines`` lines of its output, without moving the screen's read position."""
        try:
            with open(self.output_path, "rb") as f:
                f.seek(max(0, self.output_path.stat().st_size - 8192))
                data = f.read()
        except OSError:
            return []
        return [line.decode("utf-8", "replace") for line in data.splitlines() if line.strip()][-lines:]

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait up to ``grace``, then SIGKILL the whole process group; returns the exit code."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM for %.0f s: SIGKILL", self.role, self.proc.pid, grace)
        self._signal_group(signal.SIGKILL)  # whatever of the group is left (hosts of a killed manager)
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        scratch.remove(self.workdir)
        return code

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def wait_for_status(process: RoleProcess, timeout: float, key: str) -> dict[str, Any] | None:
    """Poll until the role's status has ``key`` (or it exits, or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = process.status()
        if status is not None and status.get(key):
            return status
        if process.returncode() is not None:
            return None
        time.sleep(0.05)
    return None
