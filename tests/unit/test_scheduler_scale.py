"""The scheduler with thousands of hosts: placement by heap picks what a walk over every host picked, a
result costs work for its own host only, and a controller behind on its inbound queue kills no host."""

from __future__ import annotations

import random

from bxthre3.scheduler import Assign, DagSubmitted, HostJoined, HostSeen, SchedulerConfig, TaskFinished, Tick
from bxthre3.scheduler.model import HostRecord
from bxthre3.scheduler.placement import FreeHosts, PlacementKey
from tests.unit.test_scheduler import RealScheduler, assigns, dag, task


def _walk(hosts: list[HostRecord], key: dict[str, PlacementKey], allowed: set[str]) -> HostRecord | None:
    """What dispatch did before: the first host (in join order) with the highest key among those allowed."""
    best: HostRecord | None = None
    for h in hosts:
        if h.id in allowed and (best is None or key[h.id] > key[best.id]):
            best = h
    return best


def test_free_hosts_picks_what_a_walk_over_every_host_picks() -> None:
    rng = random.Random(7)
    modules = ["m1", "m2", "m3"]
    for _ in range(20):
        hosts = [
            HostRecord(
                id=f"h{i}",
                node_id=f"n{i}",
                slots=rng.choice([1, 2, 4]),
                ram_mb=rng.choice([64, 128, 512]),
                joined_at=0.0,
                last_seen=0.0,
                modules=set(rng.sample(modules, rng.randint(0, 2))),
                speed=rng.choice([0.5, 1.0, 2.0]),
                order=i,
            )
            for i in range(rng.randint(1, 40))
        ]

        def capacity(h: HostRecord) -> int:
            return h.slots * 2 - len(h.running)

        free = FreeHosts(list(hosts), capacity, lambda sha: sha == "m3")
        left = list(hosts)
        for n in range(400):
            if not free:
                break
            sha = rng.choice(modules)
            memory = rng.choice([0, 0, 100, 300])
            banned = {h.id for h in left if rng.random() < 0.1}
            allowed = {h.id for h in left if h.ram_mb >= memory and h.id not in banned}
            keys = {h.id: free.key(h, sha) for h in left}
            expected = _walk(left, keys, allowed)
            got = free.best(sha, lambda h: h.ram_mb >= memory and h.id not in banned)  # noqa: B023
            assert got is expected, (n, sha, memory)
            assert free.max_ram == max(h.ram_mb for h in left)
            if got is None or rng.random() < 0.1:
                continue  # no host, or the task failed before it was sent: nothing changes
            got.running[("d", f"t{n}")] = 1
            got.modules.add(sha)
            free.assigned(got, sha)
            if capacity(got) == 0:
                free.discard(got)
                left.remove(got)


class CountingScheduler(RealScheduler):
    validate_every = 1000
    capacity_calls = 0

    def _capacity(self, host: HostRecord, deep: bool) -> int:
        self.capacity_calls += 1
        return super()._capacity(host, deep)


def test_a_result_costs_work_for_its_own_host_not_for_every_host() -> None:
    """With 2,000 busy hosts, a result looked at every host's room (~1 ms each: 1,000 hosts ran
    1,400 tasks/s); now at the hosts whose room changed."""
    s = CountingScheduler(SchedulerConfig(retry_backoff=0.0), rng=lambda: 0.5)
    s.handle(DagSubmitted("d", dag(*(task(f"t{i}") for i in range(5_000))), 0.0))
    held: list[Assign] = []
    for i in range(2000):
        held += assigns(s.handle(HostJoined(f"h{i}", f"node-h{i}", 1, 128, 0.0)))
    assert len(held) == 2000, "one per host (tasks of unknown length queue nothing)"
    for n, a in enumerate(held[:200]):
        s.capacity_calls = 0
        new = assigns(s.handle(TaskFinished(a.host_id, a.dag_id, a.task_id, a.attempt, 1.0 + n / 1000, duration=0.2)))
        assert [x.host_id for x in new] == [a.host_id], "its own host gets the next task"
        assert s.capacity_calls <= 10, f"{s.capacity_calls} hosts' room computed (a walk: 2,000 and more)"
    s.validate()


def test_silence_counts_only_up_to_what_the_controller_has_heard() -> None:
    """A controller behind on its inbound queue holds the heartbeats that show its hosts alive: they die
    only once it has read past their limit (a storm of false deaths made a registration storm worse)."""
    s = RealScheduler(SchedulerConfig(heartbeat_interval=1.0, liveness=3), rng=lambda: 0.5)
    s.handle(HostJoined("a", "node-a", 1, 128, 0.0))
    s.handle(HostSeen("a", 1.0, rtt=0.001))
    assert not s.handle(Tick(30.0, heard_until=2.0)) and "a" in s.hosts, "heard up to 2 s: silent only 1 s"
    s.handle(Tick(30.0, heard_until=4.5))
    assert "a" not in s.hosts, "heard up to 4.5 s and nothing from it since 1 s: dead"
    s.handle(HostJoined("b", "node-b", 1, 128, 40.0))
    s.handle(Tick(45.5))  # no round trip measured yet: its limit is 1 + 4 x 1 s
    assert "b" not in s.hosts, "without heard_until, silence counts to now as before"
