"""Where the cluster's time goes: a bounded record of attempts per host and of finished tasks.

The scheduler tells the recorder when an attempt starts on a host and when it ends (succeeded, failed,
aborted, lost...), and when a task finishes for good; the monitor's task-stream view, its sparklines and
the one throughput figure every screen shows (`rate`) are read from it. It is fed on the hot path (the
scheduler runs 5,000+ tasks/s), so each event costs O(1): a deque append, a dict entry and one or two
ring-buffer slots. Memory is bounded whatever the controller's uptime or task count: per host the last
`SEGMENTS_PER_HOST` attempts and `HISTORY_S` one-second busy buckets, cluster-wide `HISTORY_S` one-second
finish counts and `RATE_SLICES` finer ones for the rate, and the attempts running now.

Pure: times come in with each call (the scheduler's event time), nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

SEGMENTS_PER_HOST = 200
"""Attempts remembered per host (the task stream shows at most these)."""

HISTORY_S = 600
"""Seconds of per-second history kept (busy fractions, finish counts): the longest window one may ask."""

RATE_SLICES = 100
"""The rate window is counted in this many slices (0.1 s for the default 10 s): the figure moves
smoothly as finishes age out of it, instead of in one-second steps."""

DEPARTED_HOSTS = 64
"""Hosts that left whose history is kept (a phone that drops off its network and comes back under the
same node id keeps its stream); older ones are forgotten, so churn cannot grow memory."""

SEGMENT_STATES = frozenset({"succeeded", "failed", "retrying", "running", "cancelled", "aborted", "lost", "cached"})
"""What a segment's `state` may say (`SegmentView.state`)."""


@dataclass(slots=True)
class Segment:
    """One attempt on one host: when it was given to the host and when it ended (None: it runs)."""

    dag_id: str
    task_id: str
    attempt: int
    node_id: str
    start: float
    end: float | None = None
    state: str = "running"


class _Ring:
    """Per-second (or per-slice) sums over the last `size` units, stamped so a slot not written for a
    whole turn of the ring reads 0: nothing is ever swept, each write touches one slot."""

    __slots__ = ("size", "values", "stamps")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values = [0.0] * size
        self.stamps = [-1] * size

    def add(self, unit: int, amount: float) -> None:
        i = unit % self.size
        if self.stamps[i] != unit:
            self.stamps[i] = unit
            self.values[i] = amount
        else:
            self.values[i] += amount

    def get(self, unit: int) -> float:
        i = unit % self.size
        return self.values[i] if self.stamps[i] == unit else 0.0


@dataclass(slots=True)
class HostLog:
    """One host's (by node id) attempts and busy-slot integral."""

    slots: int
    segments: deque[Segment] = field(default_factory=lambda: deque(maxlen=SEGMENTS_PER_HOST))
    busy: _Ring = field(default_factory=lambda: _Ring(HISTORY_S))
    """Slot-seconds busy in each second (at most `slots` per second)."""
    live: int = 0
    """Its attempts running now (a queued prefetch counts from assignment: the controller cannot see
    when the host starts it; busy slots are capped at `slots`, so it never reads above 100 %)."""
    since: float = 0.0
    """`busy` holds the integral up to this time; from here on `min(live, slots)` slots are busy."""

    def advance(self, now: float) -> None:
        """Integrate busy slots from `since` to `now` into the per-second buckets (at most HISTORY_S steps,
        one per second crossed: amortised O(1) per event; most events stay within one second)."""
        since = self.since
        if now <= since:
            return
        self.since = now
        busy = self.live if self.live < self.slots else self.slots
        if not busy:
            return
        second = math.floor(since)
        if now < second + 1:  # the common case, inlined: one slot of the ring
            ring = self.busy
            i = second % HISTORY_S
            if ring.stamps[i] != second:
                ring.stamps[i] = second
                ring.values[i] = busy * (now - since)
            else:
                ring.values[i] += busy * (now - since)
            return
        if since < now - HISTORY_S:
            since = now - HISTORY_S
            second = math.floor(since)
        while since < now:
            edge = min(now, second + 1.0)
            self.busy.add(second, busy * (edge - since))
            since = edge
            second += 1


