"""Which tasks the monitor's capped task table shows for a big DAG."""

from __future__ import annotations

from bxthre3.tui.formatting import pick_tasks


def t(i: int, state: str, finished_at: float | None = None) -> dict:
    return {"task_id": f"t{i}", "state": state, "finished_at": finished_at}


def test_small_dags_are_shown_whole_in_order() -> None:
    tasks = [t(0, "succeeded", 1.0), t(1, "running"), t(2, "pending")]
    assert pick_tasks(tasks, limit=5) == tasks


def test_unfinished_and_failed_first_then_the_most_recently_finished_in_dag_order() -> None:
    tasks = [t(0, "succeeded", 1.0), t(1, "succeeded", 9.0), t(2, "running"), t(3, "pending"),
             t(4, "failed", 2.0), t(5, "succeeded", 5.0), t(6, "ready")]  # fmt: skip
    shown = [x["task_id"] for x in pick_tasks(tasks, limit=5)]
    assert shown == ["t1", "t2", "t3", "t4", "t6"]  # t0 and t5 finished longest ago; t1 most recently


def test_ten_thousand_tasks_are_capped() -> None:
    tasks = [t(i, "succeeded", float(i)) for i in range(10_000)]
    shown = pick_tasks(tasks, limit=500)
    assert len(shown) == 500 and shown[0]["task_id"] == "t9500" and shown[-1]["task_id"] == "t9999"
