"""The result cache in the pure scheduler: ServeCached instead of an Assign, StoreCached on success.

The shell (the controller) answers each ServeCached with CacheServed or CacheMissing; here the tests
play the shell, with a dict for the store. Invariants are checked after every event."""

from __future__ import annotations

import dataclasses

from bxthre3.common.failures import FailureReason
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput
from bxthre3.scheduler import (
    Assign,
    CacheEvicted,
    CacheLoaded,
    CacheMissing,
    CacheServed,
    DagCancelled,
    DagFinished,
    DagState,
    DagSubmitted,
    HostJoined,
    SchedulerConfig,
    ServeCached,
    StoreCached,
    TaskFinished,
    TaskState,
)
from bxthre3.scheduler.core import prepare_dag
from bxthre3.scheduler.instructions import Instruction
from tests.unit.test_scheduler import SHA, RealScheduler, dag, out, task

CONFIG = SchedulerConfig(result_cache=True, retry_backoff=0.0)


class Shell:
    """A scheduler with one 4-slot host, and the shell's side of the cache: a dict of entries."""

    def __init__(self, config: SchedulerConfig = CONFIG) -> None:
        self.s = RealScheduler(config, rng=lambda: 0.5)
        self.store: dict[str, tuple[bytes, dict[str, bytes] | None]] = {}
        self.ran: list[str] = []
        self.served: list[str] = []
        self.now = 0.0
        self.s.handle(HostJoined("h", "n", 4, 1024, 0.0))

    def run(self, dag_id: str, spec: DagSpec, outputs: dict[str, bytes] | None = None, answer: bool = True) -> None:
        """Submit and play hosts and shell until nothing is left to do; each task outputs its id (or `outputs`)."""
        pending = list(self.s.handle(DagSubmitted(dag_id, spec, self.now, prepare_dag(dag_id, spec, self.now))))
        while pending:
            ins = pending.pop(0)
            self.now += 1.0
            if isinstance(ins, Assign):
                self.ran.append(ins.task_id)
                output = (outputs or {}).get(ins.task_id, ins.task_id.encode() + ins.stdin)
                ev = TaskFinished(ins.host_id, ins.dag_id, ins.task_id, ins.attempt, self.now, output=output)
                pending += self.s.handle(ev)
            elif isinstance(ins, StoreCached):
                self.store[ins.key] = (ins.output, dict(ins.files) if ins.files else None)
            elif isinstance(ins, ServeCached) and answer:
                pending += self.answer(ins)

    def answer(self, ins: ServeCached) -> list[Instruction]:
        entry = self.store.get(ins.key)
        if entry is None:
            return self.s.handle(CacheMissing(ins.dag_id, ins.task_id, ins.key, self.now))
        self.served.append(ins.task_id)
        return self.s.handle(CacheServed(ins.dag_id, ins.task_id, ins.key, self.now, entry[0], entry[1]))


def chain() -> DagSpec:
    return dag(task("a"), task("b", "a", inputs=(out("a"),)), task("c", "b", inputs=(out("b"),)))


def test_a_second_run_of_the_same_dag_is_served_whole_from_the_cache() -> None:
    sh = Shell()
    sh.run("d1", chain())
    assert sh.ran == ["a", "b", "c"] and len(sh.store) == 3 and sh.s.cache_misses == 3
    sh.ran.clear()
    sh.run("d2", chain())
    d2 = sh.s.dags["d2"]
    assert sh.ran == [] and sh.served == ["a", "b", "c"]
    assert d2.state is DagState.SUCCEEDED and all(t.cached and t.recorded == 1 for t in d2.tasks.values())
    assert d2.tasks["c"].output == sh.s.dags["d1"].tasks["c"].output == b"cba"
    assert sh.s.cache_hits == 3 and not sh.s.serving


def test_a_changed_task_reruns_with_what_depends_on_it_and_nothing_else() -> None:
    sh = Shell()
    spec = dag(task("a"), task("x"), task("b", "a", inputs=(out("a"),)), task("c", "b", inputs=(out("b"),)))
    sh.run("d1", spec)
    sh.ran.clear()
    changed = dataclasses.replace(spec.tasks[0], inputs=(TaskInput(InputKind.LITERAL, "new"),))
    sh.run("d2", dataclasses.replace(spec, tasks=(changed, *spec.tasks[1:])), outputs={"a": b"A2"})
    assert sh.ran == ["a", "b", "c"] and sh.served == ["x"]


def test_an_unchanged_upstream_output_keeps_dependents_cached() -> None:
    """`a` changed but wrote the same bytes: `b` reads the same stdin, so its key is the same."""
    sh = Shell()
    spec = chain()
    sh.run("d1", spec, outputs={"a": b"same"})
    sh.ran.clear()
    changed = dataclasses.replace(spec.tasks[0], inputs=(TaskInput(InputKind.LITERAL, "new"),))
    sh.run("d2", dataclasses.replace(spec, tasks=(changed, *spec.tasks[1:])), outputs={"a": b"same"})
    assert sh.ran == ["a"] and sh.served == ["b", "c"]


