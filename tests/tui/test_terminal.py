"""`bxthre3 all` in a real pseudo-terminal: the TUI runs the roles as children, no log line reaches the
screen, and `q` stops every process it started and removes its temporary directories."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import sys
import termios
import time
from pathlib import Path

import psutil

from tests.conftest import subprocess_env

LOG_RECORD = re.compile(rb"\d\d:\d\d:\d\d (INFO|WARNING|ERROR) ")
"""How a role's log line starts (logs.py): it must never be written to the terminal under the TUI."""


def read_for(fd: int, seconds: float, until: bytes | None = None) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end and (until is None or until not in out):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return out


def roles(processes: list[psutil.Process]) -> set[str]:
    """The `bxthre3 ROLE` each process runs (`python -m bxthre3 controller ...`), of those still there."""
    found = set()
    for p in processes:
        try:
            argv = p.cmdline()
        except psutil.Error:
            continue
        if argv[1:3] == ["-m", "bxthre3"] and len(argv) > 3:
            found.add(argv[3])
    return found


def test_all_on_a_terminal_shows_the_monitor_and_q_stops_everything(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**subprocess_env(), "TERM": "xterm-256color", "BXTHRE3_LOG_DIR": str(tmp_path), "TMPDIR": str(scratch)}
    cmd = [sys.executable, "-m", "bxthre3", "all", "--port", "0", "--state-dir", ":memory:", "--max-nodes", "1"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes `bxthre3 all` on the pseudo-terminal
        os.execvpe(cmd[0], cmd, env)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        screen = read_for(fd, 30, until=b"tasks/s")
        assert b"tasks/s" in screen, "the monitor's totals line never appeared"
        deadline = time.monotonic() + 20
        family: list[psutil.Process] = []
        while time.monotonic() < deadline and not {"controller", "host"} <= roles(family):
            family = psutil.Process(pid).children(recursive=True)  # the controller and its node manager's host
            screen += read_for(fd, 0.3)
        assert {"controller", "host"} <= roles(family), f"expected the controller and a host under the UI, got {family}"
        screen += read_for(fd, 1.0)
        family = psutil.Process(pid).children(recursive=True)  # and whatever they started since (an executor)
        found = LOG_RECORD.search(screen)
        # (the line itself, to tell which process wrote it: seen once, in a CI run under pytest -n)
        assert found is None, f"a log line was written to the terminal: {screen[found.start() : found.start() + 240]!r}"
        assert [p.name[: len("bxthre3-all-")] for p in scratch.iterdir()] == ["bxthre3-all-"], "the role's own dir"
        os.write(fd, b"q")
        read_for(fd, 20, until=b"\x1b[?1049l")  # the TUI leaves the alternate screen on exit
        end = time.monotonic() + 15
        status = None
        while time.monotonic() < end and status is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
            time.sleep(0.1)
        assert status == 0, f"bxthre3 all did not exit cleanly after q (status {status})"
        psutil.wait_procs(family, timeout=10)
        assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert list(scratch.iterdir()) == [], "the UI removed its temporary directories"
        assert (tmp_path / "ui_node.log").is_file(), "the UI's log is in $BXTHRE3_LOG_DIR"
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
