"""A real host process against a scripted controller socket, and review regressions."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.wire import protocol
from bxthre3.wire.security import secure_server
from tests.conftest import (
    REPO,
    TEST_KEYS,
    TEST_MODULES,
    WASM_MODULES,
    HostProcesses,
    RunningController,
    subprocess_env,
    wait_for,
    wait_for_hosts,
)

_received: list[tuple[bytes, protocol.Message]] = []
"""Messages of a batch not handed out yet (a host sends one loop turn's messages as one batch)."""


def recv(sock: zmq.Socket, timeout: float = 10.0) -> tuple[bytes, protocol.Message]:
    if not _received:
        assert sock.poll(timeout * 1000), "no frame from the host in time"
        identity, frame = sock.recv_multipart()
        for msg in protocol.unbatch(protocol.decode(frame)):
            assert isinstance(msg, protocol.Message), msg
            _received.append((identity, msg))
    return _received.pop(0)


def recv_kind(sock: zmq.Socket, kind: type, timeout: float = 10.0) -> tuple[bytes, protocol.Message]:
    deadline = time.monotonic() + timeout
    while True:
        identity, msg = recv(sock, max(0.1, deadline - time.monotonic()))
        if isinstance(msg, kind):
            return identity, msg


def assign(task_id: str, module: Path, args: list[str], timeout: float) -> protocol.Assign:
    data = module.read_bytes()
    return protocol.Assign("d", task_id, 1, hashlib.sha256(data).hexdigest(), data, args, b"", [], timeout)


def test_queued_work_starts_after_a_timeout_kill(tmp_path: Path, hosts: HostProcesses) -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    secure_server(router, TEST_KEYS)  # a scripted controller of the test cluster (no ZAP handler: any member)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        from bxthre3.wire.addresses import Address

        hosts.start(Address("127.0.0.1", port), "scripted", slots=1)
        identity, reg = recv_kind(router, protocol.Register)
        assert isinstance(reg, protocol.Register) and reg.node_id == "scripted" and reg.slots == 1
        router.send_multipart([identity, protocol.encode(protocol.Welcome("scripted", 0.25, 40))])
        # two assignments for one slot: the second waits in the host's backlog
        router.send_multipart([identity, protocol.encode(assign("spin", TEST_MODULES / "spin.wasm", [], 0.5))])
        router.send_multipart([identity, protocol.encode(assign("next", WASM_MODULES / "greet_1.wasm", ["q"], 10))])
        _, first = recv_kind(router, protocol.Result)
        _, second = recv_kind(router, protocol.Result)
        assert isinstance(first, protocol.Result) and isinstance(second, protocol.Result)
        assert (first.task_id, first.reason) == ("spin", "timeout")
        assert (second.task_id, second.reason, second.output) == ("next", None, b"Hello, q!\n")
    finally:
        router.close()
        ctx.term()


def test_two_hosts_with_one_node_id_end_with_a_clear_error(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    first = hosts.start(controller.address, "twin")
    wait_for_hosts(client, 1)
    hosts.start(controller.address, "twin")
    first.wait(15)
    assert first.returncode != 0
    assert first.stderr is not None
    assert b"give each host a unique --node-id" in first.stderr.read()
    time.sleep(1.5)  # the survivor stays registered: no eviction ping-pong
    assert [h["node_id"] for h in client.status()["hosts"]] == ["twin"]


def test_host_adopts_the_controllers_heartbeat(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    # the fixture's controller expects a heartbeat every 0.25 s (dead after 1 s of silence)
    hosts.start(controller.address, "slowbeat", extra=("--heartbeat", "5"))
    wait_for_hosts(client, 1)
    joined = client.status()["hosts"][0]["uptime_s"]
    time.sleep(2.5)
    status = client.status()
    assert len(status["hosts"]) == 1 and status["hosts"][0]["uptime_s"] > joined + 2


def test_a_corrupt_module_in_the_cache_is_replaced(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    cache = tmp_path / "cache-mended"
    cache.mkdir()
    for name in ("init", "greet_1", "greet_2", "aggregate"):
        sha = hashlib.sha256((WASM_MODULES / f"{name}.wasm").read_bytes()).hexdigest()
        (cache / f"{sha}.wasm").write_bytes(b"\x00asm garbage")
    hosts.start(controller.address, "mended")
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
    assert not any(b"garbage" in p.read_bytes() for p in cache.glob("*.wasm"))


def bx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bxthre3", *args], capture_output=True, text=True, timeout=60,
        env=env or subprocess_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["controller", "--heartbeat", "0"], "heartbeat interval must be between"),
        (["controller", "--port", "99999"], "port must be between"),
        (["host", "--controller", "127.0.0.1", "--slots", "5000"], "--slots must be between"),
        (["host", "--controller", "127.0.0.1", "--liveness", "0"], "liveness must be between"),
        (["status", "--timeout", "nan"], "seconds must be between"),
        (["status", "--controller", "1.2.3.4:5:6"], "put an IPv6 address in brackets"),
        (["status", "--controller", "nosuchhost.invalid"], "cannot resolve controller host"),
        (
            ["host", "--discovery-bind", "127.255.255.255", "--discovery-timeout", "0.3", "--discovery-port", "45999"],
            "pass --controller IP[:PORT] or set BXTHRE3_CONTROLLER",
        ),
        (["host", "--controller", "127.0.0.1", "--cache-dir", "/proc/nope"], "cannot use module cache /proc/nope"),
        (["controller", "--host", "127.0.0.1", "--port", "0", "--log-file", "/proc/x/y.log"], "cannot write the log"),
    ],
)
def test_bad_flags_get_one_line_and_exit_2_or_3(args: list[str], message: str) -> None:
    proc = bx(*args)
    assert proc.returncode in (2, 3), proc
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_run_says_why_a_local_host_died() -> None:
    env = {**subprocess_env(), "XDG_CACHE_HOME": "/proc/nope"}
    proc = bx("run", str(REPO / "dags" / "hello_fanout.yaml"), env=env)
    assert proc.returncode == 3
    assert proc.stderr.startswith("bxthre3: error: local host local-") and proc.stderr.count("error:") == 1
    assert "before registering: cannot use module cache /proc/nope" in proc.stderr


def test_broken_pipe_is_quiet() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m bxthre3 dag mandelbrot --tiles 16x16 | head -c 10 >/dev/null",
        shell=True, capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )  # fmt: skip
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_wait_for_helper_is_bounded() -> None:
    with pytest.raises(AssertionError, match="timed out"):
        wait_for(lambda: False, 0.05, "nothing")


