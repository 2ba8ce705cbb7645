"""Which free host gets the next ready task, in O(log hosts) per task instead of O(hosts).

A dispatch hands out ready tasks while hosts have room. For each task it wants the host with the best
placement key among those allowed to run it: an idle slot first (a queued task waits behind another),
then, for a long task, the fastest host, then one already holding the module, then the most room, ties
going to the host that joined first. Walking every free host per task was O(tasks x hosts) when many
hosts are free at once: a submission to 1,000 idle hosts hands out ~5,000 tasks over ~1,000 hosts
(seconds of stalled loop, heartbeats late), and 10,000 hosts would take minutes.

So each module's candidates sit in a heap keyed by that key, built when a task of the module first
comes in the dispatch. An assignment changes its host's key: it gains the module (a rise) and loses room
(a fall). The rise is pushed at once, into that module's heap (`assigned`), superseding the host's entry
there; falls are corrected lazily, when an entry comes to the top and its key is no longer the host's
(an entry never ranks a host lower than it is, so the top, once checked, is the best). The choice is the
one the walk made, host for host.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable

from .model import HostRecord

PlacementKey = tuple[bool, float, bool, int]
"""(has an idle slot, its speed for a long task else 0, holds the module, attempts it may still take)."""

_Entry = tuple[int, float, int, int, int, str]
"""A heap entry: the key negated (smallest first), then the host's `order`, then its id."""


def _entry(key: PlacementKey, host: HostRecord) -> _Entry:
    return (-key[0], -key[1], -key[2], -key[3], host.order, host.id)


class FreeHosts:
    """The hosts with room during one dispatch, and the best of them for a task."""

    def __init__(
        self,
        free: list[HostRecord],
        capacity: Callable[[HostRecord], int],
        long_task: Callable[[str], bool],
    ) -> None:
        self.hosts: dict[str, HostRecord] = {h.id: h for h in free}
        self._capacity = capacity
        self._long_task = long_task
        self._ram = Counter(h.ram_mb for h in free)
        self._max_ram = max(self._ram) if self._ram else 0
        self._heaps: dict[str, list[_Entry]] = {}
        self._live: dict[tuple[str, str], _Entry] = {}
        """(module, host id) -> the host's one current entry in that module's heap (others are superseded)."""

    def __bool__(self) -> bool:
        return bool(self.hosts)

    @property
    def max_ram(self) -> int:
        """The most memory any free host offers (what the next task may need at most)."""
        return self._max_ram

    def key(self, host: HostRecord, module: str) -> PlacementKey:
        """`host`'s placement key for a task of `module` (higher is better)."""
        speed = host.speed if self._long_task(module) else 0.0
        return (host.free_slots > 0, speed, module in host.modules, self._capacity(host))

    def best(self, module: str, allowed: Callable[[HostRecord], bool]) -> HostRecord | None:
        """The best free host for a task of `module` that `allowed` accepts; None when none does."""
        if len(self.hosts) == 1:  # the common case (one result freed one host): no heap to build
            (only,) = self.hosts.values()
            return only if allowed(only) else None
        heap = self._heaps.get(module)
        live = self._live
        if heap is None:
            heap = self._heaps[module] = []
            for h in self.hosts.values():
                live[(module, h.id)] = entry = _entry(self.key(h, module), h)
                heap.append(entry)
            heapq.heapify(heap)
        skipped: list[_Entry] = []
        chosen: HostRecord | None = None
        while heap:
            top = heap[0]
            host = self.hosts.get(top[5])
            if host is None or live.get((module, top[5])) != top:  # no room any more, or superseded
                heapq.heappop(heap)
                continue
            now = _entry(self.key(host, module), host)
            if now != top:  # its key fell since the entry was made: put it where it belongs
                live[(module, host.id)] = now
                heapq.heapreplace(heap, now)
                continue
            if allowed(host):
                chosen = host  # left in the heap: `assigned` supersedes it if the host is given the task
                break
            skipped.append(heapq.heappop(heap))
        for entry in skipped:
            heapq.heappush(heap, entry)
        return chosen

    def assigned(self, host: HostRecord, module: str) -> None:
        """`host` was given a task of `module` (chosen by `best`): it holds the module now, which may raise
        its key in that module's heap (lower keys elsewhere are found when they come to the top)."""
        heap = self._heaps.get(module)
        if heap is not None and host.id in self.hosts:
            self._live[(module, host.id)] = entry = _entry(self.key(host, module), host)
            heapq.heappush(heap, entry)

    def discard(self, host: HostRecord) -> None:
        """`host` has no room left: no task goes to it in this dispatch."""
        if self.hosts.pop(host.id, None) is None:
            return
        left = self._ram[host.ram_mb] - 1
        if left:
            self._ram[host.ram_mb] = left
        else:
            del self._ram[host.ram_mb]
            if host.ram_mb == self._max_ram:
                self._max_ram = max(self._ram) if self._ram else 0
