"""`backends.driver.DagRun`: the retry policy and states of a DAG run on another engine (pure, no Dask)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bxthre3.backends.driver import DagRun, Policy
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import WASM_MODULES

GREET = str(WASM_MODULES / "greet_2.wasm")


def make_run(tmp_path: Path, tasks: list[dict]) -> DagRun:
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump({"name": "d", "tasks": tasks}, sort_keys=False))
    return DagRun(load_dag(path), "id", Policy(engine="wasm3", retry_backoff=1.0, retry_jitter=0.0), now=0.0)


def ok(stdout: bytes = b"out") -> dict:
    return {"reason": None, "error": "", "exit_code": 0, "stdout": stdout, "stderr": b"", "files": {}, "duration": 0.1}


def failed(reason: str) -> dict:
    return {
        "reason": reason,
        "error": "x",
        "exit_code": None,
        "stdout": b"",
        "stderr": b"",
        "files": {},
        "duration": 0.1,
    }


def test_dependents_start_after_their_upstreams_and_read_them_in_order(tmp_path: Path) -> None:
    run = make_run(tmp_path, [
        {"id": "a", "module": GREET, "inputs": ["x"]},
        {"id": "b", "module": GREET, "inputs": ["output_of_a", "lit", "output_of_a"], "depends_on": ["a"]},
    ])  # fmt: skip
    (a,) = run.startable(0.0)
    assert a.task_id == "a" and run.startable(0.0) == []
    run.finished("a", 1, ok(), "w1", 0.5)
    (b,) = run.startable(0.5)
    assert b.upstream_ids == ("a",) and b.args == ("lit",)
    run.finished("b", 1, ok(), "w2", 0.6)
    assert run.done and run.state == "succeeded"
    assert run.summary(1.0)["counts"]["succeeded"] == 2


def test_retryable_failures_back_off_and_deterministic_ones_fail_at_once(tmp_path: Path) -> None:
    run = make_run(tmp_path, [
        {"id": "flaky", "module": GREET, "inputs": ["x"], "retries": 1},
        {"id": "bomb", "module": GREET, "inputs": ["x"], "retries": 3},
        {"id": "child", "module": GREET, "inputs": ["output_of_bomb"], "depends_on": ["bomb"]},
    ])  # fmt: skip
    assert {a.task_id for a in run.startable(0.0)} == {"flaky", "bomb"}
    run.finished("flaky", 1, failed("exit_code"), "w", 1.0)
    run.finished("bomb", 1, failed("memory_limit"), "w", 1.0)
    assert run.next_wakeup() == 2.0 and run.startable(1.5) == []
    assert (run.wait_at_most(1.5, 0.2), run.wait_at_most(1.875, 0.2), run.wait_at_most(2.5, 0.2)) == (0.2, 0.125, 0.0)
    (again,) = run.startable(2.0)
    assert (again.task_id, again.attempt) == ("flaky", 2)
    run.finished("flaky", 2, failed("exit_code"), "w", 3.0)
    tasks = {t["task_id"]: t for t in run.results(3.0)["tasks"]}
    assert (tasks["flaky"]["state"], tasks["flaky"]["attempts"]) == ("failed", 2)
    assert (tasks["bomb"]["state"], tasks["bomb"]["attempts"]) == ("failed", 1)
    assert tasks["child"]["state"] == "upstream_failed"
    assert tasks["child"]["error"] == "upstream task 'bomb' failed"  # as the controller words it
    assert (tasks["child"]["reason"], tasks["child"]["attempts"], tasks["child"]["output"]) == (None, 0, None)
    assert run.state == "failed" and run.failures == {"exit_code": 1, "memory_limit": 1}


def test_a_lost_worker_costs_no_retry_until_too_many_are_lost(tmp_path: Path) -> None:
    run = make_run(tmp_path, [{"id": "t", "module": GREET, "inputs": ["x"], "retries": 0}])
    for attempt in range(1, 7):
        (a,) = run.startable(float(attempt))
        assert a.attempt == attempt
        run.finished("t", attempt, failed("host_lost"), "w", float(attempt))
    task = run.results(9.0)["tasks"][0]
    assert (task["state"], task["reason"], task["attempts"]) == ("failed", "host_lost", 6)
    assert task["error"].startswith("lost 6 attempts")


def test_outputs_are_released_once_no_attempt_can_read_them(tmp_path: Path) -> None:
    run = make_run(tmp_path, [
        {"id": "a", "module": GREET, "inputs": ["x"]},
        {"id": "b", "module": GREET, "inputs": ["output_of_a"], "retries": 1},
        {"id": "c", "module": GREET, "inputs": ["output_of_a", "output_of_b"]},
    ])  # fmt: skip
    run.startable(0.0)
    run.finished("a", 1, ok(), "w", 0.1)
    assert run.unneeded_outputs("a") == []  # b and c will read it
    run.startable(0.1)
    run.finished("b", 1, failed("trap"), "w", 0.2)
    assert run.unneeded_outputs("b") == []  # b runs again and reads a
    run.startable(5.0)
    run.finished("b", 2, ok(), "w", 5.1)
    assert run.unneeded_outputs("b") == []  # c still reads a and b
    run.startable(5.1)
    run.finished("c", 1, ok(), "w", 5.2)
    assert sorted(run.unneeded_outputs("c")) == ["a", "b", "c"]


def test_a_tasks_memory_raises_its_modules_cap_and_is_asked_of_the_engine(tmp_path: Path) -> None:
    run = make_run(tmp_path, [
        {"id": "small", "module": GREET, "inputs": ["x"], "memory": 64},
        {"id": "big", "module": GREET, "inputs": ["x"], "memory": 512},
        {"id": "any", "module": GREET, "inputs": ["x"]},
    ])  # fmt: skip
    caps = {a.task_id: (a.ram_mb, a.memory_mb) for a in run.startable(0.0)}
    assert caps == {"small": (128, 64), "big": (512, 512), "any": (128, 0)}


def test_the_kept_counts_match_the_tasks_through_every_kind_of_change(tmp_path: Path) -> None:
    import random

    tasks = [{"id": f"t{i}", "module": GREET, "inputs": ["x"] if i < 5 else [f"output_of_t{i - 5}"], "retries": 1}
             for i in range(40)]  # fmt: skip
    for seed in range(20):
        rng = random.Random(seed)
        run = make_run(tmp_path, tasks)
        now = 0.0
        while not run.done and now < 1000:
            now += 1.0
            for attempt in run.startable(now):
                outcome = rng.choice([ok(), ok(), failed("trap"), failed("host_lost"), failed("memory_limit")])
                run.finished(attempt.task_id, attempt.attempt, outcome, "w", now)
            if rng.random() < 0.02:
                run.cancel(now)
            recount = {state: sum(t.state == state for t in run.tasks.values()) for state in run.counts}
            assert run.counts == recount, seed
        assert run.done