class ActivityRecorder:
    """The scheduler's record of where time went: fed by `Scheduler` at each attempt start and end and at
    each task finish; read by `controller.views.activity_view` and `Scheduler.tasks_per_second`."""

    def __init__(self, rate_window: float = 10.0) -> None:
        self.rate_window = rate_window if rate_window > 0 and math.isfinite(rate_window) else 10.0
        self._slice = self.rate_window / RATE_SLICES
        self._fine = _Ring(RATE_SLICES + 2)
        self._finished = _Ring(HISTORY_S)
        self.hosts: dict[str, HostLog] = {}
        """By node id: every host registered now, and up to DEPARTED_HOSTS that left."""
        self._departed: OrderedDict[str, None] = OrderedDict()
        self._live: dict[tuple[str, str, int], Segment] = {}
        """(dag, task, attempt) -> its segment, for every attempt running now."""
        self._running = 0
        self._active_since: float | None = None
        """When the current spell of work began: the rate's span starts here while it is under the window."""
        self._last_activity = -math.inf
        """The latest time an attempt started or ended or a task finished (or, while any runs, ~now)."""

    # ------------------------------------------------------------------ fed by the scheduler

    def host_joined(self, node_id: str, slots: int, now: float) -> None:
        log = self.hosts.get(node_id)
        if log is None:
            self.hosts[node_id] = HostLog(slots=max(1, slots), since=now)
            return
        log.advance(now)
        log.slots = max(1, slots)
        self._departed.pop(node_id, None)

    def host_left(self, node_id: str, now: float) -> None:
        """Its history stays (bounded by DEPARTED_HOSTS) in case it comes back under the same node id."""
        log = self.hosts.get(node_id)
        if log is None:
            return
        log.advance(now)
        self._departed[node_id] = None
        self._departed.move_to_end(node_id)
        while len(self._departed) > DEPARTED_HOSTS:
            gone, _ = self._departed.popitem(last=False)
            if gone in self.hosts and not self.hosts[gone].live:
                del self.hosts[gone]

    def started(self, dag_id: str, task_id: str, attempt: int, node_id: str, now: float) -> None:
        """An attempt was given to a host (or adopted by one after a restart). Idempotent."""
        key = (dag_id, task_id, attempt)
        live = self._live
        if key in live:
            return
        log = self.hosts.get(node_id)
        if log is None:
            log = self.hosts[node_id] = HostLog(slots=1, since=now)
        if self._running == 0:
            self._touch(now)
        elif now > self._last_activity:
            self._last_activity = now
        segment = Segment(dag_id, task_id, attempt, node_id, now)
        live[key] = segment
        self._running += 1
        log.advance(now)
        log.live += 1
        log.segments.append(segment)

    def ended(self, dag_id: str, task_id: str, attempt: int, now: float, state: str) -> Segment | None:
        """An attempt ended as `state` (see SEGMENT_STATES); its segment, which the caller may still relabel
        (a failed attempt is `failed` or `retrying` once the scheduler decides), or None if not known."""
        segment = self._live.pop((dag_id, task_id, attempt), None)
        if segment is None:
            return None
        if now > self._last_activity:
            self._last_activity = now  # something ran until now: no new spell of work begins here
        self._running -= 1
        segment.end = now if now > segment.start else segment.start
        segment.state = state
        log = self.hosts.get(segment.node_id)
        if log is not None:
            log.advance(now)
            log.live -= 1
        return segment

    def finished(self, now: float) -> None:
        """A task finished for good (succeeded, failed, or served from the result cache)."""
        if self._running == 0:
            self._touch(now)
        elif now > self._last_activity:
            self._last_activity = now
        self._fine.add(math.floor(now / self._slice), 1.0)
        self._finished.add(math.floor(now), 1.0)

    def _touch(self, now: float) -> None:
        """Start a new spell of work if nothing ran or finished within the last rate window."""
        if self._running == 0 and now - self._last_activity >= self.rate_window:
            self._active_since = now
        if now > self._last_activity:
            self._last_activity = now

    # ------------------------------------------------------------------ read by views

    def rate(self, now: float) -> float:
        """THE throughput figure: tasks finished in the last `rate_window` seconds over the time they had,
        which is the window, or less when work began more recently than that (17 tasks in the first 0.6 s
        read ~28/s, not 1.7/s). Decays to 0 as finishes age out of the window once work stops."""
        if self._active_since is None:
            return 0.0
        window = self.rate_window
        width = self._slice
        start = now - window
        first = math.floor(start / width)
        last = math.floor(now / width)
        count = 0.0
        for unit in range(first + 1, last + 1):
            count += self._fine.get(unit)
        # the slice straddling the window's start counts for the part of it inside the window
        count += self._fine.get(first) * max(0.0, (first + 1) * width - start) / width
        if count <= 0:
            return 0.0
        span = min(window, max(width, now - self._active_since))
        return count / span

    def throughput(self, now: float, buckets: int) -> list[int]:
        """Tasks finished in each of the last `buckets` seconds, oldest first (the last: this second)."""
        last = math.floor(now)
        ring = self._finished
        return [int(ring.get(s)) for s in range(last - buckets + 1, last + 1)]

    def busy(self, node_id: str, now: float, buckets: int) -> list[float]:
        """The mean fraction of the host's slots busy in each of the last `buckets` seconds, oldest first;
        the current second is averaged over the part of it that has passed."""
        log = self.hosts.get(node_id)
        if log is None:
            return [0.0] * buckets
        log.advance(now)
        last = math.floor(now)
        slots = float(log.slots)
        out = [min(1.0, log.busy.get(s) / slots) for s in range(last - buckets + 1, last)]
        passed = now - last
        if passed > 1e-3:
            out.append(min(1.0, log.busy.get(last) / (slots * passed)))
        else:
            out.append(min(1.0, min(log.live, log.slots) / slots))
        return out

    def segments(self, node_id: str, now: float, window: float) -> list[Segment]:
        """The host's remembered attempts that overlap the last `window` seconds, oldest first."""
        log = self.hosts.get(node_id)
        if log is None:
            return []
        since = now - window
        return [s for s in log.segments if s.end is None or s.end >= since]

    @property
    def running(self) -> int:
        """Attempts running now (as the recorder saw them start and not end)."""
        return self._running
