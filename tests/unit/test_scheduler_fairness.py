"""Priorities, aging and fair share between DAGs: the pure scheduler, invariants checked after every event."""

from __future__ import annotations

import dataclasses

from bxthre3.dag.spec import DagSpec
from bxthre3.scheduler import DagSubmitted, SchedulerConfig
from tests.unit.test_scheduler import Scheduler, assigns, dag, join, ok, task


def wide(n: int, priority: int = 0, prefix: str = "t") -> DagSpec:
    return dataclasses.replace(dag(*(task(f"{prefix}{i}") for i in range(n))), priority=priority)


def test_a_small_dag_behind_a_heavy_one_gets_the_first_freed_slot() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("heavy", wide(100), 0.0))
    running = assigns(join(s, "a", slots=4))
    assert [x.dag_id for x in running] == ["heavy"] * 4
    assert assigns(s.handle(DagSubmitted("small", wide(3, prefix="s"), 0.5))) == [], "every slot is busy"
    nxt = assigns(ok(s, running[0], b"", now=1.0))
    assert [(x.dag_id, x.task_id) for x in nxt] == [("small", "s0")], "not heavy's t4: small runs nothing"


def test_equal_priorities_share_the_slots_round_robin() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", wide(50, prefix="a"), 0.0))
    s.handle(DagSubmitted("d2", wide(50, prefix="b"), 0.1))
    s.handle(DagSubmitted("d3", wide(50, prefix="c"), 0.2))
    first = assigns(join(s, "h", slots=6, now=0.3))
    assert [x.dag_id for x in first] == ["d1", "d2", "d3", "d1", "d2", "d3"]
    # Each freed slot goes back to the DAG that now runs fewest: the one that freed it.
    nxt = assigns(ok(s, first[0], b"", now=1.0)) + assigns(ok(s, first[1], b"", now=1.1))
    assert [x.dag_id for x in nxt] == ["d1", "d2"]


def test_a_higher_priority_goes_first_and_keeps_the_slots() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("low", wide(20, prefix="l"), 0.0))
    s.handle(DagSubmitted("high", wide(20, priority=5, prefix="h"), 0.1))
    first = assigns(join(s, "h", slots=4, now=0.2))
    assert [x.dag_id for x in first] == ["high"] * 4, "fair share only among equal priorities"
    nxt = assigns(ok(s, first[0], b"", now=1.0))
    assert [x.dag_id for x in nxt] == ["high"]


def test_aging_lets_a_lower_priority_through_so_it_is_not_starved() -> None:
    config = SchedulerConfig(retry_backoff=0.0, priority_aging_s=10.0)
    s = Scheduler(config)
    s.handle(DagSubmitted("low", wide(20, prefix="l"), 0.0))
    s.handle(DagSubmitted("high", wide(60, priority=2, prefix="h"), 0.0))
    held = assigns(join(s, "h", slots=1, now=0.0))
    served: list[str] = []
    now = 0.0
    while now < 45.0:  # tasks of 1 s: low waits two levels (20 s), gets one slot, then waits again
        now += 1.0
        (a,) = held
        held = assigns(ok(s, a, b"", now=now))
        served.append(held[0].dag_id)
    lows = [i + 1 for i, d in enumerate(served) if d == "low"]
    assert lows == [20, 40], "one level per 10 s since last served: 2 levels after 20 s"
    assert served.count("high") == 43


def test_negative_priority_yields_to_the_default() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("batch", wide(10, priority=-1, prefix="b"), 0.0))
    s.handle(DagSubmitted("normal", wide(2, prefix="n"), 0.0))
    first = assigns(join(s, "h", slots=3, now=0.0))
    assert [x.dag_id for x in first] == ["normal", "normal", "batch"]


def test_one_dag_keeps_fifo_order_across_memory_buckets() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d", wide(5), 0.0))
    first = assigns(join(s, "h", slots=5, now=0.0))
    assert [x.task_id for x in first] == ["t0", "t1", "t2", "t3", "t4"]


def test_time_with_nothing_queued_does_not_age_a_dag() -> None:
    """A chain's next task waited on its parent, not for a slot: that time gives it no boost."""
    config = SchedulerConfig(retry_backoff=0.0, priority_aging_s=10.0)
    s = Scheduler(config)
    s.handle(DagSubmitted("chain", dag(task("a"), task("b", "a")), 0.0))
    (a,) = assigns(join(s, "h1", slots=1, now=0.0))
    s.handle(DagSubmitted("high", wide(100, priority=1, prefix="h"), 0.0))
    (h,) = assigns(join(s, "h2", slots=1, now=0.0))
    for now in range(1, 50):  # high is served every second on h2 while the chain's a runs 50 s on h1
        (h,) = assigns(ok(s, h, b"", now=float(now)))
        assert h.dag_id == "high"
    nxt = assigns(ok(s, a, b"", now=50.0))
    assert [x.dag_id for x in nxt] == ["high"], "b has waited 0 s, not 50 s: high (1) outranks it (0)"


def test_queued_prefetches_follow_the_same_order() -> None:
    s = Scheduler(prefetch=1)
    s.handle(DagSubmitted("low", wide(4, prefix="l"), 0.0))
    s.handle(DagSubmitted("high", wide(4, priority=1, prefix="h"), 0.0))
    first = assigns(join(s, "h", slots=1, now=0.0))
    assert [(x.dag_id, x.task_id) for x in first] == [("high", "h0"), ("high", "h1")], "running and queued"
    s.handle(DagSubmitted("other", wide(4, prefix="o"), 0.0))
    nxt = assigns(ok(s, first[0], b"", now=1.0))
    assert [x.dag_id for x in nxt] == ["high"], "the freed place goes to the highest priority still"
