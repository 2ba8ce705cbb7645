"""Hostile modules on real host processes: each fails with the right reason within its
limit, the host stays registered, and the next task on the same host succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.common.errors import DagError
from bxthre3.common.failures import FailureReason
from bxthre3.common.limits import MiB
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.executor.parent import ExecJob, Executor
from tests.conftest import ENGINES, TEST_MODULES, WASM_MODULES, HostProcesses, RunningController, wait_for_hosts

GREET = str(WASM_MODULES / "greet_2.wasm")

HOSTILE = [
    # (module, extra task fields, expected reason, seconds it may take at most)
    ("spin", {"timeout": 1}, "timeout", 5),
    ("membomb", {}, "memory_limit", 5),
    ("growbomb", {}, "memory_limit", 5),
    ("bigstatic", {}, "memory_limit", 3),
    ("recurse", {}, "trap", 3),
    ("flood", {}, "output_limit", 10),
    ("trap", {}, "trap", 3),
    ("divzero", {}, "trap", 3),
    ("exit3", {}, "exit_code", 3),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_each_hostile_module_is_contained_and_the_host_takes_the_next_task(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses, engine: str
) -> None:
    tasks = []
    for name, extra, _, _ in HOSTILE:
        tasks.append({"id": f"hostile_{name}", "module": str(TEST_MODULES / f"{name}.wasm"), "retries": 0, **extra})
        tasks.append({"id": f"after_{name}", "module": GREET, "inputs": [name]})
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump({"name": "hostile", "tasks": tasks}, sort_keys=False))
    hosts.start(controller.address, "victim", extra=("--ram-limit", "64", "--engine", engine))
    wait_for_hosts(client, 1)
    assert client.status()["hosts"][0]["engine"] == engine
    started = time.monotonic()
    dag_id = client.submit(load_dag(path))
    final = client.wait(dag_id, timeout=90)
    elapsed = time.monotonic() - started
    assert final["state"] == "failed"
    by_id = {t["task_id"]: t for t in client.results(dag_id)["tasks"]}
    for name, _, reason, budget in HOSTILE:
        bad = by_id[f"hostile_{name}"]
        assert (bad["state"], bad["reason"]) == ("failed", reason), (name, bad)
        assert bad["duration_s"] < budget or reason == "timeout", (name, bad["duration_s"])
        after = by_id[f"after_{name}"]
        assert after["state"] == "succeeded", (name, after)
        assert after["output"] == f"Hola, {name}!\n".encode()
        assert after["node_id"] == "victim"
    assert "64 MiB" in by_id["hostile_membomb"]["error"]
    assert elapsed < 60
    status = client.status()
    assert [h["node_id"] for h in status["hosts"]] == ["victim"]


def test_memory_within_the_limit_is_fine_and_beyond_it_is_memory_limit(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    alloc = str(TEST_MODULES / "allocate.wasm")
    tasks = [
        {"id": "fits", "module": alloc, "inputs": ["40"]},
        {"id": "too_much", "module": alloc, "inputs": ["100"], "retries": 0},
    ]
    path = tmp_path / "alloc.yaml"
    path.write_text(yaml.safe_dump({"name": "alloc", "tasks": tasks}, sort_keys=False))
    hosts.start(controller.address, "h64", extra=("--ram-limit", "64"))
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(path))
    client.wait(dag_id, timeout=30)
    by_id = {t["task_id"]: t for t in client.results(dag_id)["tasks"]}
    assert by_id["fits"]["state"] == "succeeded" and by_id["fits"]["output"].startswith(b"allocated 40 MiB")
    assert by_id["too_much"]["reason"] == "memory_limit"


def test_task_declaring_more_memory_than_any_host_waits_visibly_then_runs_on_a_big_host(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    alloc = str(TEST_MODULES / "allocate.wasm")
    tasks = [{"id": "needs_300", "module": alloc, "inputs": ["200"], "memory": 300}]
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({"name": "big", "tasks": tasks}, sort_keys=False))
    hosts.start(controller.address, "small", extra=("--ram-limit", "128"))
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(path))
    time.sleep(0.5)
    assert client.progress(dag_id)["counts"]["ready"] == 1
    assert client.status()["waiting"] == ["1 ready task(s) need 300 MB; the largest host offers 128 MB"]
    task = client.results(dag_id)["tasks"][0]
    assert task["error"] == "waiting: needs 300 MB; the largest host offers 128 MB"
    hosts.start(controller.address, "large", extra=("--ram-limit", "512"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
    task = client.results(dag_id)["tasks"][0]
    assert task["node_id"] == "large" and task["output"].startswith(b"allocated 200 MiB")


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("evil_import", "unsupported imports: env.launch_missiles"),
        ("truncated", "malformed WebAssembly"),
    ],
)
def test_modules_refused_at_submission(tmp_path: Path, module: str, message: str) -> None:
    path = tmp_path / "refused.yaml"
    tasks = [{"id": "x", "module": str(TEST_MODULES / f"{module}.wasm")}]
    path.write_text(yaml.safe_dump({"name": "refused", "tasks": tasks}))
    with pytest.raises(DagError, match=message) as caught:
        load_dag(path)
    assert "task 'x'" in str(caught.value) and "field 'module'" in str(caught.value)


@pytest.mark.parametrize(
    ("module", "reason"),
    [("evil_import", FailureReason.INVALID_MODULE), ("truncated", FailureReason.INVALID_MODULE)],
)
def test_executor_contains_modules_that_bypass_submission_checks(module: str, reason: FailureReason) -> None:
    """A host does not trust the controller's validation: the executor refuses them too."""
    path = TEST_MODULES / f"{module}.wasm"
    import hashlib

    greet = WASM_MODULES / "greet_1.wasm"
    with Executor(address_space_mb=64 + 512) as ex:
        ex.start()
        for job_id, (p, expect) in enumerate([(path, reason), (greet, None)], start=1):
            sha = hashlib.sha256(p.read_bytes()).hexdigest()
            ex.submit(ExecJob(job_id, sha, str(p), ("x",), b"", {}, memory_limit_bytes=64 * MiB))
            result = ex.read_result()
            assert result.reason is expect, result
    assert result.stdout == b"Hello, x!\n"
