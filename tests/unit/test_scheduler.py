"""Scheduler transitions: these events give exactly these instructions. No sockets, no clocks."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from typing import Any

import pytest

from bxthre3.common.failures import FailureReason
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec
from bxthre3.scheduler import (
    AbortAttempt,
    AckResult,
    Assign,
    AttemptEnded,
    DagCancelled,
    DagFinished,
    DagRetried,
    DagState,
    DagSubmitted,
    ForgetHost,
    HostJoined,
    HostLeft,
    HostSeen,
    InvariantError,
    SchedulerConfig,
    TaskFinished,
    TaskState,
    Tick,
)
from bxthre3.scheduler import Scheduler as UncheckedScheduler
from bxthre3.scheduler.core import ASSIGNMENT_GRACE_S, REPLACED
from bxthre3.scheduler.events import Event
from bxthre3.scheduler.instructions import Instruction
from bxthre3.scheduler.model import DagRecord


class RealScheduler(UncheckedScheduler):
    """The real scheduler, checking its invariants after every event and restore: every test here checks
    them too, so a transition that leaves its records inconsistent fails the test that made it."""

    validate_every = 1
    """Events between checks: a check walks every task, so a test of thousands of events on thousands
    of tasks checks every so often instead (quadratic otherwise: 2,000 x 2,000 tasks took 16 s)."""
    _events = 0

    def handle(self, event: Event) -> list[Instruction]:
        out = super().handle(event)
        self._events += 1
        if self._events % self.validate_every == 0:
            self.validate()
        return out

    def restore_dag(self, *args: Any, **kwargs: Any) -> DagRecord:
        dag = super().restore_dag(*args, **kwargs)
        self.validate()
        return dag


MODULE = b"\x00asm\x01\x00\x00\x00"
SHA = hashlib.sha256(MODULE).hexdigest()


def task(tid: str, *deps: str, inputs: tuple[TaskInput, ...] = (), retries: int | None = None) -> TaskSpec:
    return TaskSpec(id=tid, module=SHA, module_name="m.wasm", inputs=inputs, depends_on=deps, retries=retries)


def out(tid: str) -> TaskInput:
    return TaskInput(InputKind.OUTPUT, tid)


def dag(*tasks: TaskSpec) -> DagSpec:
    return DagSpec(name="test", tasks=tuple(tasks), modules={SHA: MODULE})


def fanout() -> DagSpec:
    return dag(
        task("init", inputs=(TaskInput(InputKind.LITERAL, "Bxthre3"),)),
        task("a", "init", inputs=(out("init"),)),
        task("b", "init", inputs=(TaskInput(InputKind.LITERAL, "x"), out("init"))),
        task("agg", "a", "b", inputs=(out("a"), TaskInput(InputKind.FILE, "f.txt", b"FILE"), out("b"))),
    )


def effects(instructions: list) -> list:
    """Instructions other than result acknowledgements (every result gets one) and attempt ends (metrics only)."""
    return [i for i in instructions if not isinstance(i, (AckResult, AttemptEnded))]


def Scheduler(config: SchedulerConfig | None = None, prefetch: int = 0) -> RealScheduler:  # noqa: N802
    """The real scheduler, with retry backoff off unless a test turns it on, and one assignment per slot
    (prefetching is tested on its own, below; with `prefetch`, whatever the tasks' length)."""
    config = dataclasses.replace(
        config or SchedulerConfig(retry_backoff=0.0),
        prefetch_per_slot=prefetch,
        short_task_prefetch=prefetch,
        long_task_s=float("inf"),
    )
    return RealScheduler(config, rng=lambda: 0.5)


def assigns(instructions: list) -> list[Assign]:
    return [i for i in instructions if isinstance(i, Assign)]


def join(s: Scheduler, host: str, slots: int = 1, now: float = 0.0, modules: frozenset[str] = frozenset()):
    return s.handle(HostJoined(host, f"node-{host}", slots, 128, now, modules=modules))


def ok(s: Scheduler, a: Assign, output: bytes, now: float = 1.0):
    return s.handle(TaskFinished(a.host_id, a.dag_id, a.task_id, a.attempt, now, output=output))


def fail(s: Scheduler, a: Assign, reason: FailureReason = FailureReason.EXIT_CODE, now: float = 1.0):
    return s.handle(
        TaskFinished(a.host_id, a.dag_id, a.task_id, a.attempt, now, exit_code=3, reason=reason, error="boom")
    )


def test_tasks_wait_for_a_host_then_run_in_dependency_order() -> None:
    s = Scheduler()
    assert s.handle(DagSubmitted("d1", fanout(), 0.0)) == []
    assert s.dags["d1"].tasks["init"].state is TaskState.READY
    assert s.dags["d1"].tasks["a"].state is TaskState.PENDING
    [a1] = assigns(join(s, "h1"))
    assert (a1.task_id, a1.attempt, a1.args, a1.stdin, a1.ship_module) == ("init", 1, ("Bxthre3",), b"", True)
    [a2] = assigns(ok(s, a1, b"Bxthre3\n"))
    assert a2.task_id == "a" and a2.stdin == b"Bxthre3\n" and a2.input_sizes == (8,)
    assert a2.ship_module is False, "the host already holds the module"
    [a3] = assigns(ok(s, a2, b"A"))
    assert a3.task_id == "b" and a3.args == ("x",)
    instructions = ok(s, a3, b"BB")
    [a4] = assigns(instructions)
    assert a4.task_id == "agg"
    assert a4.stdin == b"AFILEBB" and a4.input_sizes == (1, 4, 2)
    assert effects(ok(s, a4, b"done")) == [DagFinished("d1", DagState.SUCCEEDED)]
    d = s.dags["d1"]
    assert d.done == 4 and d.counts[TaskState.SUCCEEDED] == 4
    assert d.tasks["agg"].output == b"done"


def test_credit_limits_assignments_to_free_slots_and_prefers_module_holders() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(*(task(f"t{i}") for i in range(5))), 0.0))
    first = assigns(join(s, "cold", slots=2))
    assert [a.host_id for a in first] == ["cold", "cold"]
    warm = assigns(join(s, "warm", slots=1, modules=frozenset({SHA})))
    assert [(a.host_id, a.ship_module) for a in warm] == [("warm", False)]
    assert s.hosts["cold"].free_slots == 0 and s.hosts["warm"].free_slots == 0
    assert len(s.ready) == 2
    nxt = assigns(ok(s, first[0], b""))
    assert [a.host_id for a in nxt] == ["cold"]


