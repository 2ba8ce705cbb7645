"""A 100,000-task submission must not stall the controller's loop (issue 16, item 6).

Before, the loop decoded, validated, scheduled and journalled such a DAG itself for ~3.5 s (chains:
~7 s): no heartbeat was answered meanwhile and every host re-registered. Real processes throughout:
the controller and two hosts are `python -m bxthre3` subprocesses with a journal on disk, and
`tests/heartbeat_probe.py` measures the loop from a process of its own.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from bxthre3.common.errors import ClusterError
from bxthre3.common.limits import SUBMIT_BURST
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.wire import protocol
from bxthre3.wire.security import secure_client
from tests.chaos_support import REPO, WASM_MODULES, ChaosCluster, kill_pid, retry, wait_until
from tests.conftest import TEST_KEYS, RunningController, subprocess_env

HEARTBEAT_S = 0.25
LIVENESS = 4
TASKS = 100_000

pytestmark = pytest.mark.timeout(240)


def noop_dag(n: int, name: str) -> DagSpec:
    """`n` independent noop tasks (the shape of benchmarks/core_throughput.py's `independent`)."""
    data = (WASM_MODULES / "noop.wasm").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    tasks = tuple(TaskSpec(id=f"t{i}", module=sha, module_name="noop.wasm") for i in range(n))
    return DagSpec(name=name, tasks=tasks, modules={sha: data})


class Probe:
    """tests/heartbeat_probe.py as a subprocess: `reset`, then `report` the figures since."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.heartbeat_probe", "--port", str(port), "--interval", str(HEARTBEAT_S)],
            cwd=REPO, env=subprocess_env(), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def ask(self, command: str) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline()) if command == "report" else {}

    def close(self) -> None:
        kill_pid(self.proc.pid)
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def joins(log: Path, node_id: str) -> int:
    return log.read_text(errors="replace").count(f"host {node_id!r} joined")


def test_100k_task_submission_keeps_heartbeats_on_time_and_an_acknowledged_dag_survives_sigkill(
    tmp_path: Path,
) -> None:
    nodes = ["host-a", "host-b"]
    with ChaosCluster(tmp_path, heartbeat=HEARTBEAT_S, liveness=LIVENESS) as cluster:
        cluster.start_controller()
        cluster.wait_controller()
        for node in nodes:
            cluster.start_host(node)
        client = cluster.client(timeout=120)
        probe = Probe(cluster.port)
        try:
            cluster.wait_hosts(client, [*nodes, "probe"])
            spec = noop_dag(TASKS, "big")
            time.sleep(2 * HEARTBEAT_S)
            probe.ask("reset")
            started = time.monotonic()
            dag_id = client.submit(spec)
            accepted_s = time.monotonic() - started
            time.sleep(1.0)  # the first second of the DAG running on the hosts counts too
            seen = probe.ask("report")
            log = tmp_path / "controller.log"
            print(f"accepted in {accepted_s:.2f} s; probe saw {seen}")

            # Heartbeats on time: the loop never stalled for long, and no host was thought dead.
            assert seen["pings"] > 20 * accepted_s, f"the probe's pings went unanswered: {seen}"
            assert seen["max_rtt"] < 0.5, f"the loop stalled {seen['max_rtt']:.2f} s during the submission"
            limit = HEARTBEAT_S * LIVENESS * 0.75
            assert 0 < seen["max_gap"] < limit, f"heartbeats {seen['max_gap']:.2f} s apart (dead after 1 s)"
            assert seen["reregisters"] == 0 and seen["rejects"] == 0, seen
            assert {node: joins(log, node) for node in nodes} == {node: 1 for node in nodes}, "a host re-registered"
            progress = client.progress(dag_id)
            assert progress["total"] == TASKS and progress["state"] == "running"

            # SIGKILL while a second big DAG is still being validated: the acknowledged one is all
            # there after the restart (its tasks have no journal rows until they change), the other
            # was never acknowledged and is not half there either.
            refused: list[BaseException] = []

            def submit_again() -> None:
                with cluster.client(timeout=5) as other:
                    try:
                        other.submit(noop_dag(TASKS, "unacknowledged"))
                    except ClusterError as exc:
                        refused.append(exc)

            second = threading.Thread(target=submit_again, daemon=True)
            second.start()
            wait_until(
                lambda: client.status()["controller"]["submissions_validating"] > 0,
                30, "the second submission to be in validation",
            )  # fmt: skip
            done_before = client.progress(dag_id)["done"]
            cluster.kill_controller()
            cluster.start_controller()
            cluster.wait_controller(timeout=60)
            second.join(30)
            assert refused, "the submission cut short by SIGKILL was answered"
            after = retry(lambda: client.progress(dag_id), 30, "progress after the restart")
            assert after["total"] == TASKS and after["state"] == "running" and after["done"] >= done_before
            dags = retry(lambda: client.status()["dags"], 10, "status after the restart")
            assert [d["dag_id"] for d in dags] == [dag_id]
            results = client.results(dag_id, with_output=False)
            assert len(results["tasks"]) == TASKS and {t["task_id"] for t in results["tasks"]} == {
                t.id for t in spec.tasks
            }
        finally:
            probe.close()


def test_pipelined_submissions_are_answered_in_order_while_the_loop_answers_everything_else(
    controller: RunningController,
) -> None:
    """One connection sends a 100,000-task DAG, then 23 more submissions (a bad one, and four over the
    burst the rate limit allows), then `status`, without waiting. `status` is answered first (the loop
    did not wait for the big one), and the submissions in the order they were sent, each as before:
    accepted, refused as invalid in one line, or refused by the rate limit."""
    small = noop_dag(3, "small").to_wire()
    bad = noop_dag(3, "bad").to_wire()
    sha = next(iter(bad["modules"]))
    bad["modules"][sha] = bad["modules"][sha] + b"\0"
    wires = [noop_dag(TASKS, "big").to_wire(), small, bad, *[small] * (SUBMIT_BURST + 1)]
    frames = [protocol.encode(protocol.Submit(req_id, wire)) for req_id, wire in enumerate(wires, 1)]
    sock = controller.context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    secure_client(sock, TEST_KEYS)
    sock.connect(controller.address.endpoint)
    try:
        for frame in frames:
            sock.send(frame)
        sock.send(protocol.encode(protocol.StatusRequest(999)))
        replies: list[protocol.Reply] = []
        deadline = time.monotonic() + 60
        while len(replies) < len(frames) + 1:
            assert sock.poll(max(0.0, deadline - time.monotonic()) * 1000), f"only {len(replies)} replies"
            reply = protocol.decode(sock.recv())
            assert isinstance(reply, protocol.Reply)
            replies.append(reply)
    finally:
        sock.close(linger=0)
    assert replies[0].req_id == 999, "status waited for the big submission"
    submits = replies[1:]
    assert [r.req_id for r in submits] == list(range(1, len(frames) + 1))
    assert [r.ok for r in submits] == [True, True, False] + [True] * (SUBMIT_BURST - 3) + [False] * 4
    assert "does not match its sha256" in submits[2].error and "\n" not in submits[2].error
    assert all(r.error.startswith("too many submissions") for r in submits[-4:])
    with controller.client() as client:
        held = [d["dag_id"] for d in client.status()["dags"]]
    assert held == [r.data["dag_id"] for r in submits if r.ok]  # added in the order they were sent
