"""A real controller, real host processes, real Wasm3, over ZeroMQ on TCP loopback."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import yaml
import zmq

from bxthre3.client.connection import ControllerClient
from bxthre3.common import limits
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.wire import protocol
from bxthre3.wire.security import secure_client
from tests.conftest import (
    REPO,
    TEST_KEYS,
    TEST_MODULES,
    WASM_MODULES,
    HostProcesses,
    RunningController,
    wait_for,
    wait_for_hosts,
)


def write_dag(tmp_path: Path, name: str, tasks: list[dict]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "tasks": tasks}, sort_keys=False))
    return path


def outputs(results: dict) -> dict[str, bytes]:
    return {t["task_id"]: t["output"] for t in results["tasks"]}


def test_hello_fanout_over_two_host_processes(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    hosts.start(controller.address, "host-001")
    hosts.start(controller.address, "host-002")
    wait_for_hosts(client, 2)
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
    results = client.results(dag_id)
    out = outputs(results)
    assert out["init"] == b"Bxthre3\n"
    assert out["greet_1"] == b"Hello, Bxthre3!\n"
    assert out["greet_2"] == b"Hola, Bxthre3!\n"
    assert out["aggregate"] == b"Hello, Bxthre3!\nHola, Bxthre3!\n"
    status = client.status()
    assert sorted(h["node_id"] for h in status["hosts"]) == ["host-001", "host-002"]
    ran = {t for h in status["hosts"] for t in h["recent"]}
    assert ran == {f"{dag_id}/{t}" for t in ("init", "greet_1", "greet_2", "aggregate")}
    assert {t["node_id"] for t in results["tasks"]} <= {"host-001", "host-002"}


def test_generated_200_task_dag_every_output_checked(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    greet = str(WASM_MODULES / "greet_1.wasm")
    inc = str(WASM_MODULES / "inc.wasm")
    agg = str(WASM_MODULES / "aggregate.wasm")
    tasks: list[dict] = [{"id": f"g{i}", "module": greet, "inputs": [f"n{i}"]} for i in range(120)]
    tasks.append({"id": "c0", "module": inc, "inputs": ["41"]})
    for i in range(1, 60):
        tasks.append({"id": f"c{i}", "module": inc, "inputs": [f"output_of_c{i - 1}"], "depends_on": [f"c{i - 1}"]})
    for j in range(19):
        members = [f"g{k}" for k in range(j * 6, j * 6 + 6)]
        tasks.append(
            {"id": f"a{j}", "module": agg, "inputs": [f"output_of_{m}" for m in members], "depends_on": members}
        )
    tasks.append({"id": "end", "module": agg, "inputs": ["output_of_c59", "output_of_a0"], "depends_on": ["c59", "a0"]})
    assert len(tasks) == 200
    path = write_dag(tmp_path, "generated", tasks)
    hosts.start(controller.address, "h1", slots=2)
    hosts.start(controller.address, "h2", slots=2)
    wait_for_hosts(client, 2)
    dag_id = client.submit(load_dag(path))
    assert client.wait(dag_id, timeout=90)["state"] == "succeeded"
    out = outputs(client.results(dag_id))
    assert len(out) == 200
    for i in range(120):
        assert out[f"g{i}"] == f"Hello, n{i}!\n".encode()
    for i in range(60):
        assert out[f"c{i}"] == f"{42 + i}\n".encode()
    for j in range(19):
        assert out[f"a{j}"] == "".join(f"Hello, n{k}!\n" for k in range(j * 6, j * 6 + 6)).encode()
    assert out["end"] == b"101\n" + out["a0"]
    per_host = {h["node_id"]: h["succeeded"] for h in client.status()["hosts"]}
    assert sum(per_host.values()) == 200 and all(n > 0 for n in per_host.values()), per_host


def test_failing_modules_fail_their_tasks_and_the_host_takes_the_next(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    tasks = [
        {"id": "exits", "module": str(TEST_MODULES / "exit3.wasm"), "retries": 1},
        {"id": "traps", "module": str(TEST_MODULES / "trap.wasm"), "retries": 0},
        {"id": "recurses", "module": str(TEST_MODULES / "recurse.wasm"), "retries": 0},
        {"id": "spins", "module": str(TEST_MODULES / "spin.wasm"), "timeout": 1, "retries": 0},
        {"id": "after", "module": str(WASM_MODULES / "greet_2.wasm"), "inputs": ["still here"]},
        {"id": "child", "module": str(WASM_MODULES / "greet_2.wasm"), "inputs": ["output_of_traps"],
         "depends_on": ["traps"]},
    ]  # fmt: skip
    hosts.start(controller.address, "only")
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(write_dag(tmp_path, "failing", tasks)))
    assert client.wait(dag_id, timeout=60)["state"] == "failed"
    by_id = {t["task_id"]: t for t in client.results(dag_id)["tasks"]}
    assert by_id["exits"]["reason"] == "exit_code" and by_id["exits"]["exit_code"] == 3
    assert by_id["exits"]["attempts"] == 2
    assert b"something went wrong" in by_id["exits"]["stderr"]
    assert by_id["traps"]["reason"] == "trap"
    assert by_id["recurses"]["reason"] == "trap"
    assert by_id["spins"]["reason"] == "timeout"
    assert by_id["after"]["state"] == "succeeded" and by_id["after"]["output"] == b"Hola, still here!\n"
    assert by_id["child"]["state"] == "upstream_failed"
    assert client.status()["totals"]["hosts"] == 1, "the host survived every failure"


def test_host_killed_mid_task_is_detected_and_its_task_rerun_elsewhere(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    tasks = [{"id": "slow", "module": str(TEST_MODULES / "spin.wasm"), "timeout": 2, "retries": 0}]
    doomed = hosts.start(controller.address, "doomed")
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(write_dag(tmp_path, "slow", tasks)))
    wait_for(lambda: client.progress(dag_id)["counts"]["running"] == 1, 10, "the task to start")
    os.kill(doomed.pid, signal.SIGKILL)
    hosts.start(controller.address, "survivor")
    final = client.wait(dag_id, timeout=30)
    task = client.results(dag_id)["tasks"][0]
    assert [h["reason"] for h in task["history"]][0] == "host_lost"
    assert task["history"][-1]["node_id"] == "survivor"
    assert final["state"] == "failed" and task["reason"] == "timeout"


def test_garbage_frames_are_dropped_and_the_controller_keeps_serving(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    ctx = controller.context
    evil = ctx.socket(zmq.DEALER)
    evil.setsockopt(zmq.LINGER, 0)
    secure_client(evil, TEST_KEYS)  # a member with the token, sending garbage: the worst case
    evil.connect(controller.address.endpoint)
    junk = [
        b"",
        b"\xc1\xc1",
        b"not msgpack at all",
        protocol.encode(protocol.Heartbeat())[:-1],  # cut short: its array says more than it holds
        b"\x93\x02\xa6result\xc0",  # result with nil fields
        b"\x92\x07\xa8register",  # wrong version
        b"\x94\x02\xa6submit\x01\x81\xa4name\x01",  # submit with a hostile dag map
    ]
    for frame in junk:
        evil.send(frame)
    evil.send_multipart([b"two", b"frames"])
    # a forged result for a DAG that does not exist, and a heartbeat from a stranger
    evil.send(protocol.encode(protocol.Result("dag-x", "t", 1, 0, b"", b"", None, "", 0.0)))
    evil.send(protocol.encode(protocol.Heartbeat()))
    # old version register gets a polite reject
    evil.send(b"\x92\x07\xa8register")
    replies = []
    while evil.poll(1000):
        replies.append(protocol.decode(evil.recv()))
    # the stranger's result and heartbeat are answered "register first", old registers are refused,
    # and the hostile submission is rejected with a reason
    kinds = [type(r).__name__ for r in replies]
    assert sorted(kinds) == ["Reject", "Reject", "Reply", "Reregister", "Reregister"], kinds
    assert all(not r.ok and r.error for r in replies if isinstance(r, protocol.Reply))
    assert all(f"protocol {protocol.PROTOCOL_VERSION}" in r.reason for r in replies if isinstance(r, protocol.Reject))
    # a frame over the limit: ZeroMQ itself refuses it (MAXMSGSIZE) and drops that connection
    big = ctx.socket(zmq.DEALER)
    big.setsockopt(zmq.LINGER, 0)
    secure_client(big, TEST_KEYS)
    big.connect(controller.address.endpoint)
    big.send(b"\x00" * (limits.MAX_FRAME_BYTES + 1024))
    evil.close()
    wait_for(lambda: client.status()["controller"]["dropped_frames"] >= len(junk), 5, "drops to be counted")
    big.close()
    hosts.start(controller.address, "h1")
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"


def test_invalid_submission_is_rejected_with_a_reason_and_nothing_breaks(
    controller: RunningController, client: ControllerClient
) -> None:
    import pytest

    from bxthre3.common.errors import ClusterError

    good = load_dag(REPO / "dags" / "hello_fanout.yaml").to_wire()
    cyclic = dict(good)
    cyclic["tasks"] = [dict(t) for t in good["tasks"]]
    cyclic["tasks"][0]["depends_on"] = ["aggregate"]
    with pytest.raises(ClusterError, match="cycle"):
        client.request(lambda r: protocol.Submit(r, cyclic))
    with pytest.raises(ClusterError):
        client.request(lambda r: protocol.Submit(r, {"name": 5}))
    with pytest.raises(ClusterError, match="no DAG"):
        client.results("dag-missing")
    assert client.request(lambda r: protocol.Submit(r, good))["dag_id"].startswith("dag-")


def test_client_reports_an_unreachable_controller_quickly() -> None:
    import pytest

    from bxthre3.common.errors import ClusterError
    from bxthre3.wire.addresses import Address

    with ControllerClient(Address("127.0.0.1", 9), timeout=0.3) as c:
        started = time.monotonic()
        with pytest.raises(ClusterError, match=r"nothing is listening at 127.0.0.1:9 \(connection refused\)"):
            c.status()
        assert time.monotonic() - started < 2
