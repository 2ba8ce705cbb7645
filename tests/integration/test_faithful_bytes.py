"""Task bytes end to end: exact through the protocol, the journal, `results --json` and `run --out`,
and never able to drive the terminal that shows them (the real CLI on a pseudo-terminal)."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, subprocess_env, wait_for
from tests.integration.test_cli import bxthre3, free_port

ECHO_BOTH = REPO / "tests" / "data" / "modules" / "echo_both.wasm"

BINARY = bytes(range(256)) * 3 + b"\x00\xff\xfe not UTF-8 \xc3\x28 \x00"
TEXT = (
    "plain\ttabbed\nabc\rdef\n\x1b[2J\x1b[5;7Hmoved\x1b]0;pwned\x07 back\x08space \u009b31m c1 "
    "\u202eevil\u202c [bold red]not markup[/] nul\x00 end\n"
)
BIG = os.urandom(300_000)  # over 256 KiB: the journal keeps it in a file beside the database

# What a hostile output must never put on a terminal (ESC sequences, OSC title, BEL, BS, CR, C1, bidi, NUL)
RAW_CONTROLS = (b"\x1b[2J", b"\x1b[5;7H", b"\x1b]0;", b"\x07", b"\x08", b"abc\rdef", b"\xc2\x9b", "\u202e".encode(),
                b"\x00")  # fmt: skip


def decoded(value: object) -> bytes:
    """`results --json` gives text as a string and anything else as {"base64": ...}."""
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    assert isinstance(value, str)
    return value.encode("utf-8")


def write_dag(directory: Path, *, big: bool = False, failing: bool = True) -> Path:
    (directory / "binary.bin").write_bytes(BINARY)
    (directory / "text.txt").write_bytes(TEXT.encode())
    tasks = [
        f"  - id: bin\n    module: {ECHO_BOTH}\n    inputs: ['file:binary.bin']\n",
        f"  - id: text\n    module: {ECHO_BOTH}\n    inputs: ['file:text.txt']\n",
    ]
    if failing:
        tasks.append(f"  - id: fails\n    module: {ECHO_BOTH}\n    inputs: ['file:text.txt', '3']\n    retries: 0\n")
    if big:
        (directory / "big.bin").write_bytes(BIG)
        tasks.append(f"  - id: big\n    module: {ECHO_BOTH}\n    inputs: ['file:big.bin']\n")
    dag = directory / "bytes.yaml"
    dag.write_text("name: bytes\ntasks:\n" + "".join(tasks))
    return dag


def check_exact(results: dict, *, big: bool) -> None:
    tasks = {t["task_id"]: t for t in results["tasks"]}
    assert decoded(tasks["bin"]["output"]) == BINARY and decoded(tasks["bin"]["stderr"]) == BINARY
    assert tasks["text"]["output"] == TEXT and tasks["text"]["stderr"] == TEXT
    assert tasks["fails"]["reason"] == "exit_code" and tasks["fails"]["output"] is None
    assert decoded(tasks["fails"]["stderr"]) == TEXT.encode()
    if big:
        assert decoded(tasks["big"]["output"]) == BIG
        assert decoded(tasks["big"]["stderr"]) == BIG[-64 * 1024 :]  # the kept tail, exactly


def test_run_json_and_out_carry_every_byte(tmp_path: Path) -> None:
    dag = write_dag(tmp_path)
    proc = bxthre3("run", str(dag), "--json", "--hosts", "1", "--out", str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stderr  # the failing task fails the DAG
    check_exact(json.loads(proc.stdout), big=False)
    assert (tmp_path / "out" / "bin.bin").read_bytes() == BINARY
    assert (tmp_path / "out" / "text.txt").read_bytes() == TEXT.encode()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bin.bin", "text.txt"]


def test_results_from_the_journal_are_exact_after_a_controller_restart(tmp_path: Path) -> None:
    port = free_port()
    env = {**subprocess_env(), "BXTHRE3_CONTROLLER": f"127.0.0.1:{port}"}
    state = tmp_path / "state"
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [sys.executable, "-m", "bxthre3", *args],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(p)
        return p

    def controller() -> subprocess.Popen[bytes]:
        return start("controller", "--host", "127.0.0.1", "--port", str(port), "--state-dir", str(state))

    try:
        first = controller()
        start("host", "--node-id", "bytes-host", "--cache-dir", str(tmp_path / "cache"))

        def host_up() -> bool:
            p = bxthre3("status", "--json", "--timeout", "1", env=env)
            return p.returncode == 0 and len(json.loads(p.stdout)["hosts"]) == 1

        wait_for(host_up, 30, "the host")
        proc = bxthre3("submit", str(write_dag(tmp_path, big=True)), "--wait", "--json", env=env)
        assert proc.returncode == 1, proc.stderr
        document = json.loads(proc.stdout)  # stdout is the results document alone
        dag_id = document["dag_id"]
        check_exact(document, big=True)
        assert any(state.rglob("*")) and sum(p.stat().st_size for p in state.rglob("*") if p.is_file()) > len(BIG)

        first.send_signal(signal.SIGTERM)
        assert first.wait(10) == 0
        controller()
        wait_for(lambda: bxthre3("results", dag_id, "--json", env=env).returncode in (0, 1), 30, "the restart")
        check_exact(json.loads(bxthre3("results", dag_id, "--json", env=env).stdout), big=True)
    finally:
        for p in started:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in started:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def on_a_terminal(*args: str, timeout: float = 60) -> bytes:
    """Everything `bxthre3 ARGS` writes to a pseudo-terminal, until it exits."""
    env = {**subprocess_env(), "TERM": "xterm-256color", "COLUMNS": "200"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: `bxthre3 ...` with the pseudo-terminal as stdin, stdout and stderr
        os.execvpe(sys.executable, [sys.executable, "-m", "bxthre3", *args], env)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
        else:
            raise AssertionError(f"bxthre3 {args} still running after {timeout} s: {bytes(out)[-2000:]!r}")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    return bytes(out)


def test_a_terminal_sees_task_output_and_stderr_escaped(tmp_path: Path) -> None:
    out = on_a_terminal("run", str(write_dag(tmp_path)), "--hosts", "1")
    for raw in RAW_CONTROLS:
        assert raw not in out, raw
    # each shown escaped instead: once as the text task's output, once in the failed task's stderr
    for escaped in (b"abc\\rdef", b"\\x1b[2J", b"\\x1b]0;pwned\\x07", b"back\\x08space", b"\\x9b31m", b"\\u202eevil",
                    b"[bold red]not markup[/]", b"nul\\x00 end"):  # fmt: skip
        assert out.count(escaped) >= 2, (escaped, out[-3000:])
    assert re.search(rb"plain[\t ]+tabbed", out)  # a tab is harmless (rich may expand it)
    assert b"bytes of binary" in out  # the binary output as its size and a hex head


def test_a_pipe_gets_text_output_unmangled(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", "run", str(write_dag(tmp_path, failing=False)), "--hosts", "1"],
        capture_output=True, timeout=60, env=subprocess_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert TEXT.encode() in proc.stdout  # carriage returns and tabs included (rich would drop or expand them)
