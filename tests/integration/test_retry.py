"""`bxthre3 retry`: failed and cancelled tasks run again on real hosts; successes are kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import TEST_MODULES, WASM_MODULES, HostProcesses, RunningController, subprocess_env, wait_for

REPO = Path(__file__).resolve().parents[2]


def bxthre3(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bxthre3", *args], capture_output=True, text=True, timeout=timeout, env=subprocess_env()
    )


def test_cancelled_dag_retried_with_wait_completes_once_a_host_joins(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))  # no host yet: everything queued
    assert client.cancel(dag_id)["state"] == "cancelled"
    retry = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "retry", dag_id, "--wait", "--controller", str(controller.address)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
    )  # fmt: skip
    try:
        wait_for(lambda: client.progress(dag_id)["state"] == "running", 20, "the DAG to run again")
        hosts.start(controller.address, "late")
        out, err = retry.communicate(timeout=60)
    finally:
        retry.kill()
    assert retry.returncode == 0, err
    assert f"{dag_id}: 4 task(s) started again, DAG running" in out
    assert "Hello, Bxthre3!" in out and "Hola, Bxthre3!" in out
    results = client.results(dag_id)
    assert results["state"] == "succeeded"
    attempts = {t["task_id"]: t["attempts"] for t in results["tasks"]}
    assert attempts == {"init": 1, "greet_1": 1, "greet_2": 1, "aggregate": 1}


def test_retry_reruns_only_what_failed_and_says_when_there_is_nothing_to_retry(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    noop, exit3 = str(WASM_MODULES / "noop.wasm"), str(TEST_MODULES / "exit3.wasm")
    tasks = [
        {"id": "fine", "module": noop},
        {"id": "bad", "module": exit3, "retries": 0, "depends_on": ["fine"]},
        {"id": "after", "module": noop, "depends_on": ["bad"]},
    ]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "retry-me", "tasks": tasks}))
    hosts.start(controller.address, "h1")
    dag_id = client.submit(load_dag(path))
    assert client.wait(dag_id, timeout=30)["state"] == "failed"

    proc = bxthre3("retry", dag_id, "--controller", str(controller.address))
    assert proc.returncode == 0, proc.stderr
    assert f"{dag_id}: 2 task(s) started again" in proc.stdout
    assert client.wait(dag_id, timeout=30)["state"] == "failed", "exit 3 is deterministic: it fails again"
    by_id = {t["task_id"]: t for t in client.results(dag_id)["tasks"]}
    assert by_id["fine"]["attempts"] == 1 and by_id["fine"]["state"] == "succeeded"
    assert by_id["bad"]["attempts"] == 2 and [h["attempt"] for h in by_id["bad"]["history"]] == [1, 2]
    assert by_id["after"]["state"] == "upstream_failed"

    unknown = bxthre3("retry", "dag-nope", "--controller", str(controller.address))
    assert unknown.returncode == 3 and "no DAG with id 'dag-nope'" in unknown.stderr
    fine_dag = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(fine_dag, timeout=30)["state"] == "succeeded"
    nothing = bxthre3("retry", fine_dag, "--controller", str(controller.address))
    assert nothing.returncode == 3 and "has no failed, upstream-failed or cancelled task to retry" in nothing.stderr
