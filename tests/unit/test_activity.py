"""The activity recorder (`scheduler/activity.py`) and the `activity` view: the one rate figure, busy
fractions, the per-host task stream, and that memory stays bounded. Pure: times are passed in."""

from __future__ import annotations

import math
import tracemalloc

import pytest

from bxthre3.common.failures import FailureReason
from bxthre3.controller import views
from bxthre3.scheduler import DagCancelled, DagSubmitted, HostLeft, InvariantError, SchedulerConfig, Tick
from bxthre3.scheduler.activity import DEPARTED_HOSTS, HISTORY_S, SEGMENTS_PER_HOST, ActivityRecorder
from tests.unit.test_scheduler import Scheduler, assigns, dag, fail, join, ok, task

T0 = 1_700_000_000.0
"""A wall-clock-like start: the controller's `now` is a Unix time."""


def run_burst(rec: ActivityRecorder, n: int, start: float, seconds: float, node: str = "h") -> None:
    """`n` attempts given at `start` and finished evenly over the following `seconds`."""
    rec.host_joined(node, n, start)
    for i in range(n):
        rec.started("d", f"t{i}", 1, node, start)
    for i in range(n):
        at = start + seconds * (i + 1) / n
        rec.ended("d", f"t{i}", 1, at, "succeeded")
        rec.finished(at)


def test_17_tasks_in_0_6_s_read_about_28_per_second_not_1_7() -> None:
    rec = ActivityRecorder(10.0)
    run_burst(rec, 17, T0, 0.6)
    assert rec.rate(T0 + 0.6) == pytest.approx(17 / 0.6, rel=0.02)


def test_the_rate_decays_to_zero_when_work_stops() -> None:
    rec = ActivityRecorder(10.0)
    run_burst(rec, 17, T0, 0.6)
    samples = [rec.rate(T0 + 0.6 + k * 0.25) for k in range(60)]
    assert all(a >= b for a, b in zip(samples, samples[1:], strict=False)), "it never rises without finishes"
    assert rec.rate(T0 + 5.0) == pytest.approx(17 / 5.0, rel=0.02)  # the same 17 over the 5 s work has had
    assert rec.rate(T0 + 10.0) == pytest.approx(1.7, rel=0.05)  # the whole window
    assert rec.rate(T0 + 10.7) == 0.0, "every finish aged out of the window"


def test_a_steady_rate_reads_as_itself_and_a_new_spell_starts_fresh() -> None:
    rec = ActivityRecorder(10.0)
    rec.host_joined("h", 4, T0)
    for i in range(3000):  # 100 tasks/s for 30 s
        at = T0 + i / 100
        rec.started("d", f"t{i}", 1, "h", at)
        rec.ended("d", f"t{i}", 1, at + 0.005, "succeeded")
        rec.finished(at + 0.005)
    assert rec.rate(T0 + 30.0) == pytest.approx(100.0, rel=0.03)
    # An hour idle, then 10 tasks in 0.5 s: the idle hour is not in the denominator.
    run_burst(rec, 10, T0 + 3600, 0.5)
    assert rec.rate(T0 + 3600.5) == pytest.approx(20.0, rel=0.02)


def test_status_and_activity_show_the_same_rate_from_a_real_scheduler() -> None:
    s = Scheduler(SchedulerConfig(throughput_window=10.0, retry_backoff=0.0))
    s.handle(DagSubmitted("d1", dag(*(task(f"t{i}") for i in range(17))), T0))
    pending = assigns(join(s, "h1", slots=17, now=T0))
    assert len(pending) == 17
    for i, a in enumerate(pending):
        ok(s, a, b"", now=T0 + 0.6 * (i + 1) / 17)
    now = T0 + 0.6
    status = views.status_view(s, now)
    activity = views.activity_view(s, now, 60.0)
    assert status["totals"]["tasks_per_s"] == activity["tasks_per_s"] == pytest.approx(28.33, abs=0.5)
    assert sum(activity["throughput"]) == 17 == status["totals"]["succeeded"]
    assert len(activity["throughput"]) == 60 and activity["bucket_s"] == 1.0
    [(node, host)] = activity["hosts"].items()
    assert node == "node-h1" and len(host["busy"]) == 60
    assert [seg["task_id"] for seg in host["segments"]] == [f"t{i}" for i in range(17)]
    assert all(seg["state"] == "succeeded" and seg["end_ago_s"] is not None for seg in host["segments"])
    assert host["segments"][0]["start_ago_s"] == pytest.approx(0.6)
    # Later, with no finishes, both fall together (the tick is the controller's heartbeat of time).
    s.handle(Tick(T0 + 20))
    assert views.status_view(s, T0 + 20)["totals"]["tasks_per_s"] == 0.0 == s.tasks_per_second()


