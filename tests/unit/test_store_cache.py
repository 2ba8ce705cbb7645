"""The result cache in the journal: entries survive a restart, the size cap evicts least recently used,
a damaged entry is dropped, never served, and a served task's `cached` mark is journalled."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bxthre3.controller.store import MEMORY, Store
from bxthre3.scheduler import (
    CacheServed,
    DagSubmitted,
    HostJoined,
    Scheduler,
    SchedulerConfig,
    ServeCached,
    StoreCached,
    TaskFinished,
)
from tests.unit.test_store import spec, t

K1, K2, K3 = ("1" * 64, "2" * 64, "3" * 64)


def test_entries_survive_a_restart_with_their_files(tmp_path: Path) -> None:
    s = Scheduler()
    store = Store(tmp_path)
    store.load(s, 0.0)
    assert store.cache_put(K1, b"out", {"a/b.txt": b"\x00B"}) == []
    assert store.cache_get(K1) == (b"out", {"a/b.txt": b"\x00B"}), "readable before the commit"
    store.flush(s)
    store.close()
    fresh = Scheduler()
    store = Store(tmp_path)
    store.load(fresh, 1.0)
    assert fresh.cache_keys == {K1} and store.cache_stats()["entries"] == 1
    assert store.cache_get(K1) == (b"out", {"a/b.txt": b"\x00B"})


def test_the_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    s = Scheduler()
    store = Store(tmp_path)
    store.cache_cap = 10
    assert store.cache_put(K1, b"1234", None) == []
    assert store.cache_put(K2, b"5678", None) == []
    assert store.cache_get(K1) is not None  # K1 used last: K2 goes first
    assert store.cache_put(K3, b"9abc", None) == [K2]
    assert store.cache_put("4" * 64, b"x" * 11, None) == ["4" * 64], "larger than the cap: not kept"
    store.flush(s)
    store.close()
    store = Store(tmp_path)
    store.cache_cap = 4  # a smaller cap at the next start
    fresh = Scheduler()
    store.load(fresh, 1.0)
    assert fresh.cache_keys == {K3}, "K1 was used before K3 was stored"
    assert store.cache_stats() == {"entries": 1, "bytes": 4, "cap": 4}


def test_a_damaged_entry_is_dropped_not_served(tmp_path: Path) -> None:
    s = Scheduler()
    store = Store(tmp_path)
    store.cache_put(K1, b"right", None)
    store.flush(s)
    store.close()
    db = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    db.execute("UPDATE cache SET output=? WHERE key=?", (b"wrong", K1))
    db.close()
    store = Store(tmp_path)
    store.load(Scheduler(), 1.0)
    assert store.cache_get(K1) is None and store.cache_stats()["entries"] == 0


def test_clear_drops_everything() -> None:
    s = Scheduler()
    store = Store(MEMORY)
    store.cache_put(K1, b"a", None)
    store.cache_put(K2, b"b", None)
    store.flush(s)
    assert sorted(store.cache_clear()) == [K1, K2]
    store.flush(s)
    assert store.db.execute("SELECT COUNT(*) FROM cache").fetchone() == (0,)


def test_a_served_task_stays_cached_across_a_restart(tmp_path: Path) -> None:
    s = Scheduler(SchedulerConfig(result_cache=True))
    store = Store(tmp_path)
    store.load(s, 0.0)
    dag = spec(t("a"))
    for dag_id in ("d1", "d2"):
        store.add_dag(dag_id, dag, 0.0)
    s.handle(HostJoined("h", "n", 1, 128, 0.0))
    [assign] = s.handle(DagSubmitted("d1", dag, 0.0))
    finished = s.handle(TaskFinished("h", "d1", "a", assign.attempt, 1.0, output=b"A"))
    [put] = [i for i in finished if isinstance(i, StoreCached)]
    store.cache_put(put.key, put.output, put.files)
    [serve] = [i for i in s.handle(DagSubmitted("d2", dag, 2.0)) if isinstance(i, ServeCached)]
    entry = store.cache_get(serve.key)
    assert entry is not None
    s.handle(CacheServed("d2", "a", serve.key, 3.0, *entry))
    store.flush(s)
    store.close()
    fresh = Scheduler()
    Store(tmp_path).load(fresh, 4.0)
    assert fresh.dags["d2"].tasks["a"].cached and not fresh.dags["d1"].tasks["a"].cached
    assert fresh.dags["d2"].tasks["a"].output == b"A"
