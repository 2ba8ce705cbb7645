"""Where Bxthre3 puts files: logs in the XDG state directory unless told otherwise, files that a child
writes directly rotated like the logs, temporary directories gone once their owner is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import bxthre3
from bxthre3.common import scratch
from bxthre3.common.logs import LOG_DIR_ENV, LOG_MAX_BYTES, default_log_dir, role_log_file, rotate_if_large
from bxthre3.common.scratch import OWNER_FILE, Owner
from bxthre3.node.manager import NodeManager, ScalingPolicy
from bxthre3.wire.addresses import Address
from tests.conftest import subprocess_env, wait_for


def test_logs_go_to_the_xdg_state_directory_unless_bxthre3_log_dir_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(LOG_DIR_ENV)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    assert default_log_dir() == tmp_path / "state" / "bxthre3" / "logs"
    assert role_log_file(None, "controller.log") == tmp_path / "state" / "bxthre3" / "logs" / "controller.log"
    assert role_log_file(Path("mine.log"), "controller.log") == Path("mine.log"), "--log-file still wins"
    monkeypatch.setenv(LOG_DIR_ENV, "here")
    assert default_log_dir() == tmp_path / "here", "relative: made absolute once, the same for every child"


def test_rotation_keeps_a_writer_that_holds_the_file_appending_at_its_start(tmp_path: Path) -> None:
    path = tmp_path / "host_a.stderr"
    with open(path, "ab") as writer:  # as the node manager hands it to a host
        writer.write(b"a" * 100)
        writer.flush()
        assert not rotate_if_large(path, max_bytes=100), "not past the limit yet"
        writer.write(b"b")
        writer.flush()
        assert rotate_if_large(path, max_bytes=100, backups=2)
        writer.write(b"after")
        writer.flush()
        assert path.read_bytes() == b"after", "the writer goes on at the new end, no hole before it"
        assert path.with_name("host_a.stderr.1").read_bytes() == b"a" * 100 + b"b"
        writer.write(b"c" * 200)
        writer.flush()
        assert rotate_if_large(path, max_bytes=100, backups=2)
        assert path.with_name("host_a.stderr.2").read_bytes() == b"a" * 100 + b"b"
        assert path.with_name("host_a.stderr.1").read_bytes() == b"after" + b"c" * 200
        writer.write(b"d" * 200)
        writer.flush()
        assert rotate_if_large(path, max_bytes=100, backups=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host_a.stderr", "host_a.stderr.1", "host_a.stderr.2"]
    assert path.with_name("host_a.stderr.2").read_bytes() == b"after" + b"c" * 200, "the oldest copy was dropped"
    assert not rotate_if_large(tmp_path / "missing.stderr", max_bytes=1)


def _owned_dir(root: Path, name: str, owner: Owner | None) -> Path:
    path = root / f"bxthre3-{name}"
    path.mkdir()
    (path / "status.json").write_text("{}")
    if owner is not None:
        (path / OWNER_FILE).write_text(owner.encode())
    return path


def test_the_sweep_removes_only_directories_whose_owner_is_gone(tmp_path: Path) -> None:
    me = Owner.current()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_owner = Owner(gone.pid, scratch.process_start_time(gone.pid) or "", me.pid_namespace)
    gone.wait(10)
    dead = _owned_dir(tmp_path, "all-dead", gone_owner)
    recycled = _owned_dir(tmp_path, "all-recycled", Owner(me.pid, "1", me.pid_namespace))  # our pid, not us
    live = _owned_dir(tmp_path, "all-live", me)
    elsewhere = _owned_dir(tmp_path, "all-elsewhere", Owner(gone.pid, "", "pid:[1]" + me.pid_namespace))
    no_record = _owned_dir(tmp_path, "all-old", None)
    unrelated = tmp_path / "someone-else"
    unrelated.mkdir()
    assert sorted(scratch.sweep_stale(tmp_path)) == sorted([dead, recycled])
    assert not dead.exists() and not recycled.exists()
    assert live.exists() and elsewhere.exists() and no_record.exists() and unrelated.exists()


def test_make_dir_is_private_has_an_owner_and_sweeps_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(scratch, "_swept", False)
    stale = _owned_dir(tmp_path, "hosts-stale", Owner(2**22 + 7, "", Owner.current().pid_namespace))  # > pid_max
    path = scratch.make_dir("probe")
    try:
        assert not stale.exists(), "the first directory a process makes sweeps the dead owners' ones"
        assert path.parent == tmp_path and path.name.startswith("bxthre3-probe-")
        assert oct(path.stat().st_mode & 0o777) == "0o700"
        assert Owner.decode((path / OWNER_FILE).read_text()) == Owner.current()
    finally:
        scratch.remove(path)
    assert not path.exists()


PROBE = """
import sys, time
import bxthre3
from bxthre3.common import scratch
scratch.exit_on_termination_signals()
print(scratch.make_dir("probe"), flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_removes_the_directories_and_a_sigkill_leaves_them_to_the_sweep(
    sig: signal.Signals, tmp_path: Path
) -> None:
    env = {**subprocess_env(), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        path = Path(proc.stdout.readline().strip())
        assert path.parent == tmp_path and path.is_dir()
        proc.send_signal(sig)
        code = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if sig is signal.SIGKILL:
        assert path.exists(), "nothing runs on SIGKILL"
        assert scratch.sweep_stale(tmp_path) == [path], "the next start sweeps what a killed process left"
        assert not path.exists()
    else:
        assert code == 128 + sig, "ends like a signal death (a shell sees 128 + N)"
        assert not path.exists()
        assert os.listdir(tmp_path) == []


CHATTY_HOST = """
import os, sys, time
sys.stdout.buffer.write(b"x" * (int(sys.argv[1]) + 1))  # more than a log file may hold
sys.stdout.flush()
for _ in range(600):  # at most 30 s
    if os.path.exists(sys.argv[2]):
        print("after rotation", flush=True)
        break
    time.sleep(0.05)
time.sleep(30)
"""


class ChattyHostManager(NodeManager):
    """A real node manager whose hosts are processes that print as much as a busy host's console log."""

    go_file: Path

    def _command(self, host: object) -> list[str]:
        return [sys.executable, "-c", CHATTY_HOST, str(LOG_MAX_BYTES), str(self.go_file)]


def test_a_running_hosts_stderr_file_rotates_like_its_log(tmp_path: Path) -> None:
    manager = ChattyHostManager(
        Address("127.0.0.1", 9), ScalingPolicy(ram_per_node=128, min_free_ram=0, max_nodes=1),
        name="dev", probe=lambda: 10_000, log_dir=tmp_path, interval=0.05,
    )  # fmt: skip
    manager.go_file = tmp_path / "go"
    try:
        manager.tick()  # starts the one host
        [stderr] = list(tmp_path.glob("*.stderr"))
        wait_for(lambda: stderr.stat().st_size > LOG_MAX_BYTES, 20, "the host's output")
        manager.tick()  # the host is still running: its file is rotated under it
        backup = stderr.with_name(stderr.name + ".1")
        assert backup.stat().st_size == LOG_MAX_BYTES + 1 and stderr.stat().st_size == 0
        manager.go_file.touch()
        wait_for(lambda: stderr.read_bytes() == b"after rotation\n", 20, "the host's next line")
        assert [h.proc is not None and h.proc.poll() is None for h in manager.hosts] == [True], "never restarted"
    finally:
        manager.stop_all(grace=2)


def test_the_uis_copy_of_a_roles_output_is_emptied_once_read_past_its_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bxthre3.tui import role_process

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(role_process, "MAX_OUTPUT_BYTES", 1000)
    process = role_process.RoleProcess("probe", ["--version"])  # a real child that prints one line and exits
    try:
        wait_for(lambda: process.returncode() is not None, 20, "bxthre3 --version")
        assert process.new_output_lines() == [f"bxthre3 {bxthre3.__version__}"]
        with open(process.output_path, "ab") as role:  # as if the role went on printing
            role.write(b"line\n" * 300)
        lines: list[str] = []
        for _ in range(50):  # MAX_TAIL_BYTES per call: bounded
            new = process.new_output_lines()
            lines += new
            if not new:
                break
        assert lines == ["line"] * 300, "everything shown before emptying"
        assert process.output_path.stat().st_size == 0
        with open(process.output_path, "ab") as role:
            role.write(b"next\n")
        assert process.new_output_lines() == ["next"], "read from the start again"
    finally:
        process.stop(grace=2)
    assert not process.workdir.exists()