def test_busy_fractions_with_two_slots() -> None:
    rec = ActivityRecorder()
    t = math.floor(T0)
    rec.host_joined("h", 2, t)
    rec.started("d", "a", 1, "h", t + 1.0)  # second 1: one of two slots
    rec.started("d", "b", 1, "h", t + 2.0)  # second 2: both
    rec.ended("d", "a", 1, t + 3.0, "succeeded")  # second 3: one
    rec.started("d", "c", 1, "h", t + 3.0)
    rec.started("d", "e", 1, "h", t + 3.0)  # 3 attempts held (a queued prefetch): capped at both slots
    rec.ended("d", "b", 1, t + 4.0, "succeeded")
    rec.ended("d", "c", 1, t + 4.5, "failed")
    rec.ended("d", "e", 1, t + 4.5, "succeeded")  # second 4: 2 slots for 0.5 s
    assert rec.busy("h", t + 6.0, 7) == [0.0, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
    # The current second is averaged over the part of it that has passed.
    rec.started("d", "f", 1, "h", t + 6.0)
    assert rec.busy("h", t + 6.5, 2)[-1] == pytest.approx(0.5)
    assert rec.busy("unknown", t + 6.5, 3) == [0.0, 0.0, 0.0]


def test_busy_time_is_integrated_across_long_attempts_and_history_is_bounded() -> None:
    rec = ActivityRecorder()
    t = math.floor(T0)
    rec.host_joined("h", 1, t)
    rec.started("d", "long", 1, "h", t + 0.5)
    rec.ended("d", "long", 1, t + 2 * HISTORY_S, "succeeded")  # 20 minutes on one slot
    busy = rec.busy("h", t + 2 * HISTORY_S, HISTORY_S)
    assert len(busy) == HISTORY_S and busy[:-1] == [1.0] * (HISTORY_S - 1)


def test_segments_per_host_are_capped_oldest_first() -> None:
    rec = ActivityRecorder()
    rec.host_joined("h", 1, T0)
    for i in range(SEGMENTS_PER_HOST + 50):
        rec.started("d", f"t{i}", 1, "h", T0 + i * 0.1)
        rec.ended("d", f"t{i}", 1, T0 + i * 0.1 + 0.05, "succeeded")
    shown = rec.segments("h", T0 + 30.0, 600.0)
    assert len(shown) == SEGMENTS_PER_HOST
    assert shown[0].task_id == "t50" and shown[-1].task_id == f"t{SEGMENTS_PER_HOST + 49}"
    recent = rec.segments("h", T0 + 30.0, 6.0)  # only those that ended within the last 6 s: 24.05 s on
    assert recent[0].task_id == "t240" and len(recent) == 10


def test_segment_states_from_the_scheduler() -> None:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0, default_retries=1))
    s.handle(DagSubmitted("d1", dag(task("ok"), task("flaky"), task("bad", retries=0), task("slow")), T0))
    given = {a.task_id: a for a in assigns(join(s, "h1", slots=4, now=T0))}
    ok(s, given["ok"], b"", now=T0 + 0.1)
    [again] = assigns(fail(s, given["flaky"], now=T0 + 0.2))  # retried at once (no backoff)
    fail(s, given["bad"], now=T0 + 0.3)
    ok(s, again, b"", now=T0 + 0.4)
    s.handle(DagCancelled("d1", T0 + 0.5))  # `slow` still runs
    segments = views.activity_view(s, T0 + 1.0, 10.0)["hosts"]["node-h1"]["segments"]
    assert [(seg["task_id"], seg["state"]) for seg in segments] == [
        ("ok", "succeeded"),
        ("flaky", "retrying"),
        ("bad", "failed"),
        ("slow", "cancelled"),
        ("flaky", "succeeded"),
    ]
    assert segments[1]["end_ago_s"] == pytest.approx(0.8) and segments[3]["end_ago_s"] == pytest.approx(0.5)


def test_a_host_that_leaves_ends_its_attempts_lost_and_leaves_the_view() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a"), task("b")), T0))
    [a1] = assigns(join(s, "h1", now=T0))
    [b1] = assigns(join(s, "h2", now=T0))
    view = views.activity_view(s, T0 + 0.5, 10.0)
    assert set(view["hosts"]) == {"node-h1", "node-h2"}
    assert view["hosts"]["node-h1"]["segments"][0]["state"] == "running"
    assert view["hosts"]["node-h1"]["segments"][0]["end_ago_s"] is None
    again = assigns(s.handle(HostLeft("h1", T0 + 1.0, "bye")))
    assert again == []  # h2 is busy: `a` waits
    assert s.activity.segments("node-h1", T0 + 1.0, 10.0)[0].state == "lost"
    view = views.activity_view(s, T0 + 1.5, 10.0)
    assert set(view["hosts"]) == {"node-h2"}
    assert s.activity.running == 1
    # The same node comes back: its stream goes on.
    [a2] = assigns(join(s, "h1", now=T0 + 2.0))
    assert a2.task_id == "a" and b1.task_id == "b" and a1.task_id == "a"
    stream = views.activity_view(s, T0 + 2.5, 10.0)["hosts"]["node-h1"]["segments"]
    assert [(seg["task_id"], seg["state"]) for seg in stream] == [("a", "lost"), ("a", "running")]


