"""The pieces of a submission built off the controller's loop (issue 16, item 6) give exactly what
the loop used to build itself: the same scheduler state, the same queue order, a journal that
restores the same DAG, old journals included."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

import msgpack

from bxthre3.controller.store import Store, spec_blob
from bxthre3.controller.submissions import SubmitJob, is_submit, prepare_submission
from bxthre3.scheduler import DagSubmitted, HostJoined, Scheduler, TaskState
from bxthre3.scheduler.core import prepare_dag
from bxthre3.scheduler.ready_queue import ReadyQueue
from bxthre3.wire import protocol
from tests.unit.test_store import spec, t


def test_push_many_queues_like_push_one_by_one_whatever_the_memory_needs() -> None:
    for tasks in ([("a", 0), ("b", 0), ("c", 0)], [("a", 0), ("b", 512), ("c", 0), ("d", 512), ("e", 64)]):
        one, many = ReadyQueue(), ReadyQueue()
        one.push("old", "x", 512)
        many.push("old", "x", 512)
        for task_id, memory in tasks:
            one.push("d", task_id, memory)
        many.push_many("d", tasks)
        one.push("new", "y", 0, front=True)
        many.push("new", "y", 0, front=True)
        assert len(one) == len(many) and list(one) == list(many)
        assert [one.pop_for(1024) for _ in range(len(one))] == [many.pop_for(1024) for _ in range(len(many))]


def test_a_prepared_dag_gives_the_scheduler_the_state_it_builds_itself() -> None:
    dag = spec(t("a"), t("b", "a"), t("c", memory=64), t("d", "b", "c"))
    own, prepared = Scheduler(), Scheduler()
    assert own.handle(DagSubmitted("d1", dag, 5.0)) == prepared.handle(
        DagSubmitted("d1", dag, 5.0, prepare_dag("ignored", dag, 5.0))
    )
    for s in (own, prepared):
        record = s.dags["d1"]
        assert record.id == "d1"
        assert {k: record.tasks[k].state for k in "abcd"} == {
            "a": TaskState.READY, "b": TaskState.PENDING, "c": TaskState.READY, "d": TaskState.PENDING,
        }  # fmt: skip
        assert record.counts[TaskState.READY] == 2 and record.counts[TaskState.PENDING] == 2
        assert record.dependents["b"] == ["d"] and record.tasks["d"].waiting_on == 2
        assert not record.dirty, "a new DAG's tasks need no journal rows"
    assert list(own.ready) == list(prepared.ready) == [("d1", "a"), ("d1", "c")]
    out = prepared.handle(HostJoined("h", "node", 2, 128, 6.0))
    assert sorted(a.task_id for a in out) == ["a", "c"]  # type: ignore[attr-defined]


def test_a_new_dag_is_one_compressed_row_and_restores_ready(tmp_path: Path) -> None:
    dag = spec(t("a"), t("b", "a"), t("c"))
    s = Scheduler()
    store = Store(tmp_path)
    store.add_dag("d1", dag, 100.0, spec_blob(dag))
    s.handle(DagSubmitted("d1", dag, 100.0, prepare_dag("d1", dag, 100.0)))
    store.flush(s)
    store.close()
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    (blob,) = db.execute("SELECT spec FROM dags").fetchone()
    db.close()
    assert blob[:1] == b"\x78"  # zlib
    fresh = Scheduler()
    assert Store(tmp_path).load(fresh, 200.0) == 1
    assert fresh.dags["d1"].spec.to_wire() == dag.to_wire()
    assert list(fresh.ready) == [("d1", "a"), ("d1", "c")]
    assert fresh.dags["d1"].tasks["b"].state is TaskState.PENDING


def test_a_journal_written_before_compression_still_loads(tmp_path: Path) -> None:
    dag = spec(t("a"), t("b", "a"))
    Store(tmp_path).close()
    wire = dag.to_wire()
    del wire["modules"]
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("INSERT INTO modules VALUES (?, ?)", next(iter(dag.modules.items())))
    db.execute(
        "INSERT INTO dags VALUES ('old', 'j', ?, 'running', 1.0, NULL)", (msgpack.packb(wire, use_bin_type=True),)
    )
    db.commit()
    db.close()
    fresh = Scheduler()
    assert Store(tmp_path).load(fresh, 2.0) == 1
    assert fresh.dags["old"].spec.to_wire() == dag.to_wire() and list(fresh.ready) == [("old", "a")]


def test_prepare_submission_from_a_raw_frame_a_decoded_one_and_a_bad_one() -> None:
    dag = spec(t("a"), t("b", "a"))
    frame = protocol.encode(protocol.Submit(7, dag.to_wire()))
    assert is_submit(frame) == 7
    assert is_submit(protocol.encode(protocol.StatusRequest(7))) is None
    assert is_submit(b"\x94\x02\xa6submit") is None  # no req_id
    raw = prepare_submission(SubmitJob(b"id", 7, payload=frame))
    decoded = prepare_submission(SubmitJob(b"id", 7, message=protocol.Submit(7, dag.to_wire())))
    for outcome in (raw, decoded):
        assert outcome.spec is not None and outcome.spec.to_wire() == dag.to_wire()
        assert outcome.prepared is not None and not outcome.error
        assert msgpack.unpackb(zlib.decompress(outcome.blob))["tasks"] == dag.to_wire()["tasks"]
    assert prepare_submission(SubmitJob(b"id", 7, payload=frame[:-3])).bad_frame.startswith("not msgpack")
    wire = dag.to_wire()
    wire["tasks"][1]["depends_on"] = ["zzz"]
    error = prepare_submission(SubmitJob(b"id", 7, message=protocol.Submit(7, wire))).error
    assert "unknown task 'zzz'" in error and "\n" not in error
    assert prepare_submission(SubmitJob(b"id", 7, payload=frame, refused="slow down")).error == "slow down"