def test_failure_is_retried_then_fails_dag_and_marks_dependents_upstream_failed() -> None:
    s = Scheduler(SchedulerConfig(default_retries=1, retry_backoff=0.0))
    spec = dag(task("root"), task("bad", "root"), task("child", "bad"), task("grandchild", "child"), task("side"))
    s.handle(DagSubmitted("d1", spec, 0.0))
    root, side = assigns(join(s, "h1", slots=2))
    [bad] = assigns(ok(s, root, b""))
    [bad2] = assigns(fail(s, bad))
    assert bad2.task_id == "bad" and bad2.attempt == 2
    assert effects(fail(s, bad2)) == []
    d = s.dags["d1"]
    assert d.tasks["bad"].state is TaskState.FAILED
    assert d.tasks["bad"].reason is FailureReason.EXIT_CODE
    assert d.tasks["child"].state is TaskState.UPSTREAM_FAILED
    assert d.tasks["grandchild"].state is TaskState.UPSTREAM_FAILED
    assert "bad" in d.tasks["grandchild"].error
    assert d.state is DagState.RUNNING, "the independent branch is still running"
    assert effects(ok(s, side, b"")) == [DagFinished("d1", DagState.FAILED)]
    assert d.counts[TaskState.SUCCEEDED] == 2


def test_deterministic_failures_are_not_retried() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    [a] = assigns(join(s, "h1"))
    assert effects(fail(s, a, FailureReason.INVALID_MODULE)) == [DagFinished("d1", DagState.FAILED)]


def test_per_task_retries_override_the_default() -> None:
    s = Scheduler(SchedulerConfig(default_retries=5, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(task("t", retries=0)), 0.0))
    [a] = assigns(join(s, "h1"))
    assert effects(fail(s, a)) == [DagFinished("d1", DagState.FAILED)]


def test_stale_duplicate_and_foreign_results_are_ignored() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("t"), task("u", "t")), 0.0))
    [a] = assigns(join(s, "h1"))
    assert assigns(join(s, "h2")) == []
    other = "h2"
    # a result from a host that does not hold the attempt
    assert effects(s.handle(TaskFinished(other, "d1", "t", 1, 1.0, output=b"forged"))) == []
    # a result for an attempt that was never issued
    assert effects(s.handle(TaskFinished(a.host_id, "d1", "t", 7, 1.0, output=b"stale"))) == []
    # unknown DAG and task
    assert effects(s.handle(TaskFinished(a.host_id, "nope", "t", 1, 1.0))) == []
    assert effects(s.handle(TaskFinished(a.host_id, "d1", "nope", 1, 1.0))) == []
    assert s.dags["d1"].tasks["t"].state is TaskState.RUNNING
    [u] = assigns(ok(s, a, b"real"))
    assert effects(ok(s, a, b"duplicate")) == []
    assert s.dags["d1"].tasks["t"].output == b"real"
    assert u.stdin == b""  # u lists no inputs


def test_silent_host_is_declared_dead_and_its_tasks_requeued_first() -> None:
    s = Scheduler(SchedulerConfig(heartbeat_interval=1.0, liveness=3, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(task("t1"), task("t2")), 0.0))
    [a] = assigns(join(s, "h1", now=0.0))
    s.handle(HostSeen("h1", 2.0, rtt=0.001))  # a LAN host: the configured 3 s hold
    assert s.handle(Tick(4.9)) == []
    join(s, "h2", now=4.9)  # takes t2
    s.handle(HostSeen("h2", 5.5, rtt=0.001))
    instructions = s.handle(Tick(5.5))
    assert ForgetHost("h1", "silent for 3.5s", "node-h1") in instructions
    t1 = s.dags["d1"].tasks["t1"]
    assert t1.state is TaskState.READY and t1.host_losses == 1 and t1.failures == 0
    assert t1.attempts[-1].reason is FailureReason.HOST_LOST
    assert next(iter(s.ready)) == ("d1", "t1")
    assert "h1" not in s.hosts
    # the dead host's late result is stale
    assert effects(ok(s, a, b"late")) == []


def test_host_left_requeues_and_a_new_host_gets_the_task() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    [a] = assigns(join(s, "h1"))
    instructions = s.handle(HostLeft("h1", 1.0, "bye"))
    assert effects(instructions) == [ForgetHost("h1", "bye", "node-h1")]
    [b] = assigns(join(s, "h2", now=2.0))
    assert (b.task_id, b.attempt) == ("t", 2)


def test_reregistering_node_replaces_its_old_connection() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    join(s, "old")
    out_ = s.handle(HostJoined("new", "node-old", 1, 128, 1.0))
    assert ForgetHost("old", "replaced by a new registration", "node-old") in out_
    [b] = assigns(out_)
    assert b.host_id == "new" and b.attempt == 2


