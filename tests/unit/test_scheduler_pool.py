"""A pool of unequal hosts: learned speeds, placement by speed, stealing queued work, speculative backups.

The pure scheduler with its invariants checked after every event (issue 19 item 2)."""

from __future__ import annotations

import dataclasses

from bxthre3.scheduler import (
    AbortAttempt,
    AckResult,
    Assign,
    DagFinished,
    DagState,
    DagSubmitted,
    HostJoined,
    HostLeft,
    HostSeen,
    SchedulerConfig,
    TaskFinished,
    TaskState,
    Tick,
)
from tests.unit.test_scheduler import SHA, RealScheduler, assigns, dag, task


def pool(**config: float) -> RealScheduler:
    """No queues unless a test asks (long tasks), so an idle slot is what decides placement."""
    return RealScheduler(SchedulerConfig(retry_backoff=0.0, **config), rng=lambda: 0.5)  # type: ignore[arg-type]


def join(s: RealScheduler, host: str, slots: int = 1, now: float = 0.0, device: str = "") -> list:
    return s.handle(HostJoined(host, f"node-{host}", slots, 128, now, device_id=device or f"dev{host}"))


def done(s: RealScheduler, a: Assign, now: float, duration: float, output: bytes = b"ok") -> list:
    return s.handle(TaskFinished(a.host_id, a.dag_id, a.task_id, a.attempt, now, output=output, duration=duration))


def alive(s: RealScheduler, now: float, *hosts: str) -> list:
    for h in hosts:
        s.handle(HostSeen(h, now))
    return s.handle(Tick(now))


def learned(fast_s: float = 1.0, slow_s: float = 8.0, left: int = 0) -> tuple[RealScheduler, list[Assign]]:
    """'fast' and 'slow' (one slot each) ran tasks of one DAG until slow's first ended: their speeds are known.
    Returns the attempts they run then; `left` tasks of the DAG are still queued."""
    steps, now = 0, fast_s
    while now + fast_s < slow_s:
        now, steps = now + fast_s, steps + 1
    s = pool()
    s.handle(DagSubmitted("d", dag(*(task(f"t{i}") for i in range(steps + 4 + left))), 0.0))
    [a0] = assigns(join(s, "fast"))
    [a1] = assigns(join(s, "slow"))
    [a2] = assigns(done(s, a0, fast_s, fast_s))
    now = fast_s
    for _ in range(steps):  # fast keeps finishing tasks while slow runs its first
        now += fast_s
        [a2] = assigns(done(s, a2, now, fast_s))
    [a3] = assigns(done(s, a1, slow_s, slow_s))
    return s, [a2, a3]


def test_a_host_slowed_eightfold_is_measured_eightfold_slower_from_its_first_task() -> None:
    s, _ = learned()
    assert s.module_cost[SHA] == 1.0
    assert abs(s.hosts["fast"].speed - 1.0) < 1e-9
    assert abs(s.hosts["slow"].speed - 0.125) < 0.01, s.hosts["slow"].speed
    assert s.hosts["slow"].speed_samples == 1


def test_tasks_too_short_to_measure_teach_no_speed() -> None:
    s = pool()
    s.handle(DagSubmitted("d", dag(task("a"), task("b")), 0.0))
    [a] = assigns(join(s, "h"))
    [b] = assigns(done(s, a, 0.001, 0.001))
    done(s, b, 0.003, 0.001)
    assert s.module_cost == {} and s.hosts["h"].speed_samples == 0


def test_a_long_task_goes_to_the_fastest_idle_host_once_speeds_are_known() -> None:
    for cost, expected in ((2.0, "quick"), (0.01, "plain")):  # a short task: the first idle host, as before
        s = pool()
        join(s, "plain")
        join(s, "quick")
        s.hosts["quick"].speed = 4.0  # as learned (see above); 'plain' is the reference
        s.module_cost[SHA] = cost
        [a] = assigns(s.handle(DagSubmitted("d", dag(task("t")), 1.0)))
        assert a.host_id == expected, cost


def test_an_idle_fast_host_backs_up_the_slow_hosts_last_task_and_the_first_result_wins() -> None:
    s, [on_fast, on_slow] = learned()
    d = s.dags["d"]
    # t0..t5: fast ran 7, slow ran 1; the last two run now. fast finishes: nothing is left to start.
    out = done(s, on_fast, 9.0, 1.0)
    [backup] = assigns(out)
    assert (backup.host_id, backup.task_id) == ("fast", on_slow.task_id), "the slow host's task is backed up"
    task_record = d.tasks[on_slow.task_id]
    assert sorted(task_record.live.values()) == ["fast", "slow"]
    out = done(s, backup, 10.0, 1.0, output=b"backup")
    assert AbortAttempt("slow", "d", on_slow.task_id, on_slow.attempt) in out
    assert DagFinished("d", DagState.SUCCEEDED) in out
    assert task_record.output == b"backup" and task_record.recorded == 1
    loser = task_record.attempt_record(on_slow.attempt)
    assert loser is not None and loser.ended_at == 10.0 and "finished first" in loser.error
    # The slow host's late answer is acknowledged and ignored: the task stays recorded once.
    late = done(s, on_slow, 16.0, 8.0, output=b"late")
    assert [type(i) for i in late] == [AckResult]
    assert task_record.output == b"backup" and task_record.recorded == 1


