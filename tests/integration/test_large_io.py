"""Tasks with megabytes of stdin and stdout through a real cluster: controller, 2 host processes, both engines.

Hosts pipeline short tasks (the next job is written into the executor's pipe while one runs).
With blocking pipe writes both ways, the first pair of a job and a result both larger than a pipe
deadlocked the host: 16 such tasks stopped at 14/16 and the controller dropped the silent hosts.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import ENGINES, TEST_MODULES, HostProcesses, RunningController, wait_for_hosts

MiB = 1024 * 1024
TASKS = 20
GROUP = 5


@pytest.mark.parametrize("engine", ENGINES)
def test_many_tasks_of_megabytes_in_and_out_all_finish_intact(
    engine: str, tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    rng = random.Random(5)
    (tmp_path / "echo_stdin.wasm").write_bytes((TEST_MODULES / "echo_stdin.wasm").read_bytes())
    datas = {}
    tasks: list[dict] = []
    for i in range(TASKS):
        datas[f"e{i}"] = rng.randbytes(MiB + 4099 * i)  # >= 1 MiB in, the same out
        (tmp_path / f"in{i}.bin").write_bytes(datas[f"e{i}"])
        tasks.append({"id": f"e{i}", "module": "echo_stdin.wasm", "inputs": [f"file:in{i}.bin"], "timeout": 60})
    for g in range(TASKS // GROUP):  # then >= 5 MiB in and out, from upstream outputs
        ids = [f"e{i}" for i in range(g * GROUP, (g + 1) * GROUP)]
        datas[f"cat{g}"] = b"".join(datas[i] for i in ids)
        tasks.append(
            {"id": f"cat{g}", "module": "echo_stdin.wasm", "inputs": [f"output_of_{i}" for i in ids], "depends_on": ids}
        )
    path = tmp_path / "large_io.yaml"
    path.write_text(yaml.safe_dump({"name": "large_io", "tasks": tasks}, sort_keys=False))
    for n in (1, 2):
        hosts.start(controller.address, f"io-{n}", extra=("--engine", engine))
    wait_for_hosts(client, 2)
    dag_id = client.submit(load_dag(path))
    final = client.wait(dag_id, timeout=90)
    assert final["state"] == "succeeded", final
    results = client.results(dag_id)
    got = {t["task_id"]: t["output"] for t in results["tasks"]}
    assert got.keys() == datas.keys()
    assert [k for k in datas if got[k] != datas[k]] == []
    assert client.status()["totals"]["hosts"] == 2  # nobody went silent on the way