def test_too_many_host_losses_fail_the_task() -> None:
    s = Scheduler(SchedulerConfig(max_host_losses=1, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    join(s, "h1")
    s.handle(HostLeft("h1", 1.0))
    join(s, "h2")
    out_ = s.handle(HostLeft("h2", 2.0))
    assert DagFinished("d1", DagState.FAILED) in out_
    assert s.dags["d1"].tasks["t"].reason is FailureReason.HOST_LOST


def test_counts_stay_consistent_over_a_long_chain() -> None:
    n = 2000
    s = Scheduler()
    s.validate_every = 100  # each check walks all 2,000 tasks
    s.handle(DagSubmitted("d1", dag(task("t0"), *(task(f"t{i}", f"t{i - 1}") for i in range(1, n))), 0.0))
    [a] = assigns(join(s, "h1"))
    for i in range(n - 1):
        [a] = assigns(ok(s, a, str(i).encode()))
    assert effects(ok(s, a, b"end")) == [DagFinished("d1", DagState.SUCCEEDED)]
    d = s.dags["d1"]
    assert sum(d.counts.values()) == n and d.counts[TaskState.SUCCEEDED] == n
    s.validate()


def test_failure_at_the_head_of_a_long_chain_does_not_recurse() -> None:
    n = 50_000
    s = Scheduler(SchedulerConfig(default_retries=0, retry_backoff=0.0))
    s.validate_every = n  # each check walks all 50,000 tasks: checked once, at the end
    s.handle(DagSubmitted("d1", dag(task("t0"), *(task(f"t{i}", f"t{i - 1}") for i in range(1, n))), 0.0))
    [a] = assigns(join(s, "h1"))
    assert effects(fail(s, a)) == [DagFinished("d1", DagState.FAILED)]
    assert s.dags["d1"].counts[TaskState.UPSTREAM_FAILED] == n - 1
    s.validate()


@pytest.mark.parametrize("slots", [1, 3])
def test_throughput_counter(slots: int) -> None:
    s = Scheduler(SchedulerConfig(throughput_window=10.0, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(*(task(f"t{i}") for i in range(10))), 0.0))
    pending = assigns(join(s, "h1", slots=slots))
    done = 0
    while pending:
        a = pending.pop(0)
        pending += assigns(ok(s, a, b"", now=1.0))
        done += 1
    assert done == 10
    # 10 tasks in the 1 s since work began: 10/s, not 10 over the whole 10 s window (issue 21).
    assert s.tasks_per_second() == pytest.approx(10.0)
    s.handle(Tick(5.0))
    assert s.tasks_per_second() == pytest.approx(2.0)  # no more finishes: the same 10 over 5 s
    s.handle(Tick(20.0))
    assert s.tasks_per_second() == 0.0


def big(tid: str, memory: int, *deps: str) -> TaskSpec:
    return TaskSpec(id=tid, module=SHA, module_name="m.wasm", depends_on=deps, memory=memory)


def test_memory_aware_placement_skips_hosts_too_small_and_does_not_block_others() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(big("huge", 512), task("small1"), task("small2")), 0.0))
    # the small tasks go out although the 512 MB task is older
    [a1] = assigns(s.handle(HostJoined("tiny", "node-tiny", 1, 128, 0.0)))
    [a2] = assigns(s.handle(HostJoined("tiny2", "node-tiny2", 1, 128, 0.0)))
    assert (a1.task_id, a2.task_id) == ("small1", "small2")
    assert s.dags["d1"].tasks["huge"].state is TaskState.READY
    assert s.waiting_reasons() == ["1 ready task(s) need 512 MB; the largest host offers 128 MB"]
    [a] = assigns(s.handle(HostJoined("roomy", "node-roomy", 1, 1024, 1.0)))
    assert (a.task_id, a.host_id) == ("huge", "roomy")
    assert s.waiting_reasons() == []


def test_fifo_order_holds_among_tasks_a_host_can_run() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a"), big("b", 64), task("c"), big("d", 64)), 0.0))
    order = []
    pending = assigns(join(s, "h1"))  # 128 MB host fits all
    while pending:
        a = pending.pop(0)
        order.append(a.task_id)
        pending += assigns(ok(s, a, b""))
    assert order == ["a", "b", "c", "d"]


def test_waiting_reason_without_hosts() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a")), 0.0))
    assert s.waiting_reasons() == ["1 ready task(s) wait for a host to register"]


def test_inputs_over_the_limit_fail_the_task_before_it_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from bxthre3.scheduler import core

    monkeypatch.setattr(core, "MAX_TASK_INPUT_BYTES", 10)
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("src"), task("sink", "src", inputs=(out("src"),))), 0.0))
    [a] = assigns(join(s, "h1"))
    instructions = ok(s, a, b"x" * 11)
    assert assigns(instructions) == []
    assert DagFinished("d1", DagState.FAILED) in instructions
    sink = s.dags["d1"].tasks["sink"]
    assert sink.reason is FailureReason.INPUT_LIMIT and "11 bytes" in sink.error
    assert s.hosts["h1"].free_slots == 1