def test_a_paused_host_finishes_nothing_new_until_its_pause_file_goes(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    pause = tmp_path / "phone.paused"
    pause.write_text("battery 12%, unplugged (pauses below 20%)\n")
    hosts.start(controller.address, "phone", extra=("--pause-file", str(pause)))
    wait_for(lambda: [h["state"] for h in client.status()["hosts"]] == ["paused"], 20, "the host to report its pause")
    assert client.status()["hosts"][0]["paused"].startswith("battery 12%")
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    time.sleep(1.0)
    assert client.progress(dag_id)["counts"]["ready"] == 1, "nothing is assigned to a paused host"
    pause.unlink()
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded", "it works again once resumed"
    assert client.status()["hosts"][0]["state"] in ("idle", "busy")


def test_an_idle_host_holds_no_executor_until_work_comes_and_gives_it_back_after(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    import psutil

    host = hosts.start(controller.address, "light", extra=("--executor-idle", "1"))
    wait_for(lambda: client.status()["totals"]["hosts"] == 1, 20, "the host")
    assert psutil.Process(host.pid).children() == [], "no executor before the first task"
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
    assert len(psutil.Process(host.pid).children()) == 1, "the executor that ran the tasks"
    wait_for(lambda: psutil.Process(host.pid).children() == [], 10, "the idle executor to be stopped")
    again = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(again, timeout=30)["state"] == "succeeded", "a new executor starts for new work"


def test_warm_executors_start_once_registered_and_still_give_memory_back(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    import psutil

    host = hosts.start(controller.address, "warm", slots=2, extra=("--warm-executors", "--executor-idle", "1.5"))
    wait_for(lambda: client.status()["totals"]["hosts"] == 1, 20, "the host")
    wait_for(lambda: len(psutil.Process(host.pid).children()) == 2, 10, "an executor per slot, before any task")
    wait_for(lambda: psutil.Process(host.pid).children() == [], 10, "the unused executors to be stopped when idle")
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded", "cold executors start for work as usual"


def test_a_host_whose_executor_stalls_under_a_large_job_keeps_heartbeating_and_times_the_task_out(
    hosts: HostProcesses,
) -> None:
    """With blocking pipe writes the host hung in os.write on the first job larger than the pipe: no
    heartbeat (the controller dropped it), no timeout, ever. Now job bytes wait for room in the pipe."""
    import os
    import signal

    import psutil

    from bxthre3.wire.addresses import Address

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    secure_server(router, TEST_KEYS)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    echo = TEST_MODULES / "echo_stdin.wasm"
    data = os.urandom(8 * 1024 * 1024)
    try:
        proc = hosts.start(Address("127.0.0.1", port), "stalled", slots=1)
        identity, _ = recv_kind(router, protocol.Register)
        router.send_multipart([identity, protocol.encode(protocol.Welcome("stalled", 0.25, 40))])
        router.send_multipart([identity, protocol.encode(assign("warm", WASM_MODULES / "greet_1.wasm", ["w"], 10))])
        _, warm = recv_kind(router, protocol.Result)
        assert isinstance(warm, protocol.Result) and warm.reason is None
        [executor] = psutil.Process(proc.pid).children()
        os.kill(executor.pid, signal.SIGSTOP)  # a wedged executor: it reads nothing more
        big = dataclasses.replace(assign("big", echo, [], 2.0), stdin=data, input_sizes=[len(data)])
        router.send_multipart([identity, protocol.encode(big)])
        started = time.monotonic()
        beats = 0
        result = None
        while result is None and time.monotonic() - started < 10:
            _, msg = recv(router, 10)
            if isinstance(msg, protocol.Heartbeat):
                beats += 1
            elif isinstance(msg, protocol.Result):
                result = msg
        assert isinstance(result, protocol.Result), f"no result in 10 s ({beats} heartbeats)"
        took = time.monotonic() - started
        assert (result.task_id, result.reason) == ("big", "timeout")
        assert 2.0 <= took < 5.0 and beats >= 5, (took, beats)  # heartbeats every 0.25 s all along
        again = dataclasses.replace(big, task_id="again")
        router.send_multipart([identity, protocol.encode(again)])
        _, done = recv_kind(router, protocol.Result, timeout=20)
        assert isinstance(done, protocol.Result)
        assert (done.task_id, done.reason, done.output == data) == ("again", None, True)
    finally:
        router.close()
        ctx.term()
