"""`bxthre3 run` and `submit --wait` say why a DAG stops moving: real CLI processes, controller and hosts.

Before, a stuck DAG showed a bar frozen at n/total and nothing else, whatever the cause.
"""

from __future__ import annotations

import os
import pty
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.client.progress import STALL_NOTICE_S as DEFAULT_STALL_NOTICE_S
from tests.conftest import TEST_MODULES, WASM_MODULES, HostProcesses, RunningController, subprocess_env, wait_for_hosts

STALL_NOTICE_S = 2.0
"""`--stall-notice`: the notice comes after this long without progress (10 s by default: waiting that out
only made the tests slower, the threshold itself is checked below and in tests/unit/test_progress.py)."""

WAIT_S = 40.0
"""Time for every asserted line to appear; the notice's own wait is a small part, the rest is start-up
on a busy machine."""

NOTICE = re.compile(r"no progress for (\d+(?:\.\d)?) s \(1/4 done\); waiting on:")
"""The notice's headline once the DAG has settled: 'quick' done, the rest stuck."""


def noticed_after(text: str) -> float:
    """The idle time the settled DAG's first notice reports: not before `--stall-notice`, and well before
    the default (so the option is what decided when it came)."""
    found = NOTICE.search(text)
    assert found, text
    idle = float(found.group(1))
    assert STALL_NOTICE_S <= idle < DEFAULT_STALL_NOTICE_S, text
    return idle


def stuck_dag(tmp_path: Path) -> Path:
    """'quick' ends, 'forever' spins (60 s timeout), 'huge' needs 512 MB (more than a default host offers;
    `run`'s own hosts offer it), 'after' waits for 'forever'."""
    for name, src in (("noop.wasm", WASM_MODULES), ("spin.wasm", TEST_MODULES)):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    tasks = [
        {"id": "quick", "module": "noop.wasm"},
        {"id": "forever", "module": "spin.wasm", "timeout": 60},
        {"id": "huge", "module": "noop.wasm", "memory": 512},
        {"id": "after", "module": "noop.wasm", "depends_on": ["forever"]},
    ]
    path = tmp_path / "stuck.yaml"
    path.write_text(yaml.safe_dump({"name": "stuck", "tasks": tasks}, sort_keys=False))
    return path


def read_until(fd: int, needles: list[str], timeout: float) -> str:
    """Everything read from `fd` until every needle appeared (or the time is up, or EOF)."""
    text = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not all(n in text for n in needles) and time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty whose other side closed
                break
            if not chunk:
                break
            text += chunk.decode("utf-8", "replace")
    return text


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the CLI stops its local cluster itself
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_run_without_a_terminal_prints_plain_lines_and_why_the_dag_is_stuck(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "run", str(stuck_dag(tmp_path)), "--hosts", "1", "--engine", "wasm3",
         "--stall-notice", str(STALL_NOTICE_S)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env(),
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        needles = ["stuck: 1/4 done, 1 running", "(1/4 done); waiting on:", "running: forever on local-1 for",
                   "  1 pending: their upstream"]  # fmt: skip
        text = read_until(proc.stderr.fileno(), needles, WAIT_S)
    finally:
        stop(proc)
        proc.stderr.close()
    lines = text.splitlines()
    assert "stuck: 1/4 done, 1 running" in lines, text
    assert any(NOTICE.fullmatch(line) for line in lines), text
    noticed_after(text)
    assert "  1 pending: their upstream tasks have not finished" in lines, text
    # `run` starts hosts that offer the DAG's largest memory: 'huge' waits for a slot at most, never for RAM.
    assert "needs 512 MB" not in text, text
    assert "\x1b" not in text  # no terminal: no escape sequences


def test_submit_wait_on_a_terminal_draws_a_bar_and_explains_the_stall_above_it(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    hosts.start(controller.address, "only")
    wait_for_hosts(client, 1)
    master, slave = pty.openpty()
    env = {**subprocess_env(), "TERM": "xterm-256color", "COLUMNS": "160"}
    cmd = [sys.executable, "-m", "bxthre3", "submit", str(stuck_dag(tmp_path)), "--wait",
           "--controller", str(controller.address), "--stall-notice", str(STALL_NOTICE_S)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    try:
        needles = ["(1/4 done); waiting on:", "running: forever on only for", "needs 512 MB", "pending"]
        text = read_until(master, needles, WAIT_S)
    finally:
        stop(proc)
        os.close(master)
    assert "━" in text and "stuck" in text, text  # rich's bar
    noticed_after(text)
    assert "1 ready: needs 512 MB; the largest host offers 128 MB" in text, text