def test_memory_limit_is_not_retried() -> None:
    s = Scheduler(SchedulerConfig(default_retries=3, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    [a] = assigns(join(s, "h1"))
    assert effects(fail(s, a, FailureReason.MEMORY_LIMIT)) == [DagFinished("d1", DagState.FAILED)]


def test_failures_are_counted_by_reason_for_status() -> None:
    from bxthre3.controller.views import dag_summary

    s = Scheduler(SchedulerConfig(default_retries=0, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(task("a"), task("b"), task("c", "a")), 0.0))
    a, b = assigns(join(s, "h1", slots=2))
    fail(s, a, FailureReason.TIMEOUT)
    fail(s, b, FailureReason.TRAP)
    summary = dag_summary(s.dags["d1"], 2.0)
    assert summary["failures"] == {"timeout": 1, "trap": 1}
    assert summary["counts"]["upstream_failed"] == 1 and summary["state"] == "failed"


def test_an_attempt_never_answered_is_taken_back_after_timeout_plus_grace() -> None:
    s = Scheduler(SchedulerConfig(assignment_grace=5.0, heartbeat_interval=1.0, liveness=3, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(TaskSpec(id="t", module=SHA, module_name="m", timeout=10.0)), 0.0))
    [a] = assigns(join(s, "wedged"))
    join(s, "healthy", now=1.0)
    for now in range(1, 16):  # both hosts keep heartbeating
        s.handle(HostSeen("wedged", float(now)))
        s.handle(HostSeen("healthy", float(now)))
        assert assigns(s.handle(Tick(float(now)))) == []
    s.handle(HostSeen("wedged", 15.5))
    s.handle(HostSeen("healthy", 15.5))
    [b] = assigns(s.handle(Tick(15.5)))
    assert (b.host_id, b.attempt) == ("healthy", 2)
    t = s.dags["d1"].tasks["t"]
    assert t.host_losses == 1 and "no result within timeout + 5s" in t.attempts[0].error
    assert effects(ok(s, a, b"late")) == []  # the wedged host's late answer is stale


def test_internal_failure_makes_the_next_attempt_ship_the_module() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    [a] = assigns(join(s, "h1", modules=frozenset({SHA})))
    assert a.ship_module is False
    [b] = assigns(fail(s, a, FailureReason.INTERNAL))
    assert b.ship_module is True


# ---------------------------------------------------------------- fault tolerance


def test_retries_wait_out_an_exponential_backoff_with_jitter() -> None:
    rolls = iter([1.0, 0.0])  # +20 % then -20 %
    s = RealScheduler(SchedulerConfig(retry_backoff=1.0, retry_jitter=0.2, default_retries=2), rng=lambda: next(rolls))
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    [a] = assigns(join(s, "h1"))
    assert assigns(fail(s, a, now=10.0)) == []
    t = s.dags["d1"].tasks["t"]
    assert t.state is TaskState.RETRYING and t.not_before == pytest.approx(11.2)
    assert assigns(s.handle(Tick(11.1))) == []
    s.handle(HostSeen("h1", 11.2))
    [b] = assigns(s.handle(Tick(11.25)))
    assert b.attempt == 2
    assert assigns(fail(s, b, now=20.0)) == []
    assert t.not_before == pytest.approx(20.0 + 2.0 * 0.8)  # second failure: 2 s, -20 %


def test_cancel_stops_queued_and_aborts_running_attempts() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a"), task("b"), task("c", "a")), 0.0))
    [a] = assigns(join(s, "h1"))
    out_ = s.handle(DagCancelled("d1", 1.0))
    assert AbortAttempt("h1", "d1", "a", 1) in out_ and DagFinished("d1", DagState.CANCELLED) in out_
    d = s.dags["d1"]
    assert {t.state for t in d.tasks.values()} == {TaskState.CANCELLED}
    assert s.hosts["h1"].free_slots == 1
    assert effects(ok(s, a, b"too late")) == []  # ignored, but acknowledged
    assert d.tasks["a"].output is None
    assert s.handle(DagCancelled("d1", 2.0)) == []  # idempotent


def test_reconnecting_host_keeps_the_attempts_it_declares() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("t1"), task("t2")), 0.0))
    [a1] = assigns(join(s, "old", slots=1))
    out_ = s.handle(HostJoined("new", "node-old", 1, 128, 1.0, holding=(("d1", "t1", 1),)))
    assert ForgetHost("old", "replaced by a new registration", "node-old") in out_
    t1 = s.dags["d1"].tasks["t1"]
    assert t1.state is TaskState.RUNNING and t1.host_id == "new" and t1.host_losses == 0
    assert assigns(out_) == []  # its one slot is still busy with t1
    # the result, delivered over the new connection, is recorded once
    [a2] = assigns(s.handle(TaskFinished("new", "d1", "t1", 1, 2.0, output=b"kept")))
    assert a2.task_id == "t2" and t1.output == b"kept" and t1.recorded == 1


def test_host_declared_dead_can_reclaim_an_attempt_not_yet_reassigned() -> None:
    s = Scheduler(SchedulerConfig(heartbeat_interval=1.0, liveness=3, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    join(s, "h1")
    s.handle(Tick(5.1))  # h1 dead (its round trip unknown: 1 + 4 x 1 s), t requeued, no other host
    assert s.dags["d1"].tasks["t"].state is TaskState.READY
    out_ = s.handle(HostJoined("h1b", "node-h1", 1, 128, 5.5, holding=(("d1", "t", 1),)))
    assert assigns(out_) == []
    t = s.dags["d1"].tasks["t"]
    assert t.state is TaskState.RUNNING and t.attempts[-1].reason is None
    effects(s.handle(TaskFinished("h1b", "d1", "t", 1, 6.0, output=b"x")))
    assert t.state is TaskState.SUCCEEDED and t.attempt == 1


def test_stale_holdings_are_aborted_and_recorded_ones_acknowledged() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("done"), task("moved")), 0.0))
    a, b = assigns(join(s, "h1", slots=2))
    ok(s, a, b"")
    s.handle(HostLeft("h1", 1.0))
    [b2] = assigns(join(s, "h2", now=1.0))  # 'moved' reassigned as attempt 2
    out_ = s.handle(
        HostJoined("h1c", "node-h1", 2, 128, 2.0, holding=(("d1", "done", 1), ("d1", "moved", 1), ("d9", "x", 1)))
    )
    assert AckResult("h1c", "d1", "done", 1) in out_
    assert AbortAttempt("h1c", "d1", "moved", 1) in out_
    assert AbortAttempt("h1c", "d9", "x", 1) in out_
    assert s.dags["d1"].tasks["moved"].host_id == "h2"


