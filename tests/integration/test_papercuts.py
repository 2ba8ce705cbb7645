"""Issue 17's papercuts, each reproduced through the real command or component that showed it.

Real processes, ZeroMQ on loopback and real hosts; each test says which papercut it pins down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bxthre3.cli import main
from bxthre3.client.connection import ControllerClient
from bxthre3.node.manager import HostState, NodeManager, ScalingPolicy
from bxthre3.wire.addresses import Address
from tests.conftest import HostProcesses, RunningController, subprocess_env, wait_for, wait_for_hosts

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def test_a_host_failing_the_same_way_at_start_is_given_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Papercut: a node manager restarted a host that crashed at start forever. Now: backoff, then one line."""
    now = [1000.0]
    manager = NodeManager(
        Address("127.0.0.1", 9),  # never reached: the host fails before it connects
        ScalingPolicy(ram_per_node=64, min_free_ram=0, max_nodes=1),
        name="cut",
        probe=lambda: 10_000,
        log_dir=tmp_path,
        clock=lambda: now[0],
        host_args=["--engine", "nonesuch"],  # a flag the host refuses at once (exit code 2)
        give_up_after=3,
    )
    try:
        manager.tick()  # starts cut-1
        delays = []
        for _ in range(3):
            [host] = manager.hosts
            assert host.proc is not None
            host.proc.wait(30)
            manager.tick()  # reaps it: backoff, or given up
            if host.state is HostState.GAVE_UP:
                break
            delays.append(host.restart_at - now[0])
            now[0] = host.restart_at
            manager.tick()  # restarts it
        assert delays == [1.0, 2.0]  # exponential
        [host] = manager.hosts
        assert host.state is HostState.GAVE_UP and host.proc is None
        now[0] += 3600
        manager.tick()
        assert manager.hosts == [host] and host.proc is None  # neither restarted nor replaced
        [line] = [r.getMessage() for r in caplog.records if "not restarting" in r.getMessage()]
        assert "cut-1 failed 3 times" in line and "exit code 2" in line and "--engine" in line
        assert manager.snapshot()["hosts"][0]["state"] == "gave_up"
    finally:
        manager.stop_all(grace=1)