def test_a_task_marked_speculate_false_never_runs_twice() -> None:
    s = pool()
    tasks = [task(f"t{i}") for i in range(3)] + [dataclasses.replace(task("once"), speculate=False)]
    s.handle(DagSubmitted("d", dag(*tasks), 0.0))
    [a0] = assigns(join(s, "fast"))
    [a1] = assigns(join(s, "slow"))
    [a2] = assigns(done(s, a0, 1.0, 1.0))
    [a3] = assigns(done(s, a1, 8.0, 8.0))  # slow measured 8x; 'once' goes to whichever frees first
    assert a3.task_id == "once" or a2.task_id == "once"
    slow_holds = a3 if a3.host_id == "slow" else a2
    fast_holds = a2 if slow_holds is a3 else a3
    out = done(s, fast_holds, 9.0, 1.0)
    for now in (9.5, 10.0, 12.0):
        out += alive(s, now, "fast", "slow")
    backups = [a for a in assigns(out) if a.task_id == slow_holds.task_id]
    assert (backups == []) == (slow_holds.task_id == "once")


def test_no_backup_when_it_would_not_finish_sooner_by_the_margin() -> None:
    s, [on_fast, on_slow] = learned(fast_s=0.05, slow_s=0.4)  # a backup would gain 0.3 s < speculate_min_s
    out = done(s, on_fast, 0.5, 0.05)
    out += alive(s, 0.6, "fast", "slow")
    assert assigns(out) == []


def test_an_attempt_overrunning_its_estimate_is_presumed_slow_before_its_host_is_measured() -> None:
    s = pool()
    s.handle(DagSubmitted("d", dag(task("a"), task("b"), task("c")), 0.0))
    [a] = assigns(join(s, "fast"))
    [b] = assigns(join(s, "new"))  # 'new' has finished nothing: its speed is a guess (1.0)
    [c] = assigns(done(s, a, 1.0, 1.0))
    assert assigns(done(s, c, 2.0, 1.0)) == [], "b runs 2 s of an expected 1 s: not yet presumed slow"
    [backup] = assigns(alive(s, 2.1, "fast", "new"))
    assert (backup.task_id, backup.host_id) == (b.task_id, "fast"), "2.1 s > 2 x 1 s: backed up"


def test_a_queued_attempt_moves_to_a_host_that_is_idle() -> None:
    s = RealScheduler(
        SchedulerConfig(retry_backoff=0.0, prefetch_per_slot=3, long_task_s=float("inf")), rng=lambda: 0.5
    )
    s.handle(DagSubmitted("d", dag(*(task(f"t{i}") for i in range(4))), 0.0))
    held = assigns(join(s, "busy"))
    assert [a.task_id for a in held] == ["t0", "t1", "t2", "t3"], "one running, three queued"
    out = join(s, "idle", now=0.5)
    moved = assigns(out)
    aborted = [i for i in out if isinstance(i, AbortAttempt)]
    assert [(a.task_id, a.host_id, a.attempt) for a in moved] == [("t3", "idle", 2)]
    assert [(i.task_id, i.host_id, i.attempt) for i in aborted] == [("t3", "busy", 1)]
    t3 = s.dags["d"].tasks["t3"]
    assert "moved to idle host" in t3.attempts[0].error and t3.failures == 0 and t3.host_losses == 0
    assert list(s.hosts["busy"].running) == [("d", "t0"), ("d", "t1"), ("d", "t2")]
    # The busy host's answer for the moved attempt, had it started it anyway, is stale.
    stale = done(s, held[3], 1.0, 0.5, output=b"stale")
    assert [type(i) for i in stale] == [AckResult] and t3.state is TaskState.RUNNING


def test_a_task_lost_twice_with_one_flapping_node_waits_for_another_node_rather_than_go_back() -> None:
    s = pool(max_host_losses=5)
    s.handle(DagSubmitted("d", dag(task("long"), task("other")), 0.0))
    [first] = assigns(join(s, "flappy"))
    [busy] = assigns(join(s, "steady"))
    assert (first.task_id, busy.task_id) == ("long", "other")
    now = 0.0
    for loss in (1, 2):
        now += 1.0
        s.handle(HostLeft("flappy", now))  # its connection dropped with the task
        again = assigns(join(s, "flappy", now=now))
        assert s.dags["d"].tasks["long"].host_losses == loss
        if loss == 1:
            assert [a.host_id for a in again] == ["flappy"], "lost once: it may take it back"
    assert again == [], "lost twice with it: the task waits for 'steady' rather than go back"
    [moved] = assigns(done(s, busy, now + 0.5, 0.5))
    assert (moved.task_id, moved.host_id) == ("long", "steady")