def test_restore_puts_running_attempts_in_limbo_until_reclaimed_or_expired() -> None:
    from bxthre3.scheduler.model import AttemptRecord, TaskRecord

    spec = dag(task("a"), task("b", "a"), task("c"), task("d"))
    saved = {
        "a": TaskRecord(spec=spec.tasks[0], waiting_on=0, state=TaskState.SUCCEEDED, attempt=1, output=b"A",
                        recorded=1),
        "c": TaskRecord(spec=spec.tasks[2], waiting_on=0, state=TaskState.RUNNING, attempt=2,
                        attempts=[AttemptRecord(1, "x", "n1", 0.0), AttemptRecord(2, "x", "n1", 1.0)]),
        "d": TaskRecord(spec=spec.tasks[3], waiting_on=0, state=TaskState.RUNNING, attempt=1,
                        attempts=[AttemptRecord(1, "y", "n2", 1.0)]),
    }  # fmt: skip
    config = SchedulerConfig(reclaim_grace=10.0, retry_backoff=0.0, prefetch_per_slot=0, short_task_prefetch=0)
    s = RealScheduler(config)
    d = s.restore_dag("d1", spec, 0.0, DagState.RUNNING, None, saved, now=100.0)
    # 'b' depends on a task already done: it comes back ready
    assert d.tasks["b"].state is TaskState.READY and d.tasks["b"].waiting_on == 0
    assert d.counts[TaskState.RUNNING] == 2 and d.counts[TaskState.SUCCEEDED] == 1
    assert sum(d.counts.values()) == 4
    out_ = s.handle(HostJoined("h", "n1", 2, 128, 101.0, holding=(("d1", "c", 2),)))
    assert d.tasks["c"].host_id == "h" and d.tasks["c"].state is TaskState.RUNNING
    assert [x.task_id for x in assigns(out_)] == ["b"]
    s.handle(HostSeen("h", 111.0))
    s.handle(Tick(111.0))
    assert d.tasks["d"].state is TaskState.READY  # h's two slots hold c and b
    assert d.tasks["d"].host_losses == 1 and "controller restarted" in d.tasks["d"].attempts[0].error


def test_limbo_attempt_the_node_does_not_declare_is_requeued_at_once() -> None:
    from bxthre3.scheduler.model import AttemptRecord, TaskRecord

    spec = dag(task("a"), task("b"))
    saved = {
        "a": TaskRecord(spec=spec.tasks[0], waiting_on=0, state=TaskState.RUNNING, attempt=1,
                        attempts=[AttemptRecord(1, "x", "n1", 0.0)]),
        "b": TaskRecord(spec=spec.tasks[1], waiting_on=0, state=TaskState.RUNNING, attempt=1,
                        attempts=[AttemptRecord(1, "y", "n2", 0.0)]),
    }  # fmt: skip
    config = SchedulerConfig(reclaim_grace=10.0, retry_backoff=0.0, prefetch_per_slot=0, short_task_prefetch=0)
    s = RealScheduler(config)
    s.restore_dag("d1", spec, 0.0, DagState.RUNNING, None, saved, now=100.0)
    [again] = assigns(s.handle(HostJoined("h", "n1", 1, 128, 101.0)))  # n1 holds nothing
    assert (again.task_id, again.attempt) == ("a", 2)
    assert ("d1", "b") in s.limbo, "n2 has not come back yet: b keeps waiting for it"


def test_retry_starts_failed_and_upstream_failed_tasks_again_and_keeps_successes() -> None:
    s = Scheduler(SchedulerConfig(default_retries=0, retry_backoff=0.0))
    spec = dag(task("root"), task("bad", "root"), task("child", "bad"), task("side"))
    s.handle(DagSubmitted("d1", spec, 0.0))
    root, side = assigns(join(s, "h1", slots=2))
    [bad] = assigns(ok(s, root, b"R"))
    ok(s, side, b"S")
    assert effects(fail(s, bad)) == [DagFinished("d1", DagState.FAILED)]
    d = s.dags["d1"]
    assert s.tasks_to_retry(d) == ["bad", "child"]
    d.dirty.clear()
    [again] = assigns(s.handle(DagRetried("d1", 2.0)))
    assert (again.task_id, again.attempt) == ("bad", 2), "attempt numbers keep counting up"
    assert again.stdin == b"" and d.state is DagState.RUNNING and d.finished_at is None
    assert d.tasks["child"].state is TaskState.PENDING and d.tasks["child"].waiting_on == 1
    assert d.tasks["root"].output == b"R" and d.tasks["side"].state is TaskState.SUCCEEDED
    assert not d.failures and d.dirty == {"bad", "child"} and d.dag_dirty
    assert effects(fail(s, bad)) == [], "a late result of the old attempt is stale"
    [child] = assigns(ok(s, again, b"B"))
    assert child.task_id == "child"
    assert effects(ok(s, child, b"C")) == [DagFinished("d1", DagState.SUCCEEDED)]
    assert all(t.recorded == 1 for t in d.tasks.values()), "each task's end is recorded once per run"
    assert d.counts[TaskState.SUCCEEDED] == 4 and d.done == 4


def test_retry_of_a_cancelled_dag_and_of_one_with_nothing_to_retry() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a"), task("b", "a")), 0.0))
    [a] = assigns(join(s, "h1"))
    s.handle(DagCancelled("d1", 0.5))
    assert s.dags["d1"].state is DagState.CANCELLED
    [again] = assigns(s.handle(DagRetried("d1", 1.0)))
    assert (again.task_id, again.attempt) == ("a", 2)
    assert effects(ok(s, a, b"late")) == [], "the cancelled attempt's result is stale"
    [b] = assigns(ok(s, again, b"A"))
    assert b.task_id == "b" and b.stdin == b""
    assert effects(ok(s, b, b"B")) == [DagFinished("d1", DagState.SUCCEEDED)]
    d = s.dags["d1"]
    assert s.tasks_to_retry(d) == []
    assert s.handle(DagRetried("d1", 2.0)) == [] and d.state is DagState.SUCCEEDED
    assert s.handle(DagRetried("unknown", 2.0)) == []


