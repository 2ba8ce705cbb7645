"""Fair share between DAGs on a real cluster: a small DAG does not wait behind a long one (issue 19)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import (
    TEST_MODULES,
    WASM_MODULES,
    HostProcesses,
    RunningController,
    subprocess_env,
    wait_for,
    wait_for_hosts,
)

SPIN_S = 2
"""Each long task spins until its timeout kills it: a known length (the host stops it ~0.5 s later)."""


def test_a_one_task_dag_starts_when_the_first_slot_frees(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    long_tasks = [
        {"id": f"spin{i}", "module": str(TEST_MODULES / "spin.wasm"), "timeout": SPIN_S, "retries": 0} for i in range(6)
    ]
    long_path = tmp_path / "long.yaml"
    long_path.write_text(yaml.safe_dump({"name": "long", "tasks": long_tasks}))
    small_path = tmp_path / "small.yaml"
    small_path.write_text(
        yaml.safe_dump({"name": "small", "tasks": [{"id": "one", "module": str(WASM_MODULES / "noop.wasm")}]})
    )
    hosts.start(controller.address, "h1")
    hosts.start(controller.address, "h2")
    wait_for_hosts(client, 2)
    long_id = client.submit(load_dag(long_path))
    wait_for(lambda: client.progress(long_id)["counts"].get("running", 0) == 2, 20, "every slot to be busy")
    small_id = client.submit(load_dag(small_path))
    status = client.status()
    shown = {d["dag_id"]: d for d in status["dags"]}
    assert shown[long_id]["share"] == 1.0 and shown[small_id]["share"] == 0.0
    assert shown[small_id]["priority"] == 0
    wait_for(lambda: client.progress(small_id)["state"] == "succeeded", 4 * SPIN_S + 10, "the small DAG")
    long_tasks_seen = client.results(long_id)["tasks"]
    ended = sorted(t["finished_at"] for t in long_tasks_seen if t["finished_at"] is not None)
    small_end = client.results(small_id)["tasks"][0]["finished_at"]
    assert small_end is not None and ended, "the first slot freed before the small DAG ran"
    # Strict FIFO ran it after all six (three rounds of SPIN_S); fair share runs it in the first freed slot.
    assert small_end - ended[0] < SPIN_S / 2, (small_end, ended)
    assert len(ended) <= 2 or small_end < ended[2], "it did not wait for a second round of long tasks"
    client.cancel(long_id)


def test_submit_priority_overrides_the_file_and_status_shows_it(
    tmp_path: Path, controller: RunningController, client: ControllerClient
) -> None:
    path = tmp_path / "p.yaml"
    tasks = [{"id": "one", "module": str(WASM_MODULES / "noop.wasm")}]
    path.write_text(yaml.safe_dump({"name": "p", "priority": 2, "tasks": tasks}))
    ids = {}
    for given in ([], ["--priority", "-7"]):
        proc = subprocess.run(
            [sys.executable, "-m", "bxthre3", "submit", str(path), "--json", "--controller", str(controller.address),
             *given],
            capture_output=True, text=True, timeout=30, env=subprocess_env(),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        ids[tuple(given)] = json.loads(proc.stdout)["dag_id"]
    shown = {d["dag_id"]: d for d in client.status()["dags"]}
    assert shown[ids[()]]["priority"] == 2
    assert shown[ids[("--priority", "-7")]]["priority"] == -7
    assert shown[ids[()]]["share"] == 0.0, "no host: no slot, no share"
