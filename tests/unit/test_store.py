"""The SQLite journal: what the scheduler holds survives a restart, byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bxthre3.common.errors import Bxthre3Error
from bxthre3.common.failures import FailureReason
from bxthre3.controller.store import INLINE_OUTPUT_BYTES, PrunePolicy, Store
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec
from bxthre3.scheduler import (
    DagRetried,
    DagState,
    DagSubmitted,
    DeviceTrusted,
    HostJoined,
    QuarantineRecord,
    Scheduler,
    SchedulerConfig,
    TaskFinished,
    TaskState,
)
from tests.conftest import WASM_MODULES

MODULE = (WASM_MODULES / "noop.wasm").read_bytes()
SHA = hashlib.sha256(MODULE).hexdigest()


def spec(*tasks: TaskSpec, name: str = "j") -> DagSpec:
    return DagSpec(name=name, tasks=tuple(tasks), modules={SHA: MODULE})


def t(tid: str, *deps: str, **kw: object) -> TaskSpec:
    inputs = tuple(TaskInput(InputKind.OUTPUT, d) for d in deps)
    return TaskSpec(id=tid, module=SHA, module_name="noop.wasm", inputs=inputs, depends_on=deps, **kw)  # type: ignore[arg-type]


def test_flush_then_load_restores_states_outputs_and_attempts(tmp_path: Path) -> None:
    config = SchedulerConfig(retry_backoff=0.0)
    s = Scheduler(config)
    store = Store(tmp_path)
    dag_spec = spec(t("a"), t("b", "a"), t("c", retries=0), t("d", "c"), t("big"))
    store.add_dag("d1", dag_spec, 1000.0)
    s.handle(DagSubmitted("d1", dag_spec, 1000.0))
    out = s.handle(HostJoined("h", "node", 3, 128, 1000.0))
    by_task = {a.task_id: a for a in out if hasattr(a, "task_id") and type(a).__name__ == "Assign"}
    big = b"x" * (INLINE_OUTPUT_BYTES + 1)
    s.handle(TaskFinished("h", "d1", "a", 1, 1001.0, output=b"A\x00"))
    s.handle(TaskFinished("h", "d1", "c", 1, 1001.0, exit_code=3, reason=FailureReason.EXIT_CODE, error="boom"))
    s.handle(TaskFinished("h", "d1", "big", 1, 1001.0, output=big))
    assert set(by_task) == {"a", "c", "big"}
    assert store.flush(s) > 0
    assert store.flush(s) == 0, "nothing is dirty after a flush"
    store.close()
    assert any((tmp_path / "outputs" / "d1").iterdir()), "the big output went to a file"

    fresh = Scheduler(config)
    store2 = Store(tmp_path)
    assert store2.load(fresh, now=2000.0) == 1
    d = fresh.dags["d1"]
    assert d.tasks["a"].state is TaskState.SUCCEEDED and d.tasks["a"].output == b"A\x00"
    assert d.tasks["big"].output == big
    assert d.tasks["c"].state is TaskState.FAILED and d.tasks["c"].reason is FailureReason.EXIT_CODE
    assert d.tasks["d"].state is TaskState.UPSTREAM_FAILED
    assert d.tasks["b"].state is TaskState.RUNNING, "b was assigned right after a succeeded"
    assert ("d1", "b") in fresh.limbo
    assert d.tasks["a"].attempts[0].node_id == "node" and d.tasks["a"].recorded == 1
    assert d.failures == {"exit_code": 1}
    assert sum(d.counts.values()) == 5
    store2.close()


def test_a_retried_dag_is_running_again_after_a_restart(tmp_path: Path) -> None:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0))
    store = Store(tmp_path)
    dag_spec = spec(t("a"), t("b", "a", retries=0))
    store.add_dag("d1", dag_spec, 1.0)
    s.handle(DagSubmitted("d1", dag_spec, 1.0))
    s.handle(HostJoined("h", "node", 1, 128, 1.0))
    s.handle(TaskFinished("h", "d1", "a", 1, 2.0, output=b"A"))
    s.handle(TaskFinished("h", "d1", "b", 1, 3.0, exit_code=3, reason=FailureReason.EXIT_CODE, error="boom"))
    store.flush(s)
    assert s.dags["d1"].state is DagState.FAILED
    s.handle(DagRetried("d1", 4.0))
    store.flush(s)
    store.close()
    fresh = Scheduler()
    Store(tmp_path).load(fresh, 5.0)
    d = fresh.dags["d1"]
    assert d.state is DagState.RUNNING and d.finished_at is None and not d.failures
    assert d.tasks["a"].output == b"A" and d.tasks["b"].reason is None and d.tasks["b"].error == ""
    assert d.tasks["b"].state in (TaskState.READY, TaskState.RUNNING) and d.tasks["b"].failures == 0


def test_an_unflushed_change_is_not_in_the_journal(tmp_path: Path) -> None:
    s = Scheduler()
    store = Store(tmp_path)
    store.add_dag("d1", spec(t("a")), 1.0)
    s.handle(DagSubmitted("d1", spec(t("a")), 1.0))
    store.flush(s)
    s.handle(HostJoined("h", "n", 1, 128, 2.0))  # assigns a: not flushed
    store.close()  # like a crash before the commit (close commits nothing pending)
    fresh = Scheduler()
    Store(tmp_path).load(fresh, 3.0)
    assert fresh.dags["d1"].tasks["a"].state is TaskState.READY


def test_prune_keeps_running_and_recent_dags(tmp_path: Path) -> None:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0))
    store = Store(tmp_path)
    for i in range(4):
        sp = spec(t("a"), name=f"j{i}")
        store.add_dag(f"d{i}", sp, float(i))
        s.handle(DagSubmitted(f"d{i}", sp, float(i)))
    s.handle(HostJoined("h", "n", 1, 128, 10.0))
    for i in range(3):  # d0..d2 finish in order; d3 stays running
        s.handle(TaskFinished("h", f"d{i}", "a", 1, 10.0 + i, output=b""))
    store.flush(s)
    assert [d.state for d in s.dags.values()].count(DagState.SUCCEEDED) == 3
    pruned = store.prune(s, now=20.0, policy=PrunePolicy(keep=1, max_age_s=1e9))
    assert sorted(pruned) == ["d0", "d1"]
    assert sorted(s.dags) == ["d2", "d3"]
    assert store.prune(s, now=1e6, policy=PrunePolicy(keep=10, max_age_s=100.0)) == ["d2"]
    fresh = Scheduler()
    Store(tmp_path).load(fresh, 1e6)
    assert sorted(fresh.dags) == ["d3"]


def test_in_memory_store_works_and_keeps_nothing() -> None:
    s = Scheduler()
    store = Store(":memory:")
    store.add_dag("d1", spec(t("a")), 1.0)
    s.handle(DagSubmitted("d1", spec(t("a")), 1.0))
    assert store.flush(s) >= 1
    store.close()


def test_a_full_disk_is_told_apart_where_sqlite3_names_no_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.10's sqlite3 has no `SQLITE_FULL` (nor `sqlite_errorcode`): telling a full disk must not raise there."""
    import sqlite3

    from bxthre3.controller.store import _write_error

    monkeypatch.delattr(sqlite3, "SQLITE_FULL", raising=False)
    assert _write_error(sqlite3.OperationalError("database or disk is full"), "/state").disk_full
    by_code = sqlite3.OperationalError("disk I/O error")
    by_code.sqlite_errorcode = 13  # type: ignore[attr-defined]  # SQLITE_FULL, as 3.11+ sets it
    assert _write_error(by_code, "/state").disk_full
    assert not _write_error(sqlite3.OperationalError("disk I/O error"), "/state").disk_full