def test_prefetch_queues_one_more_per_slot_only_when_every_slot_is_busy() -> None:
    s = Scheduler(prefetch=1)
    s.handle(DagSubmitted("d1", dag(*(task(f"t{i}") for i in range(6))), 0.0))
    first = assigns(join(s, "a", slots=1))
    assert [x.task_id for x in first] == ["t0", "t1"], "one running, one queued on the host"
    second = assigns(join(s, "b", slots=1, now=0.1))
    assert [x.host_id for x in second] == ["b", "b"]
    assert len(s.ready) == 2
    nxt = assigns(ok(s, first[0], b"", now=0.2))
    assert [(x.task_id, x.host_id) for x in nxt] == [("t4", "a")], "a freed a place: it queues the next"
    s.handle(DagSubmitted("d2", dag(task("x")), 0.3))
    late = assigns(join(s, "c", slots=1, now=0.3))
    assert late[0].host_id == "c", "an idle slot is preferred to a queue"
    assert [x.task_id for x in late] == ["x", "t5"], "d2 runs nothing yet: its task goes first (fair share)"


def keep_alive(s: RealScheduler, hosts: tuple[str, ...], start: float, end: float) -> list:
    """Every host heartbeats every 0.5 s from `start` to `end` while the scheduler ticks; what the ticks said."""
    said = []
    now = start
    while now <= end:
        for h in hosts:
            s.handle(HostSeen(h, now))
        said += effects(s.handle(Tick(now)))
        now += 0.5
    return said


def test_a_wedged_but_heartbeating_host_holds_an_attempt_at_most_timeout_plus_ten_seconds() -> None:
    assert SchedulerConfig().assignment_grace == ASSIGNMENT_GRACE_S == 10.0
    s = Scheduler(SchedulerConfig(retry_backoff=0.0))  # the default grace
    s.handle(DagSubmitted("d1", dag(TaskSpec(id="t", module=SHA, module_name="m", timeout=10.0)), 0.0))
    [a] = assigns(join(s, "wedged"))
    join(s, "healthy", now=0.5)
    assert keep_alive(s, ("wedged", "healthy"), 1.0, 20.0) == []
    s.handle(HostSeen("wedged", 20.1))
    s.handle(HostSeen("healthy", 20.1))
    [b] = assigns(s.handle(Tick(20.1)))
    assert (b.host_id, b.attempt) == ("healthy", 2)
    assert "no result within timeout + 10s" in s.dags["d1"].tasks["t"].attempts[0].error


def test_a_queued_attempts_clock_starts_when_the_attempt_before_it_on_its_host_ends() -> None:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0, default_timeout=10.0, assignment_grace=5.0), prefetch=1)
    s.handle(DagSubmitted("d1", dag(task("a"), task("b")), 0.0))
    first, queued = assigns(join(s, "h", slots=1))
    assert (first.task_id, queued.task_id) == ("a", "b")
    keep_alive(s, ("h",), 0.5, 7.5)
    ok(s, first, b"", now=8.0)  # b can have started only now
    assert keep_alive(s, ("h",), 8.0, 23.0) == [], "8 + timeout 10 + grace 5 = 23: not yet"
    s.handle(HostSeen("h", 23.1))
    s.handle(Tick(23.1))
    b = s.dags["d1"].tasks["b"]
    assert b.attempts[0].reason is FailureReason.HOST_LOST and b.attempts[0].ended_at == 23.1
    assert b.attempt == 2, "taken back, and given out again at once"


def test_attempts_queued_behind_a_wedged_one_are_taken_back_with_it_and_the_host_gets_no_more() -> None:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0, default_timeout=10.0, assignment_grace=5.0), prefetch=1)
    s.handle(DagSubmitted("d1", dag(task("a"), task("b"), task("c")), 0.0))
    assert [x.task_id for x in assigns(join(s, "wedged", slots=1))] == ["a", "b"]
    assert keep_alive(s, ("wedged",), 0.5, 15.0) == []
    s.handle(HostSeen("wedged", 15.1))
    s.handle(Tick(15.1))  # a's timeout + grace: a, and b in the pipe behind it, go back to the queue
    d = s.dags["d1"]
    assert [d.tasks[t].state for t in "abc"] == [TaskState.READY] * 3
    assert "sent no result for 'a', queued before it" in d.tasks["b"].attempts[-1].error
    assert d.tasks["b"].failures == 0 and d.tasks["b"].host_losses == 1, "a lost attempt uses up no retry"
    assert s.hosts["wedged"].free_slots == -1, "both places stay taken until the host answers"
    later = assigns(join(s, "healthy", slots=1, now=15.2))
    assert [(x.task_id, x.host_id) for x in later] == [("a", "healthy"), ("b", "healthy")]
    stale_answer = Assign("wedged", "d1", "a", 1, SHA, False, (), b"", (), 10.0)
    answered = assigns(ok(s, stale_answer, b"late", now=16.0))  # ignored as stale, but it frees a place
    assert [(x.task_id, x.host_id) for x in answered] == [("c", "wedged")]
    assert d.tasks["a"].attempt == 2 and d.tasks["a"].output is None


