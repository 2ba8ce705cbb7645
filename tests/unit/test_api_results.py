"""The API's typed results, made from the controller's views (the shapes of docs/JSON.md). Pure."""

from __future__ import annotations

import dataclasses
import random

import pytest

from bxthre3.api.dag import Dag
from bxthre3.api.results import ClusterStatus, DagResults, DagStatus, TaskResult
from bxthre3.dag.yaml_loader import parse_dag

SUMMARY = {
    "dag_id": "dag-1",
    "name": "hello",
    "state": "failed",
    "total": 2,
    "done": 2,
    "counts": {"succeeded": 1, "failed": 1},
    "failures": {"exit_code": 1},
    "elapsed_s": 0.5,
    "priority": 3,
    "share": 0.0,
}
TASKS = [
    {
        "task_id": "init",
        "state": "succeeded",
        "attempts": 1,
        "node_id": "local-1",
        "exit_code": 0,
        "reason": None,
        "error": "",
        "duration_s": 0.01,
        "output": b"Bxthre3\n",
        "stderr": b"",
        "files": [{"name": "a/b.txt", "size": 2, "sha256": "00", "data": b"hi"}],
        "history": [{"attempt": 1, "node_id": "local-1", "reason": None, "error": ""}],
    },
    {
        "task_id": "bad",
        "state": "failed",
        "attempts": 2,
        "node_id": "local-2",
        "exit_code": 2,
        "reason": "exit_code",
        "error": "exited with code 2",
        "duration_s": 0.0,
        "output": None,
        "stderr": b"usage\n",
        "files": [],
        "history": [],
    },
]


def test_results_are_typed_and_read_only() -> None:
    results = DagResults.from_view({**SUMMARY, "format": 1, "tasks": TASKS})  # type: ignore[typeddict-item]
    assert results.status == DagStatus("dag-1", "hello", "failed", 2, 2, {"succeeded": 1, "failed": 1},
                                       {"exit_code": 1}, 0.5, 3)  # fmt: skip
    assert not results.ok and results.status.finished and [t.id for t in results] == ["init", "bad"]
    init = results["init"]
    assert (init.ok, init.text, init.history[0].node_id) == (True, "Bxthre3\n", "local-1")
    assert init.files == {"a/b.txt": b"hi"}
    assert results.failed == [results["bad"]] and results["bad"].stdout == b"" and results["bad"].reason == "exit_code"
    dag = Dag("hello")
    assert results[dag.task("init", "init.wasm")] is init  # by the Task that Dag.task returned
    with pytest.raises(TypeError):
        results.tasks["x"] = init  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        init.state = "failed"  # type: ignore[misc]
    assert "Bxthre3" not in repr(init)  # outputs can be megabytes: not in the repr


def test_files_fetched_separately_win_and_cluster_status() -> None:
    task = TaskResult.from_view(TASKS[0], {"x": b"1"})  # type: ignore[arg-type]
    assert task.files == {"x": b"1"}
    view = {"totals": {"devices": 1, "hosts": 2, "slots": 4, "running": 1}, "dags": [SUMMARY]}
    assert ClusterStatus.from_view(view) == ClusterStatus(1, 2, 4, 1, (DagStatus.from_view(SUMMARY),))  # type: ignore[arg-type]


AWKWARD = ["yes", "no", "null", "~", "1e3", "0x10", "", "a: b", "- x", "#c", "é", "  lead", "two\nlines", "'q'",
           '"', "[1]", "{a: 1}", "*star", "&anchor", "!tag", "%", "@", "`", "true", "1_000", "2026-12-05",
           ".inf"]  # fmt: skip


def test_random_dags_round_trip_through_yaml() -> None:
    rng = random.Random(7)
    modules = ["init.wasm", "noop.wasm", "greet_1.wasm"]
    for n in range(30):
        dag = Dag(f"random {n}", defaults=rng.choice([{}, {"timeout": 2.5, "verify": 2}, {"speculate": False}]))
        tasks = []
        for i in range(rng.randint(1, 8)):
            up = rng.sample(tasks, k=rng.randint(0, min(3, len(tasks))))
            files = {f"in/{j}.bin": rng.choice([t, t.file(f"out{j}")]) for j, t in enumerate(up) if rng.random() < 0.5}
            options = rng.choice([{}, {"retries": rng.randint(0, 5)}, {"memory": 64, "timeout": 1}, {"verify": 1}])
            args = rng.sample(AWKWARD, k=rng.randint(0, 5))
            tasks.append(dag.task(f"t{i}", rng.choice(modules), args=args, stdin=up, files=files, **options))
        spec = dag.spec()
        assert parse_dag(dag.to_yaml(), source=dag.source, base_dir=dag.base_dir) == spec, dag.to_yaml()