def _quarantine(s: Scheduler, device_id: str, device: str, since: float = 50.0, mismatches: int = 3) -> None:
    """What the scheduler does when a device loses too many votes (its own tests cover when)."""
    reason = f"output of d1/t{mismatches} disagreed with 2 devices"
    s.quarantined[device_id] = QuarantineRecord(device_id, device, since, mismatches, reason)
    s.mismatches[device_id] = mismatches
    s.quarantine_changed = True


def test_a_quarantined_device_is_still_quarantined_after_a_restart(tmp_path: Path) -> None:
    s = Scheduler()
    store = Store(tmp_path)
    _quarantine(s, "3f2a9c01aa", "phone")
    _quarantine(s, "9c01ffee00", "phone", since=60.0, mismatches=4)
    assert store.flush(s) == 1 and not s.quarantine_changed
    assert store.flush(s) == 0, "an unchanged quarantine is not written again"
    s.handle(DeviceTrusted("9c01ffee00", 70.0))
    assert s.quarantine_changed and "9c01ffee00" not in s.quarantined
    store.flush(s)
    store.close()

    fresh = Scheduler()
    store2 = Store(tmp_path)
    assert store2.load(fresh, 100.0) == 0
    assert fresh.quarantined == {
        "3f2a9c01aa": QuarantineRecord("3f2a9c01aa", "phone", 50.0, 3, "output of d1/t3 disagreed with 2 devices")
    }
    assert fresh.mismatches["3f2a9c01aa"] == 3 and not fresh.quarantine_changed
    fresh.handle(DeviceTrusted("3f2a9c01aa", 101.0))
    store2.flush(fresh)
    store2.close()
    again = Scheduler()
    Store(tmp_path).load(again, 102.0)
    assert again.quarantined == {}