def test_an_attempt_taken_back_and_adopted_by_its_nodes_new_connection_stays_adopted() -> None:
    # The node's old connection is wedged: its attempt is taken back, and it keeps the slot. The node then
    # registers from a new connection, declaring that attempt: it is adopted, and replacing the old
    # connection must not requeue it again (it did: the adopted attempt's result was thrown away as stale
    # and the task ran again, with one more host loss counted against it).
    s = Scheduler(SchedulerConfig(retry_backoff=0.0, default_timeout=1.0, assignment_grace=2.0))
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    [a] = assigns(s.handle(HostJoined("old", "n1", 1, 128, 0.0, key="k")))
    s.handle(HostSeen("old", 3.5))
    s.handle(Tick(3.5))  # timeout + grace: taken back, while the old connection still counts it
    t = s.dags["d1"].tasks["t"]
    assert t.state is TaskState.READY and t.host_losses == 1
    out_ = s.handle(HostJoined("new", "n1", 1, 128, 3.6, holding=(("d1", "t", 1),), key="k"))
    assert out_ == [ForgetHost("old", REPLACED, "n1")]
    assert (t.state, t.host_id, t.host_losses) == (TaskState.RUNNING, "new", 1)
    done = s.handle(TaskFinished("new", "d1", "t", 1, 4.0, output=b"done"))
    assert DagFinished("d1", DagState.SUCCEEDED) in done and t.output == b"done"


def test_a_cancelled_dags_tasks_leave_the_ready_queue() -> None:
    # They stayed until a dispatch popped and skipped them, which needs a free host: meanwhile `status` and
    # the queue-depth metric counted them ("2 ready task(s) wait for a host"), and a retry queued each twice.
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a"), task("b")), 0.0))
    s.handle(DagCancelled("d1", 1.0))
    assert len(s.ready) == 0 and s.waiting_reasons() == []
    s.handle(DagRetried("d1", 2.0))
    assert list(s.ready) == [("d1", "a"), ("d1", "b")]


def test_a_retried_dags_task_waits_out_its_new_backoff_not_the_old_one() -> None:
    # Cancelled while waiting out a backoff, then retried and failed again: the old backoff's entry in the
    # retry heap ended the new backoff early (at 11 s instead of 14 s).
    s = Scheduler(SchedulerConfig(retry_backoff=10.0, retry_jitter=0.0, default_retries=3))
    s.handle(DagSubmitted("d1", dag(task("t")), 0.0))
    [first] = assigns(join(s, "h1"))
    fail(s, first, now=1.0)  # backoff until 11
    s.handle(DagCancelled("d1", 2.0))
    [second] = assigns(s.handle(DagRetried("d1", 3.0)))
    fail(s, second, now=4.0)  # backoff until 14
    s.handle(HostSeen("h1", 11.5))
    assert assigns(s.handle(Tick(11.5))) == []
    s.handle(HostSeen("h1", 14.0))
    assert [a.attempt for a in assigns(s.handle(Tick(14.0)))] == [3]


def queue_depth_scheduler(deep_prefetch_min_ready: int) -> RealScheduler:
    """Queues of 0 / 1 / 4 per slot for tasks of >= 100 ms / 20-100 ms / < 20 ms."""
    config = SchedulerConfig(
        retry_backoff=0.0,
        prefetch_per_slot=1,
        short_task_prefetch=4,
        deep_prefetch_min_ready=deep_prefetch_min_ready,
        long_task_s=0.1,
    )
    return RealScheduler(config, rng=lambda: 0.5)


def test_queue_depth_follows_how_long_a_hosts_tasks_take_and_how_much_work_waits() -> None:
    s = queue_depth_scheduler(deep_prefetch_min_ready=32)
    s.handle(DagSubmitted("d1", dag(*(task(f"t{i}") for i in range(200))), 0.0))
    first = assigns(join(s, "a", slots=1))
    assert len(first) == 1, "nothing known about the host's tasks yet: one running, none queued"

    def finish(a: Assign, duration: float, now: float) -> list[Assign]:
        return assigns(s.handle(TaskFinished(a.host_id, a.dag_id, a.task_id, a.attempt, now, duration=duration)))

    held = list(first)
    for i in range(12):  # a run of 1 ms tasks: the moving average falls below 20 ms
        held += finish(held.pop(0), 0.001, 0.1 + i * 0.01)
    assert s.hosts["a"].mean_task_s < 0.02
    assert len(s.hosts["a"].running) == 5, "short tasks, plenty waiting: one running and four queued"
    for i in range(12):  # then 50 ms tasks: one queued
        held += finish(held.pop(0), 0.05, 1.0 + i * 0.05)
    assert 0.02 < s.hosts["a"].mean_task_s < 0.1
    assert len(s.hosts["a"].running) == 2
    for i in range(12):  # then 2 s tasks: none queued, so none waits behind one while another host idles
        held += finish(held.pop(0), 2.0, 2.0 + i * 2)
    assert len(s.hosts["a"].running) == 1
    assert len(held) == 1


def test_short_tasks_queue_deep_only_while_many_more_wait_than_there_are_slots() -> None:
    s = queue_depth_scheduler(deep_prefetch_min_ready=8)
    s.handle(DagSubmitted("d1", dag(*(task(f"t{i}") for i in range(13))), 0.0))
    held = assigns(join(s, "a", slots=1))
    s.hosts["a"].mean_task_s = 0.001  # its tasks are known to be short (the average is tested above)

    def finish_oldest(now: float) -> list[Assign]:
        a = held.pop(0)
        return assigns(s.handle(TaskFinished("a", "d1", a.task_id, a.attempt, now, duration=0.001)))

    new = finish_oldest(0.1)  # 12 wait, 8 per slot needed: a deep queue
    assert len(new) == 5 and len(s.hosts["a"].running) == 5 and len(s.ready) == 7
    held += new
    assert finish_oldest(0.2) == [] and finish_oldest(0.3) == [] and finish_oldest(0.4) == [], (
        "7 wait now: no deep queue, so nothing more until it is down to one running and one queued"
    )
    new = finish_oldest(0.5)
    assert len(new) == 1 and len(s.hosts["a"].running) == 2