def test_a_missing_entry_runs_the_task_and_forgets_the_key() -> None:
    sh = Shell()
    sh.run("d1", dag(task("a")))
    [key] = sh.store
    sh.store.clear()  # evicted behind the scheduler's back, or unreadable
    sh.ran.clear()
    sh.run("d2", dag(task("a")))
    assert sh.ran == ["a"] and sh.served == [] and sh.s.dags["d2"].state is DagState.SUCCEEDED
    assert not sh.s.dags["d2"].tasks["a"].cached and key in sh.s.cache_keys, "stored again after it ran"


def test_evicted_keys_are_not_asked_for() -> None:
    sh = Shell()
    sh.run("d1", dag(task("a")))
    sh.s.handle(CacheEvicted(frozenset(sh.store), sh.now))
    assert not sh.s.cache_keys
    sh.ran.clear()
    sh.run("d2", dag(task("a")))
    assert sh.ran == ["a"] and sh.served == []


def test_cache_false_and_no_cache_neither_store_nor_serve() -> None:
    sh = Shell()
    sh.run("d1", dag(dataclasses.replace(task("a"), cache=False)))
    sh.run("d2", dataclasses.replace(dag(task("a")), cache=False))
    assert sh.store == {} and sh.s.cache_misses == 0
    sh.run("d3", dag(task("a")))
    sh.ran.clear()
    sh.run("d4", dag(dataclasses.replace(task("a"), cache=False)))
    sh.run("d5", dataclasses.replace(dag(task("a")), cache=False))
    assert sh.ran == ["a", "a"] and sh.served == []


def test_a_module_reading_the_clock_is_cached_only_when_it_runs_seeded() -> None:
    sh = Shell()
    clocky = dataclasses.replace(dag(task("a")), volatile_modules=frozenset({SHA}))
    sh.run("d1", clocky)
    sh.run("d2", clocky)
    assert sh.ran == ["a", "a"] and sh.store == {}
    seeded = dataclasses.replace(clocky, tasks=(dataclasses.replace(task("v"), verify=2),))
    sh2 = Shell()
    sh2.s.handle(HostJoined("h2", "n2", 1, 1024, 0.0, device_id="other"))  # verify: 2 needs two devices
    sh2.run("d1", seeded)
    assert len(sh2.store) == 1 and sh2.ran == ["v", "v"]
    sh2.ran.clear()
    sh2.run("d2", seeded)
    assert sh2.ran == [] and sh2.served == ["v"]


def test_a_failed_task_is_not_cached() -> None:
    sh = Shell()
    a = [i for i in sh.s.handle(DagSubmitted("d1", dag(dataclasses.replace(task("a"), retries=0)), 0.0))]
    [assign] = [i for i in a if isinstance(i, Assign)]
    failed = TaskFinished("h", "d1", "a", assign.attempt, 1.0, reason=FailureReason.EXIT_CODE, exit_code=1)
    got = sh.s.handle(failed)
    assert not any(isinstance(i, StoreCached) for i in got) and not sh.s.cache_keys


def test_keys_loaded_at_start_serve_tasks_of_a_restored_dag_and_a_stale_answer_is_ignored() -> None:
    sh = Shell()
    sh.run("d1", dag(task("a")))
    [key] = sh.store
    fresh = RealScheduler(CONFIG, rng=lambda: 0.5)
    fresh.cache_keys = {key}  # as the store sets it before restoring DAGs
    spec = dag(task("a"), task("b", "a", inputs=(out("a"),)))
    fresh.restore_dag("d2", spec, 0.0, DagState.RUNNING, None, {}, 5.0)
    [serve] = [i for i in fresh.handle(HostJoined("h", "n", 1, 128, 5.0)) if isinstance(i, ServeCached)]
    assert serve.task_id == "a" and fresh.dags["d2"].tasks["a"].state is TaskState.READY
    assert not fresh.handle(CacheServed("d2", "a", "0" * 64, 6.0, b"wrong")), "an answer for another key"
    got = fresh.handle(CacheServed("d2", "a", key, 6.0, b"a"))
    assert [i.task_id for i in got if isinstance(i, Assign)] == ["b"]
    assert not fresh.handle(CacheServed("d2", "a", key, 7.0, b"a")), "a second answer is stale"


def test_a_cancel_while_the_cache_is_read_wins() -> None:
    sh = Shell()
    sh.run("d1", dag(task("a")))
    got = sh.s.handle(DagSubmitted("d2", dag(task("a")), 1.0, prepare_dag("d2", dag(task("a")), 1.0)))
    [serve] = [i for i in got if isinstance(i, ServeCached)]
    assert any(isinstance(i, DagFinished) for i in sh.s.handle(DagCancelled("d2", 2.0)))
    sh.answer(serve)
    assert sh.s.dags["d2"].tasks["a"].state is TaskState.CANCELLED and not sh.s.serving


def test_the_bare_scheduler_caches_nothing() -> None:
    sh = Shell(SchedulerConfig())
    sh.run("d1", dag(task("a")))
    sh.run("d2", dag(task("a")))
    assert sh.store == {} and sh.ran == ["a", "a"]


def test_cache_loaded_adds_keys() -> None:
    sh = Shell()
    sh.s.handle(CacheLoaded(frozenset({"k"}), 0.0))
    assert sh.s.cache_keys == {"k"}
