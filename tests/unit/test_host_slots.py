"""The host's slots: these events give exactly these instructions. No sockets, no executors, no clocks."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bxthre3.common.failures import FailureReason
from bxthre3.host.slots import (
    AbortReceived,
    Assigned,
    Event,
    ExecutorLost,
    HostSlots,
    IgnoreResult,
    Instruction,
    JobEnded,
    Launch,
    RecordAbort,
    ReportFailure,
    ReportResult,
    RestartExecutor,
    Resubmit,
    ResultsRead,
    SlotsConfig,
    StartExecutor,
    StopExecutor,
    SubmitDied,
    SubmitRefused,
    Submitted,
    Tick,
    Welcomed,
    attempt_key,
)
from bxthre3.wire.protocol import Assign

SHORT = 0.01
"""A task duration below `pipeline_below_s`: the slot then queues the next job in its executor."""
LONG = 1.0


def assign(task_id: str, timeout: float = 10.0, attempt: int = 1) -> Assign:
    return Assign("d", task_id, attempt, "sha", b"", [], b"", [], timeout)


A, B, C, D = (assign(t) for t in "ABCD")


def core(slots: int = 1, **config: Any) -> HostSlots:
    return HostSlots(SlotsConfig(slots=slots, **config))


def launched(host: HostSlots, *events: Event) -> list[Instruction]:
    """Handle the events as the host does when every submit succeeds (job N is "jobN"): all the instructions."""
    out: list[Instruction] = []
    for event in events:
        instructions = host.handle(event)
        while instructions:
            out += instructions
            last = instructions[-1]
            if not isinstance(last, (Launch, Resubmit)):
                break
            instructions = host.handle(Submitted(last.job_id, f"job{last.job_id}"))
    return out


def read(slot: int, *ended: tuple[int, float], in_flight: tuple[int, ...] = (), now: float = 1.0) -> ResultsRead:
    return ResultsRead(slot, tuple(JobEnded(j, d) for j, d in ended), frozenset(in_flight), now)


def pipelined(host: HostSlots) -> None:
    """Slot 0 runs B (job 2) with C (job 3) queued behind it in its executor, after a short task A (job 1)."""
    assert launched(host, Assigned(A, 0.0), Assigned(B, 0.0)) == [Launch(0, 1, A, 10.0)]
    assert launched(host, read(0, (1, SHORT), now=1.0)) == [ReportResult(1, A), Launch(0, 2, B, 10.0)]
    assert launched(host, Assigned(C, 1.0)) == [Launch(0, 3, C, 10.0)]
    assert host.jobs_in(0) == [2, 3] and host.queued_count() == 1


def test_an_assignment_runs_in_a_free_slot_until_its_result() -> None:
    host = core()
    assert host.handle(Assigned(A, 5.0)) == [Launch(0, 1, A, 10.0)]
    assert host.handle(Submitted(1, "job1")) == []
    assert host.busy(0) and host.next_deadline() == 15.0 and host.holding() == [("d", "A", 1)]
    assert host.handle(read(0, (1, LONG), now=7.0)) == [ReportResult(1, A)]
    assert not host.busy(0) and host.next_deadline() == math.inf and host.holding() == []


def test_the_backlog_runs_in_arrival_order_one_task_per_slot() -> None:
    host = core(slots=2)
    assert launched(host, *(Assigned(a, 0.0) for a in (A, B, C, D))) == [Launch(0, 1, A, 10.0), Launch(1, 2, B, 10.0)]
    assert host.holding() == [("d", "A", 1), ("d", "B", 1), ("d", "C", 1), ("d", "D", 1)]
    assert host.queued_count() == 2
    assert launched(host, read(1, (2, LONG))) == [ReportResult(2, B), Launch(1, 3, C, 10.0)]
    assert launched(host, read(0, (1, LONG))) == [ReportResult(1, A), Launch(0, 4, D, 10.0)]


def test_after_a_long_task_the_next_waits_in_the_backlog() -> None:
    host = core()
    launched(host, Assigned(A, 0.0))
    assert launched(host, Assigned(B, 0.0)) == [], "the slot's last duration is unknown: no pipelining"
    assert launched(host, read(0, (1, LONG))) == [ReportResult(1, A), Launch(0, 2, B, 10.0)]
    assert launched(host, Assigned(C, 1.0)) == [], "B may be long too"


def test_depth_two_pipelining_after_short_tasks() -> None:
    host = core()
    pipelined(host)
    assert launched(host, Assigned(D, 1.0)) == [], "depth 2: one running, one queued"
    # B ends alone; C, already in the executor, is running now (its clock starts now) and D goes behind it.
    assert launched(host, read(0, (2, SHORT), in_flight=(3,), now=2.0)) == [ReportResult(2, B), Launch(0, 4, D, 10.0)]
    assert host.jobs_in(0) == [3, 4] and host.next_deadline() == 12.0


def test_a_read_with_both_results_reports_both_in_order() -> None:
    host = core()
    pipelined(host)
    assert launched(host, read(0, (2, SHORT), (3, SHORT), now=2.0)) == [ReportResult(2, B), ReportResult(3, C)]
    assert not host.busy(0) and host.queued_count() == 0


def test_abort_of_a_backlogged_assignment_drops_it_quietly() -> None:
    host = core()
    launched(host, Assigned(A, 0.0), Assigned(B, 0.0), Assigned(C, 0.0))
    assert launched(host, AbortReceived(attempt_key(B), 1.0)) == []
    assert launched(host, read(0, (1, LONG))) == [ReportResult(1, A), Launch(0, 2, C, 10.0)]


def test_abort_of_a_queued_job_kills_it_when_its_turn_comes() -> None:
    host = core()
    pipelined(host)
    assert launched(host, AbortReceived(attempt_key(C), 1.5)) == [RecordAbort(C, started=False, elapsed=0.0)]
    assert launched(host, AbortReceived(attempt_key(C), 1.6)) == [], "aborted once"
    # B ends with C still in the executor: it is killed before it runs, and its result never reported.
    assert launched(host, read(0, (2, SHORT), in_flight=(3,), now=2.0)) == [RestartExecutor(0), ReportResult(2, B)]
    assert not host.busy(0) and host.holding() == []


def test_a_queued_job_aborted_but_answered_in_the_same_read_is_dropped() -> None:
    host = core()
    pipelined(host)
    launched(host, AbortReceived(attempt_key(C), 1.5))
    assert launched(host, read(0, (2, SHORT), (3, SHORT), now=2.0)) == [ReportResult(2, B), IgnoreResult(0, 3)]


def test_abort_of_a_running_job_restarts_the_executor_and_resubmits_the_queued_one() -> None:
    host = core()
    pipelined(host)  # B started at 1.0
    assert launched(host, AbortReceived(attempt_key(B), 1.5)) == [
        RecordAbort(B, started=True, elapsed=0.5),
        RestartExecutor(0),
        Resubmit(0, 3, "job3"),
    ]
    assert host.jobs_in(0) == [3] and host.next_deadline() == 11.5, "C runs from now, in the fresh executor"


def test_timeout_kills_the_executor_and_reports_then_the_backlog_moves() -> None:
    host = core()
    launched(host, Assigned(assign("A", timeout=5.0), 0.0), Assigned(B, 0.0))
    assert launched(host, Tick(4.9)) == []
    assert launched(host, Tick(5.0)) == [
        RestartExecutor(0),
        ReportFailure(1, assign("A", timeout=5.0), FailureReason.TIMEOUT, "killed after the 5s timeout", 5.0),
        Launch(0, 2, B, 10.0),
    ]


def test_an_engine_that_stops_runs_itself_gets_its_grace_before_the_kill() -> None:
    host = core(grace_s=0.5)
    launched(host, Assigned(assign("A", timeout=5.0), 0.0))
    assert host.next_deadline() == 5.5
    assert launched(host, Tick(5.2)) == []


@pytest.mark.parametrize(("timeout", "job_timeout"), [(0.0, 0.001), (math.nan, 0.001), (1e12, 100.0)])
def test_timeouts_are_bounded(timeout: float, job_timeout: float) -> None:
    host = core(max_timeout_s=100.0)
    x = assign("X", timeout=timeout)
    assert host.handle(Assigned(x, 0.0)) == [Launch(0, 1, x, job_timeout)]


def test_executor_death_with_a_queued_job_restarts_and_resubmits_it() -> None:
    host = core()
    pipelined(host)  # B (job 2) started at 1.0, C (job 3) queued
    assert launched(host, ExecutorLost(0, "executor 42 died", 3.0)) == [
        RestartExecutor(0),
        Resubmit(0, 3, "job3"),
        ReportFailure(2, B, FailureReason.EXECUTOR_CRASHED, "executor 42 died", 2.0),
    ]
    assert host.jobs_in(0) == [3]


def test_a_retired_executor_that_lost_the_queued_job_gets_it_again() -> None:
    host = core()
    pipelined(host)
    assert launched(host, read(0, (2, SHORT), in_flight=(), now=2.0)) == [Resubmit(0, 3, "job3"), ReportResult(2, B)]
    assert host.jobs_in(0) == [3]


def test_a_refused_launch_is_reported_and_the_slot_takes_the_next() -> None:
    host = core()
    launched(host, Assigned(A, 0.0))
    launched(host, Assigned(B, 0.0), Assigned(C, 0.0))
    assert host.handle(read(0, (1, LONG), now=2.0)) == [ReportResult(1, A), Launch(0, 2, B, 10.0)]
    assert host.handle(SubmitRefused(2, FailureReason.INTERNAL, "module missing")) == [
        ReportFailure(2, B, FailureReason.INTERNAL, "module missing", 0.0),
        Launch(0, 3, C, 10.0),
    ]
    assert host.handle(Submitted(3, "job3")) == []
    assert host.jobs_in(0) == [3]


def test_an_executor_found_dead_by_a_launch_is_restarted_and_the_slot_takes_the_next() -> None:
    host = core()
    assert host.handle(Assigned(A, 0.0)) == [Launch(0, 1, A, 10.0)]
    assert host.handle(SubmitDied(1, "executor 7 died")) == [
        RestartExecutor(0),
        ReportFailure(1, A, FailureReason.EXECUTOR_CRASHED, "executor 7 died", 0.0),
    ]
    assert launched(host, Assigned(B, 1.0)) == [Launch(0, 2, B, 10.0)]


def test_a_submit_waits_for_its_outcome_before_anything_else() -> None:
    host = core()
    host.handle(Assigned(A, 0.0))
    with pytest.raises(RuntimeError, match="outcome of submitting job 1 must come first"):
        host.handle(Tick(1.0))
    with pytest.raises(RuntimeError, match="outcome of submitting job 1 must come first"):
        host.handle(Submitted(2))
    assert host.handle(Submitted(1)) == []
    with pytest.raises(RuntimeError, match="no submit is waiting"):
        host.handle(Submitted(1))


def test_an_idle_executor_is_stopped_and_a_busy_or_stopped_one_is_not() -> None:
    host = core(slots=2, executor_idle_s=60.0)
    launched(host, Assigned(assign("A", timeout=1000.0), 0.0))
    assert launched(host, Tick(60.0, frozenset({0, 1}))) == []
    assert launched(host, Tick(61.0, frozenset({0, 1}))) == [StopExecutor(1, 61.0)]
    assert launched(host, Tick(62.0, frozenset({0}))) == [], "slot 1's executor is stopped already"
    assert launched(host, read(0, (1, LONG), now=100.0)) == [ReportResult(1, assign("A", timeout=1000.0))]
    assert launched(host, Tick(160.5, frozenset({0}))) == [StopExecutor(0, 60.5)]


def test_warm_executors_start_once_welcomed_and_count_as_used_then() -> None:
    host = core(slots=2, warm_executors=True, executor_idle_s=5.0)
    assert launched(host, Welcomed(10.0, frozenset({1}))) == [StartExecutor(0)]
    assert launched(host, Tick(14.0, frozenset({0, 1}))) == [StopExecutor(1, 14.0)], "slot 0 is idle since 10"
    assert launched(core(slots=2), Welcomed(10.0)) == [], "cold by default"


def test_a_queued_job_aborted_is_not_resubmitted_when_the_running_one_times_out() -> None:
    host = core()
    pipelined(host)  # B (job 2) started at 1.0 with a 10 s timeout, C (job 3) queued
    launched(host, AbortReceived(attempt_key(C), 1.5))
    assert launched(host, Tick(11.0)) == [
        RestartExecutor(0),
        ReportFailure(2, B, FailureReason.TIMEOUT, "killed after the 10s timeout", 10.0),
    ]
    assert host.holding() == [] and host.queued_count() == 0


def test_a_tick_before_tick_due_has_nothing_to_do() -> None:
    """The host skips Ticks before `tick_due`: a deadline or an idle executor's expiry is never missed."""
    host = core(slots=2, executor_idle_s=60.0)
    assert host.tick_due(frozenset()) == math.inf, "no attempt, no executor: nothing can come due"
    launched(host, Assigned(assign("A", timeout=5.0), 0.0))
    up = frozenset({0, 1})
    assert host.tick_due(up) == 5.0, "A's deadline comes before slot 1's idle executor (0 + 60 s)"
    assert launched(host, Tick(4.99, up)) == []
    assert launched(host, Tick(5.0, up))[:2] == [
        RestartExecutor(0),
        ReportFailure(1, assign("A", timeout=5.0), FailureReason.TIMEOUT, "killed after the 5s timeout", 5.0),
    ]
    assert host.tick_due(up) == 60.0, "both slots last used at 0 s: their executors are idle from 60 s"
    assert host.tick_due(frozenset({1})) == 60.0 and host.tick_due(frozenset()) == math.inf
    assert launched(host, Tick(60.0, frozenset({1}))) == []
    assert launched(host, Tick(60.5, frozenset({1}))) == [StopExecutor(1, 60.5)]
