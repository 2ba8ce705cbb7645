"""Which tasks a UI's capped task table gets for a big DAG (chosen by the controller)."""

from __future__ import annotations

from bxthre3.controller.views import pick_tasks
from bxthre3.dag.spec import TaskSpec
from bxthre3.scheduler import TaskRecord, TaskState


def t(i: int, state: str, finished_at: float | None = None) -> TaskRecord:
    spec = TaskSpec(id=f"t{i}", module="0" * 64, module_name="m.wasm")
    return TaskRecord(spec=spec, waiting_on=0, state=TaskState(state), finished_at=finished_at)


def ids(tasks: list[TaskRecord]) -> list[str]:
    return [task.spec.id for task in tasks]


def test_small_dags_are_shown_whole_in_order() -> None:
    tasks = [t(0, "succeeded", 1.0), t(1, "running"), t(2, "pending")]
    assert pick_tasks(tasks, limit=5) == tasks


def test_unfinished_and_failed_first_then_the_most_recently_finished_in_dag_order() -> None:
    tasks = [t(0, "succeeded", 1.0), t(1, "succeeded", 9.0), t(2, "running"), t(3, "pending"),
             t(4, "failed", 2.0), t(5, "succeeded", 5.0), t(6, "ready")]  # fmt: skip
    assert ids(pick_tasks(tasks, limit=5)) == ["t1", "t2", "t3", "t4", "t6"]  # t0, t5 finished longest ago


def test_ten_thousand_tasks_are_capped() -> None:
    tasks = [t(i, "succeeded", float(i)) for i in range(10_000)]
    shown = pick_tasks(tasks, limit=500)
    assert len(shown) == 500 and ids(shown)[0] == "t9500" and ids(shown)[-1] == "t9999"
