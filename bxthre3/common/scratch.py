"""Temporary directories Bxthre3 makes, and how none of them outlives the process that made it.

Why this exists: the UI keeps each role's status file and output in a temporary directory, and
`bxthre3 run` keeps its hosts' stderr in another; when the UI was killed, ``/tmp/bxthre3-all-*``
stayed behind for good. Now every such directory

- is removed by its owner when done (:func:`remove`), and at interpreter exit (``atexit``) if not;
- is removed on SIGTERM and SIGHUP too, in the commands that call :func:`exit_on_termination_signals`
  (the signals then unwind the program like an exception, so ``finally`` blocks and ``atexit`` run);
- carries an owner record (pid, the process's start time, its PID namespace), so a directory whose
  owner died by SIGKILL, which nothing can catch, is swept by the next Bxthre3 process that makes one
  (:func:`make_dir`) or starts the UI (:func:`sweep_stale`).

The start time guards against a recycled pid keeping a stale directory forever; the namespace keeps a
process in another PID namespace (a test's container) from taking a live owner for a dead one.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

PREFIX = "bxthre3-"
"""Every directory made here is ``<tmp>/bxthre3-<kind>-<random>``."""

OWNER_FILE = ".bxthre3-owner"
"""The owner record inside each directory; a directory without one is never swept."""

MAX_SWEEP_ENTRIES = 10_000
"""The most temporary-directory entries one sweep looks at (a bound, not a limit anyone should reach)."""


@dataclass(frozen=True)
class Owner:
    """Who made a directory, precisely enough to tell whether that process still runs."""

    pid: int
    started: str
    """The process's start time as the kernel reports it ("" when unknown: only the pid is checked)."""
    pid_namespace: str
    """The PID namespace the pid belongs to ("" when unknown)."""

    @classmethod
    def current(cls) -> Owner:
        return cls(os.getpid(), process_start_time(os.getpid()) or "", _pid_namespace())

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, text: str) -> Owner | None:
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["started"]), str(data["pid_namespace"]))
        except (ValueError, TypeError, KeyError):
            return None

    def alive(self) -> bool:
        """False only when this owner is known to be gone; a process we cannot see counts as alive."""
        if self.pid_namespace != _pid_namespace():
            return True
        started = process_start_time(self.pid)
        if started is None:
            return False
        return not self.started or started == self.started


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started (an opaque string, stable for the process's life), or None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        pass
    try:
        import psutil
    except ImportError:  # not every platform has a wheel
        psutil = None  # type: ignore[assignment]
    if psutil is not None:
        try:
            return repr(psutil.Process(pid).create_time())
        except psutil.NoSuchProcess:
            return None
        except psutil.Error:
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


_lock = threading.Lock()
_owned: set[Path] = set()
_swept = False
_atexit_registered = False


def make_dir(kind: str) -> Path:
    """A new private (0700) directory ``<tmp>/bxthre3-<kind>-*``, removed at exit if :func:`remove` is not called.

    The first call in a process also sweeps directories left by dead owners.
    """
    global _swept, _atexit_registered
    with _lock:
        sweep = not _swept
        _swept = True
    if sweep:
        sweep_stale()
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
    (path / OWNER_FILE).write_text(Owner.current().encode())
    with _lock:
        _owned.add(path)
        if not _atexit_registered:
            atexit.register(remove_all)
            _atexit_registered = True
    return path


def remove(path: Path) -> None:
    """Delete a directory from :func:`make_dir` (idempotent; errors ignored, the sweep retries later)."""
    with _lock:
        _owned.discard(path)
    shutil.rmtree(path, ignore_errors=True)


def remove_all() -> None:
    """Delete every directory this process made and still holds (runs at interpreter exit)."""
    with _lock:
        paths = list(_owned)
    for path in paths:
        remove(path)


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Delete this user's ``bxthre3-*`` directories under ``root`` (default: the temp dir) whose owner is gone."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir())
    uid = os.getuid() if hasattr(os, "getuid") else None
    removed: list[Path] = []
    try:
        with os.scandir(root) as entries:
            candidates = []
            for count, entry in enumerate(entries):
                if count >= MAX_SWEEP_ENTRIES:
                    break
                if entry.name.startswith(PREFIX) and entry.is_dir(follow_symlinks=False):
                    candidates.append(entry)
    except OSError:
        return removed
    for entry in candidates:
        try:
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            owner = Owner.decode((Path(entry.path) / OWNER_FILE).read_text())
        except OSError:
            continue  # no owner record (not ours, or being made right now): never touched
        if owner is not None and not owner.alive():
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def exit_on_termination_signals() -> None:
    """Make SIGTERM and SIGHUP raise ``SystemExit(128 + signal)`` in the main thread, once.

    By default both end Python at once, skipping ``finally`` and ``atexit``: the temporary
    directories would stay. After the first such signal the default comes back, so a second one
    still ends a process stuck in its clean-up. Handlers set by someone else are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        for sig in TERMINATION_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    for sig in TERMINATION_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, handler)