def test_a_host_behind_a_slow_link_is_given_time_for_its_round_trip() -> None:
    """Heartbeat echoes of ~0.4 s (a phone's network) stretch the silence limit; a LAN host keeps 3 s."""
    s = Scheduler(SchedulerConfig(heartbeat_interval=1.0, liveness=3, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(task("t1"), task("t2")), 0.0))
    join(s, "phone", now=0.0)
    join(s, "lan", now=0.0)
    for i, rtt in enumerate([0.3, 0.5, 0.4, 0.6, 0.2, 0.45]):
        s.handle(HostSeen("phone", 0.1 * i, rtt=rtt))
        s.handle(HostSeen("lan", 0.1 * i, rtt=0.0005))
    phone, lan = s.hosts["phone"], s.hosts["lan"]
    assert s.silence_limit(lan) == 3.0
    limit = s.silence_limit(phone)
    assert limit > 4.0
    gone = s.handle(Tick(3.6))  # both silent 3.1 s: the LAN host is dead, the phone only slow
    assert [f.host_id for f in gone if isinstance(f, ForgetHost)] == ["lan"]
    assert "phone" in s.hosts and s.dags["d1"].tasks["t1"].state is TaskState.RUNNING
    gone = s.handle(Tick(0.5 + limit + 0.01))
    assert [f.host_id for f in gone if isinstance(f, ForgetHost)] == ["phone"]


def test_queue_depth_covers_a_slow_hosts_round_trip() -> None:
    """Tasks of 0.1 s got no queue, so a host 350 ms away ran ~1 task per round trip; now it holds
    enough queued to work through one (ceil(round trip / task)), and a LAN host is unchanged."""
    s = queue_depth_scheduler(deep_prefetch_min_ready=32)
    s.handle(DagSubmitted("d1", dag(*(task(f"t{i}") for i in range(200))), 0.0))
    held = assigns(join(s, "phone", slots=2)) + assigns(join(s, "lan", slots=2))
    for host, rtt in (("phone", 0.35), ("lan", 0.0005)):
        for _ in range(20):
            s.handle(HostSeen(host, 0.0, rtt=rtt))
        s.hosts[host].mean_task_s = 0.1  # known (the moving average is tested above)

    def finish(a: Assign, now: float) -> list[Assign]:
        return assigns(s.handle(TaskFinished(a.host_id, a.dag_id, a.task_id, a.attempt, now, duration=0.1)))

    for i in range(6):
        held += finish(next(a for a in held if a.host_id == "phone"), 1.0 + i)
        held = [a for a in held if (a.dag_id, a.task_id) in s.hosts[a.host_id].running]
    rtt = s.hosts["phone"].rtt
    per_slot = math.ceil((rtt.srtt + rtt.rttvar) / 0.1)
    assert per_slot == 4
    assert len(s.hosts["phone"].running) == 2 * (1 + per_slot)
    assert len(s.hosts["lan"].running) == 2, "a LAN host with 0.1 s tasks still gets no queue"
    s.hosts["phone"].mean_task_s = 10.0  # a round trip is 4 % of such a task: no queue either
    held += finish(next(a for a in held if a.host_id == "phone"), 20.0)
    assert len(s.hosts["phone"].running) == 2 * (1 + per_slot) - 1


def _mid_run() -> RealScheduler:
    """d1: a runs on h1, b waits for a, c is queued (h1 has one slot)."""
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a"), task("b", "a"), task("c")), 0.0))
    join(s, "h1")
    s.validate()
    return s


def _end_keeping_the_slot(s: RealScheduler) -> None:
    """What a cancel that forgot to free the host's slot would leave: a ended, still held by h1."""
    d = s.dags["d1"]
    d.tasks["a"].live.clear()
    d.tasks["a"].attempts[-1].ended_at = 1.0
    d.set_state(d.tasks["a"], TaskState.CANCELLED)


BREAKAGES = {  # how the records are broken -> what the error says (one line of it)
    "counts": (lambda s: s.dags["d1"].counts.update([TaskState.READY]), "DAG d1: counts {"),
    "unqueued": (
        lambda s: s.ready.pop_for(1 << 30),
        "d1/c (ready): ready, but neither in the ready queue nor waiting for the result cache",
    ),
    "unheld": (lambda s: s.hosts["h1"].running.clear(), "d1/a (running): attempt 1 is given to h1, which holds None"),
    "twice": (lambda s: setattr(s.dags["d1"].tasks["a"], "recorded", 2), "d1/a (running): its end was recorded 2"),
    "waiting": (lambda s: setattr(s.dags["d1"].tasks["b"], "waiting_on", 0), "d1/b (pending): waiting_on 0, but 1"),
    "finished": (lambda s: setattr(s.dags["d1"], "state", DagState.FAILED), "DAG d1: failed, but has tasks not"),
    "limbo": (lambda s: s.limbo.update({("d1", "c"): 9.0}), "d1/c (ready): in limbo, but not running"),
    "failures": (lambda s: s.dags["d1"].failures.update(["trap"]), "DAG d1: failures by reason {'trap': 1}"),
    "kept slot": (_end_keeping_the_slot, "host h1: holds attempt 1 of d1/a (cancelled), which was not taken back"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_validate_names_the_broken_rule(breakage: str) -> None:
    s = _mid_run()
    breaks, message = BREAKAGES[breakage]
    breaks(s)
    with pytest.raises(InvariantError, match=re.escape(message)):
        s.validate()