def test_departed_hosts_are_forgotten_beyond_a_bound() -> None:
    rec = ActivityRecorder()
    for i in range(DEPARTED_HOSTS * 3):
        rec.host_joined(f"n{i}", 1, T0 + i)
        rec.started("d", f"t{i}", 1, f"n{i}", T0 + i)
        rec.ended("d", f"t{i}", 1, T0 + i + 0.5, "succeeded")
        rec.host_left(f"n{i}", T0 + i + 0.6)
    assert len(rec.hosts) == DEPARTED_HOSTS


def test_memory_stays_bounded_however_many_tasks_run() -> None:
    """A million tasks must not grow it: after the rings and the stream are full, more events add nothing."""
    rec = ActivityRecorder()
    for h in range(4):
        rec.host_joined(f"h{h}", 2, T0)

    def run(first: int, count: int) -> None:
        for i in range(first, first + count):
            node = f"h{i % 4}"
            at = T0 + i * 0.01  # 100 tasks/s: 70,000 tasks turn every ring over
            rec.started("d", f"t{i}", 1, node, at)
            rec.ended("d", f"t{i}", 1, at + 0.005, "succeeded")
            rec.finished(at + 0.005)

    tracemalloc.start()
    run(0, 70_000)
    before = tracemalloc.take_snapshot()
    run(70_000, 70_000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if "activity" in str(stat.traceback))
    assert grown < 10_000, f"the recorder grew by {grown:,} bytes over 70,000 more tasks"
    assert all(len(log.segments) == SEGMENTS_PER_HOST for log in rec.hosts.values())
    assert rec.running == 0 and not rec._live


@pytest.mark.parametrize(
    ("asked", "given"), [(120.0, 120.0), (1, 1.0), (1.2, 2.0), (600, 600.0), (1e300, 600.0), (10**20, 600.0)]
)
def test_activity_windows_are_whole_seconds_capped_at_600(asked: float, given: float) -> None:
    assert views.activity_window(asked) == given


@pytest.mark.parametrize("asked", [-5.0, 0, 0.5, math.nan, math.inf, -math.inf, "60", None, True, [60]])
def test_bad_activity_windows_get_one_line_errors(asked: object) -> None:
    with pytest.raises(ValueError, match=r"^activity: window_s must be [^\n]+$"):
        views.activity_window(asked)


def test_a_window_longer_than_the_data_pads_with_zeros() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a")), T0))
    [a] = assigns(join(s, "h1", now=T0))
    ok(s, a, b"", now=T0 + 0.25)
    view = views.activity_view(s, T0 + 0.5, 600.0)
    assert len(view["throughput"]) == 600 and view["throughput"][-1] == 1 and sum(view["throughput"]) == 1
    assert len(view["hosts"]["node-h1"]["busy"]) == 600
    assert view["hosts"]["node-h1"]["busy"][-1] == pytest.approx(0.5)  # busy for 0.25 of the 0.5 s passed


def test_failure_reasons_do_not_leak_into_segment_states() -> None:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0, default_retries=0))
    s.handle(DagSubmitted("d1", dag(task("t")), T0))
    [a] = assigns(join(s, "h1", now=T0))
    fail(s, a, FailureReason.TIMEOUT, now=T0 + 1)
    [seg] = views.activity_view(s, T0 + 2, 5.0)["hosts"]["node-h1"]["segments"]
    assert seg["state"] == "failed"


def test_the_invariants_catch_a_segment_that_never_ends() -> None:
    """Every scheduler test checks that the stream's running segments are exactly the live attempts (see
    `invariants._check_activity`); this shows the check fires."""
    s = Scheduler()
    s.handle(DagSubmitted("d1", dag(task("a")), T0))
    [a] = assigns(join(s, "h1", now=T0))
    s.validate()
    s.activity.started("d1", "ghost", 1, "node-h1", T0)
    with pytest.raises(InvariantError, match="ghost still runs in the stream"):
        s.validate()
    s.activity.ended("d1", "ghost", 1, T0, "aborted")
    s.activity.ended("d1", "a", a.attempt, T0, "aborted")  # ended in the stream, still live in the scheduler
    with pytest.raises(InvariantError, match="live attempt 1 of d1/a has no running segment"):
        s.validate()
