"""The result cache end to end: a controller on loopback, real hosts, real modules.

A DAG submitted twice runs once; with one module changed only that task and what depends on it run
again; `--no-cache` runs everything; the cache outlives a controller restart (journalled)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import zmq

from bxthre3.client.connection import ControllerClient
from bxthre3.controller.server import Controller
from bxthre3.dag.spec import DagSpec
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.scheduler import SchedulerConfig
from bxthre3.wire.addresses import Address
from tests.conftest import TEST_KEYS, HostProcesses, RunningController, subprocess_env, wait_for_hosts

REPO = Path(__file__).resolve().parents[2]
FANOUT = REPO / "dags" / "hello_fanout.yaml"


def _run(client: ControllerClient, spec: DagSpec) -> dict[str, dict]:
    dag_id = client.submit(spec)
    assert client.wait(dag_id, timeout=60)["state"] == "succeeded"
    return {t["task_id"]: t for t in client.results(dag_id)["tasks"]}


def _cached(tasks: dict[str, dict]) -> set[str]:
    return {tid for tid, t in tasks.items() if t["cached"]}


def test_a_resubmitted_dag_is_served_and_an_edit_reruns_only_what_changed(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    hosts.start(controller.address, "h1", slots=2)
    wait_for_hosts(client, 1)
    spec = load_dag(FANOUT)
    first = _run(client, spec)
    assert _cached(first) == set()
    second = _run(client, spec)
    assert _cached(second) == {"init", "greet_1", "greet_2", "aggregate"}
    assert {t: v["output"] for t, v in second.items()} == {t: v["output"] for t, v in first.items()}
    assert all(v["attempts"] == 0 and v["node_id"] is None for v in second.values())

    # greet_1 now runs aggregate's module: it and aggregate (whose input changed) run, the rest is served.
    other = spec.task("aggregate")
    edited = tuple(
        dataclasses.replace(t, module=other.module, module_name=other.module_name) if t.id == "greet_1" else t
        for t in spec.tasks
    )
    modules = {sha: data for sha, data in spec.modules.items() if sha != spec.task("greet_1").module}
    third = _run(client, dataclasses.replace(spec, tasks=edited, modules=modules))
    assert _cached(third) == {"init", "greet_2"}
    assert third["greet_1"]["output"] != first["greet_1"]["output"]
    assert third["aggregate"]["output"] != first["aggregate"]["output"]

    fourth = _run(client, dataclasses.replace(spec, cache=False))  # `--no-cache`
    assert _cached(fourth) == set() and all(v["attempts"] == 1 for v in fourth.values())

    stats = client.cache("stats")
    assert stats["hits"] == 6 and stats["entries"] == 6 and stats["enabled"] and stats["in_memory"]
    out = subprocess.run(
        [sys.executable, "-m", "bxthre3", "cache", "clear", "--controller", str(controller.address)],
        capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )  # fmt: skip
    assert out.returncode == 0 and "cleared 6 cache entries" in out.stdout, out.stderr
    assert _cached(_run(client, spec)) == set(), "cleared: everything runs again"
    dag_id = client.submit(spec)
    client.wait(dag_id, timeout=60)
    out = subprocess.run(
        [sys.executable, "-m", "bxthre3", "results", dag_id, "--controller", str(controller.address)],
        capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.count("succeeded cached") == 4, out.stdout


class _Controller:
    """A controller with a state dir, on loopback, in this process."""

    def __init__(self, state_dir: Path, port: int = 0) -> None:
        self.context = zmq.Context()
        config = SchedulerConfig(heartbeat_interval=0.25, liveness=4)
        self.controller = Controller(
            host="127.0.0.1", port=port, config=config, context=self.context, keys=TEST_KEYS, state_dir=state_dir
        )
        self.port = self.controller.bind()
        self.address = Address("127.0.0.1", self.port)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.controller.close()
        self.context.destroy(linger=0)


def test_the_cache_outlives_a_controller_restart(tmp_path: Path, hosts: HostProcesses) -> None:
    state = tmp_path / "state"
    first = _Controller(state)
    try:
        hosts.start(first.address, "h1")
        client = ControllerClient(first.address, timeout=10, context=first.context, keys=TEST_KEYS)
        wait_for_hosts(client, 1)
        assert _cached(_run(client, load_dag(FANOUT))) == set()
        client.close()
    finally:
        first.close()
    second = _Controller(state, port=first.port)  # the same port: the host reconnects by itself
    try:
        client = ControllerClient(second.address, timeout=10, context=second.context, keys=TEST_KEYS)
        served = _run(client, load_dag(FANOUT))  # needs no host at all
        assert _cached(served) == {"init", "greet_1", "greet_2", "aggregate"}
        stats = client.cache("stats")
        assert stats["entries"] == 4 and not stats["in_memory"]
        client.close()
    finally:
        second.close()