def test_an_unflushed_quarantine_is_not_in_the_journal(tmp_path: Path) -> None:
    s = Scheduler()
    store = Store(tmp_path)
    _quarantine(s, "3f2a9c01aa", "phone")
    store.close()
    fresh = Scheduler()
    Store(tmp_path).load(fresh, 1.0)
    assert fresh.quarantined == {}


def test_a_journal_of_schema_1_is_migrated_and_keeps_its_dags(tmp_path: Path) -> None:
    """Schema 2 added `quarantined`: a journal written before it opens, gains the table, and says 2."""
    import sqlite3

    s = Scheduler()
    store = Store(tmp_path)
    store.add_dag("d1", spec(t("a")), 1.0)
    store.close()
    db = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    db.execute("DROP TABLE quarantined")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.close()

    store = Store(tmp_path)
    assert store.load(s, 2.0) == 1 and "d1" in s.dags
    assert store.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("3",)
    _quarantine(s, "3f2a9c01aa", "phone")
    store.flush(s)
    store.close()
    fresh = Scheduler()
    Store(tmp_path).load(fresh, 3.0)
    assert list(fresh.quarantined) == ["3f2a9c01aa"]


def test_a_journal_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    db.execute("UPDATE meta SET value='4' WHERE key='schema'")
    db.close()
    with pytest.raises(Bxthre3Error, match="holds state of schema 4; this controller reads 3"):
        Store(tmp_path)


def test_a_journal_of_schema_2_gains_the_cache_and_the_cached_column(tmp_path: Path) -> None:
    import sqlite3

    store = Store(tmp_path)
    store.add_dag("d1", spec(t("a")), 1.0)
    store.close()
    db = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    db.execute("DROP TABLE cache")
    db.execute("CREATE TABLE t2 AS SELECT dag_id, task_id FROM tasks")  # any table: the column goes below
    db.execute("ALTER TABLE tasks DROP COLUMN cached")
    db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    db.close()
    s = Scheduler()
    store = Store(tmp_path)
    assert store.load(s, 2.0) == 1
    assert "cached" in {row[1] for row in store.db.execute("PRAGMA table_info(tasks)")}
    assert store.cache_put("k" * 64, b"out", None) == []
    store.flush(s)
