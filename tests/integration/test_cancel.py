"""`bxthre3 cancel`: queued tasks stop, running ones are killed on their hosts within a second."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import TEST_MODULES, WASM_MODULES, HostProcesses, RunningController, subprocess_env, wait_for


def busy_executors(host_pid: int, window: float = 0.3) -> list[psutil.Process]:
    """The host's children that used CPU within `window` seconds (a spinning executor does; an idle or
    killed one does not). CPU time, not a share of a core: on a loaded machine a spinner gets far less
    than a core, and a percentage threshold called it idle."""

    def cpu(p: psutil.Process) -> float | None:
        try:
            t = p.cpu_times()
            return t.user + t.system
        except psutil.Error:
            return None

    kids = psutil.Process(host_pid).children()
    before = [cpu(k) for k in kids]
    time.sleep(window)
    after = [cpu(k) for k in kids]
    return [k for k, b, a in zip(kids, before, after, strict=True) if b is not None and a is not None and a - b >= 0.02]


def test_cancel_kills_running_attempts_and_stops_the_queue(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    spin = str(TEST_MODULES / "spin.wasm")
    tasks = [{"id": f"spin{i}", "module": spin, "timeout": 120} for i in range(2)]
    tasks += [{"id": f"later{i}", "module": str(WASM_MODULES / "noop.wasm")} for i in range(5)]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "cancel-me", "tasks": tasks}))
    host = hosts.start(controller.address, "busy", slots=2)
    wait_for(lambda: client.status()["totals"]["hosts"] == 1, 20, "the host")
    dag_id = client.submit(load_dag(path))
    wait_for(lambda: len(busy_executors(host.pid)) == 2, 20, "both spin tasks to run")
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", "cancel", dag_id, "--controller", str(controller.address)],
        capture_output=True, text=True, timeout=30, env=subprocess_env(),
    )  # fmt: skip
    cancelled_at = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    assert f"{dag_id}: cancelled (7 cancelled" in proc.stdout
    wait_for(lambda: not busy_executors(host.pid), 5, "the executors to stop spinning")
    # "within a second" on an idle machine; the bound leaves room for a loaded one (without the kill
    # the spinners run for their whole 120 s timeout)
    assert time.monotonic() - cancelled_at < 5.0
    results = client.results(dag_id)
    assert results["state"] == "cancelled"
    assert {t["state"] for t in results["tasks"]} == {"cancelled"}
    # the host is free again and takes new work at once
    again = client.submit(load_dag(_one_task(tmp_path)))
    assert client.wait(again, timeout=20)["state"] == "succeeded"


def _one_task(tmp_path: Path) -> Path:
    path = tmp_path / "one.yaml"
    task = {"id": "g", "module": str(WASM_MODULES / "greet_1.wasm"), "inputs": ["x"]}
    path.write_text(yaml.safe_dump({"name": "one", "tasks": [task]}))
    return path


def test_cancel_of_an_unknown_or_finished_dag(controller: RunningController, client: ControllerClient) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", "cancel", "dag-nope", "--controller", str(controller.address)],
        capture_output=True, text=True, timeout=30, env=subprocess_env(),
    )  # fmt: skip
    assert proc.returncode == 3 and "no DAG with id 'dag-nope'" in proc.stderr