@pytest.mark.parametrize(
    "command",
    [
        ["host"],
        ["node-manager"],
        ["status"],
        ["submit", str(DAGS / "hello_fanout.yaml")],
        ["results", "d"],
        ["cancel", "d"],
        ["hosts"],
        ["hosts", "trust", "d"],
        ["ui"],
    ],
)
def test_bad_controller_addresses_get_one_line_on_every_command(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Papercut: `bxthre3 host --controller 'foo bar:5000'` printed a ZMQError traceback. (The TUI's forms
    go through the same parse_address: tests/unit/test_addresses.py.)"""
    assert main([*command, "--controller", "foo bar:5000"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("bxthre3: error: bad controller address 'foo bar:5000'") and err.count("\n") == 1, err


def test_submit_wait_json_out_and_results_task(
    controller: RunningController,
    client: ControllerClient,
    hosts: HostProcesses,
    tmp_path: Path,
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    """Papercuts: `submit --wait --json` printed the DAG id before the JSON; only `run` could save outputs;
    a redirected `submit --wait` dumped whole binary outputs as hex; one output could not be printed whole."""
    hosts.start(controller.address, "cut-host", slots=2)
    wait_for_hosts(client, 1)
    addr = ["--controller", str(controller.address)]
    out = tmp_path / "out"
    capfdbinary.readouterr()
    assert main(["submit", str(DAGS / "mandelbrot.yaml"), "--wait", "--json", "--out", str(out), *addr]) == 0
    stdout, stderr = capfdbinary.readouterr()
    document = json.loads(stdout)  # the whole of stdout is one JSON document
    dag_id = document["dag_id"]
    assert document["state"] == "succeeded" and dag_id.encode() in stderr
    saved = (out / "image.pgm").read_bytes()  # `submit --wait --out` saves outputs like `run --out`
    assert saved.startswith(b"P5") and f"wrote {out / 'image.pgm'}".encode() in stderr

    assert main(["results", dag_id, *addr]) == 0
    stdout, _ = capfdbinary.readouterr()
    assert len(stdout) < 20_000 < len(saved) and b"bytes of binary" in stdout  # a pipe gets a summary

    assert main(["results", dag_id, "--task", "image", *addr]) == 0
    assert capfdbinary.readouterr().out == saved  # one output, in full, byte for byte
    with pytest.MonkeyPatch.context() as mp:  # on a terminal binary is refused with what to do instead
        mp.setattr(sys.stdout, "isatty", lambda: True)
        assert main(["results", dag_id, "--task", "image", *addr]) == 2
    assert b"bytes of binary: redirect it" in capfdbinary.readouterr().err
    assert main(["results", dag_id, "--task", "nope", *addr]) != 0
    err = capfdbinary.readouterr().err
    assert b"nope" in err and b"Traceback" not in err

    assert main(["submit", str(DAGS / "hello_fanout.yaml"), "--json", *addr]) == 0
    assert set(json.loads(capfdbinary.readouterr().out)) == {"dag_id"}


def test_first_start_prints_how_to_join(tmp_path: Path) -> None:
    """Papercut: a controller with a persistent state dir never said how to join it."""
    state = tmp_path / "state"
    cmd = [
        sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", "0", "--no-beacon",
        "--state-dir", str(state), "--log-file", str(tmp_path / "c.log"),
    ]  # fmt: skip

    def start_and_read(marker: str) -> str:
        """Stderr of a controller start up to the line holding ``marker``, then the rest once it stopped."""
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=subprocess_env(), text=True)
        assert proc.stderr is not None
        seen = []
        try:
            for _ in range(50):  # bounded: a start prints a dozen lines at most
                seen.append(proc.stderr.readline())
                if marker in seen[-1] or not seen[-1]:
                    break
        finally:
            proc.terminate()
            _, rest = proc.communicate(timeout=10)
        return "".join(seen) + rest

    first = start_and_read("TOKEN:")
    port = first.split("bxthre3 controller listening on 127.0.0.1:")[1].split(",")[0]
    assert f"bxthre3 node-manager --controller 127.0.0.1:{port} --token TOKEN" in first
    assert f"bxthre3 host --controller 127.0.0.1:{port} --token TOKEN" in first
    assert "TOKEN: the one this controller was started with" in first  # the tests' cluster token: $BXTHRE3_TOKEN
    assert "first start" not in start_and_read("listening on")  # said once, not on every start


def test_a_host_tells_nothing_listening_from_a_wrong_token(controller: RunningController, tmp_path: Path) -> None:
    """Papercut: an unreachable or unresolvable controller was reported to a host as a token problem."""
    import os
    import signal
    import socket

    with socket.socket() as s:  # a port nothing listens on (bound, then closed)
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    started = []
    for name, address, token in (
        ("refused", f"127.0.0.1:{free_port}", None),
        ("stranger", str(controller.address), "bxt1-" + "W" * 43),
    ):
        env = subprocess_env()
        if token:
            env["BXTHRE3_TOKEN"] = token
        log = tmp_path / f"{name}.log"
        cmd = [
            sys.executable, "-m", "bxthre3", "host", "--controller", address, "--node-id", name,
            "--heartbeat", "0.2", "--liveness", "3", "--log-file", str(log),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        started.append((proc, log))
    manager_err = tmp_path / "node_manager.stderr"
    with open(manager_err, "wb") as err:  # a node manager says it at once, before any host of its own could
        cmd = [
            sys.executable, "-m", "bxthre3", "node-manager", "--controller", f"127.0.0.1:{free_port}",
            "--max-nodes", "0", "--log-file", str(tmp_path / "nm.log"),
        ]  # fmt: skip
        manager = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=subprocess_env())
    started.append((manager, manager_err))
    try:
        for _, log in started[:2]:
            wait_for(lambda log=log: "no word from controller" in (log.read_text() if log.exists() else ""), 15)
        wait_for(lambda: "(its hosts keep trying)" in manager_err.read_text(), 15, "the node manager's warning")
        assert f"warning: nothing is listening at 127.0.0.1:{free_port}" in manager_err.read_text()
        refused, stranger = (log.read_text() for _, log in started[:2])
        assert "nothing is listening at 127.0.0.1:" in refused and "token" not in refused
        assert "accepts connections but does not answer: check that this host has the cluster's token" in stranger
    finally:
        for proc, _ in started:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)
