"""The `bxthre3` command as a user runs it: real subprocesses, real ports on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, subprocess_env, wait_for

HELLO = str(REPO / "dags" / "hello_fanout.yaml")


def bxthre3(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bxthre3", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or subprocess_env(),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_prints_the_greetings_and_exits_zero(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**subprocess_env(), "BXTHRE3_LOG_DIR": str(tmp_path / "logs"), "TMPDIR": str(scratch)}
    proc = bxthre3("run", HELLO, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.rstrip("\n").splitlines()
    assert lines[-2:] == ["Hello, Bxthre3!", "Hola, Bxthre3!"]
    assert "succeeded" in lines[0]
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert {"controller.log", "host_local-1.log", "host_local-2.log"} <= logs, "$BXTHRE3_LOG_DIR (bootstrap sets it)"
    assert list(scratch.iterdir()) == [], "the hosts' temporary directory is gone"


def test_run_exits_non_zero_when_the_dag_fails(tmp_path: Path) -> None:
    dag = tmp_path / "fails.yaml"
    module = REPO / "tests" / "data" / "modules" / "exit3.wasm"
    dag.write_text(f"name: fails\ntasks:\n  - id: boom\n    module: {module}\n    retries: 0\n")
    proc = bxthre3("run", str(dag), "--json")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["state"] == "failed"
    assert result["tasks"][0]["reason"] == "exit_code"
    assert "something went wrong" in result["tasks"][0]["stderr"]


def test_run_refuses_a_verified_dag_in_one_line_saying_what_to_do(tmp_path: Path) -> None:
    """`verify: 2` needs two devices; the embedded cluster is one: refused at once rather than hanging."""
    dag = tmp_path / "verified.yaml"
    module = REPO / "tests" / "data" / "modules" / "exit3.wasm"
    dag.write_text(f"name: v\ndefaults:\n  verify: 2\ntasks:\n  - id: sure\n    module: {module}\n")
    proc = bxthre3("run", str(dag), timeout=20)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert f"{dag}: task 'sure': verify: 2 runs it on 2 distinct devices" in line
    assert "bxthre3 submit" in line and "verify: 1" in line


def test_run_makes_its_hosts_big_enough_for_the_largest_memory_asked_for(tmp_path: Path) -> None:
    """A task with `memory: 300` (above the embedded hosts' default 128 MB) runs: before, `run` printed
    "needs 300 MB; the largest host offers 128 MB" every 30 s until killed."""
    dag = tmp_path / "big.yaml"
    module = REPO / "tests" / "data" / "modules" / "allocate.wasm"
    dag.write_text(
        f"name: big\ntasks:\n  - id: needs_300\n    module: {module}\n    inputs: ['200']\n    memory: 300\n"
    )
    proc = bxthre3("run", str(dag), "--json", timeout=60)
    tasks = {t["task_id"]: t for t in json.loads(proc.stdout)["tasks"]}
    assert tasks["needs_300"]["state"] == "succeeded", proc.stderr
    assert "allocated 200 MiB" in tasks["needs_300"]["output"]
    assert proc.returncode == 0


def test_run_with_an_out_directory_it_cannot_make_stops_before_running(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    proc = bxthre3("run", HELLO, "--out", str(tmp_path / "file" / "out"), timeout=20)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [
        f"bxthre3: error: cannot create output directory {tmp_path}/file/out: Not a directory"
    ]


def test_validate_accepts_the_seed_dag() -> None:
    proc = bxthre3("validate", HELLO)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout and "4 tasks" in proc.stdout


FIXTURES = sorted((REPO / "tests" / "data" / "dags").glob("*.yaml"))


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if not f.name.startswith("valid")], ids=lambda p: p.stem)
def test_validate_rejects_each_bad_fixture_with_one_line(fixture: Path) -> None:
    proc = bxthre3("validate", str(fixture), timeout=30)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bxthre3: error: ") and fixture.name in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_dag_file_is_one_line() -> None:
    proc = bxthre3("validate", "no/such/dag.yaml")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no/such/dag.yaml" in proc.stderr


def test_status_without_controller_fails_fast_with_a_clear_message() -> None:
    proc = bxthre3("status", "--controller", f"127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert proc.returncode == 3
    assert "nothing is listening at 127.0.0.1:" in proc.stderr and "connection refused" in proc.stderr


def test_host_without_controller_says_how_to_give_one() -> None:
    # discovery listens on loopback only in tests (never on the machine's real interfaces)
    loopback_only = ("--discovery-bind", "127.255.255.255", "--discovery-timeout", "0.3", "--discovery-port", "45998")
    proc = bxthre3("host", *loopback_only)
    assert proc.returncode == 3 and "--controller" in proc.stderr and "no controller" in proc.stderr


def test_host_command_does_not_import_textual_or_wasm3() -> None:
    code = (
        "import sys, bxthre3.cli as c, bxthre3.commands.host_role, bxthre3.host.session, bxthre3.executor.parent;"
        "bad = [m for m in ('textual', 'wasm3', 'rich') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_controller_hosts_submit_wait_status_by_hand(tmp_path: Path) -> None:
    """The README's manual walk-through, each role its own process."""
    port = free_port()
    env = subprocess_env()
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [sys.executable, "-m", "bxthre3", *args],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(p)
        return p

    try:
        start("controller", "--host", "127.0.0.1", "--port", str(port), "--state-dir", str(tmp_path / "state"))
        for name in ("host-001", "host-002"):
            start("host", "--controller", f"127.0.0.1:{port}", "--node-id", name,
                  "--cache-dir", str(tmp_path / name))  # fmt: skip
        env_with_controller = {**env, "BXTHRE3_CONTROLLER": f"127.0.0.1:{port}"}

        def hosts_up() -> bool:
            p = bxthre3("status", "--json", "--timeout", "1", env=env_with_controller)
            return p.returncode == 0 and len(json.loads(p.stdout)["hosts"]) == 2

        wait_for(hosts_up, 30, "two hosts")
        proc = bxthre3("submit", HELLO, "--wait", env=env_with_controller)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        dag_id = lines[0]
        assert dag_id.startswith("dag-") and " " not in dag_id
        assert lines[-2:] == ["Hello, Bxthre3!", "Hola, Bxthre3!"]
        status = json.loads(bxthre3("status", "--json", env=env_with_controller).stdout)
        assert {h["node_id"] for h in status["hosts"]} == {"host-001", "host-002"}
        ran = sorted(t for h in status["hosts"] for t in h["recent"])
        assert ran == sorted(f"{dag_id}/{t}" for t in ("aggregate", "greet_1", "greet_2", "init"))
        res = json.loads(bxthre3("results", dag_id, "--json", env=env_with_controller).stdout)
        assert res["state"] == "succeeded"
        assert {t["task_id"]: t["output"] for t in res["tasks"]}["aggregate"] == "Hello, Bxthre3!\nHola, Bxthre3!\n"
        human = bxthre3("status", env=env_with_controller)
        assert human.returncode == 0 and "host-001" in human.stdout and "hello_fanout" in human.stdout
    finally:
        for p in started:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in started:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in started), [p.returncode for p in started]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_or_kill_stops_run_and_every_process_it_started(sig: signal.Signals, tmp_path: Path) -> None:
    import psutil

    dag = tmp_path / "spin.yaml"
    module = REPO / "tests" / "data" / "modules" / "spin.wasm"
    dag.write_text(f"name: spin\ntasks:\n  - id: forever\n    module: {module}\n    timeout: 120\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "run", str(dag)],
        env={**subprocess_env(), "TMPDIR": str(scratch)}, cwd=REPO, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        me = psutil.Process(proc.pid)

        def executors_busy() -> bool:
            # the run process's 2 hosts, and the executor of the one running the task (executors start lazily)
            return len(me.children(recursive=True)) >= 3 and any(
                c.cpu_percent(0.05) > 20 for c in me.children(recursive=True)
            )

        wait_for(executors_busy, 30, "the task to spin in an executor")
        family = me.children(recursive=True)
        assert len(list(scratch.iterdir())) == 1, "the hosts' stderr directory"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig is signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted" in err
    else:
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "Traceback" not in err
    gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, f"left running: {[p.pid for p in alive]}"
    assert list(scratch.iterdir()) == [], "its temporary directory went with it"
