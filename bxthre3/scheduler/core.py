"""The scheduling policy: transitions of tasks, DAGs and hosts, and placement.

Pull with credit: a host offers ``slots``; each result it reports frees one. Ready tasks
go out in FIFO order to a host with free capacity: one with an idle slot first, then one
that already holds the module (so bytes are shipped once), then the one with the most room.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ..common.failures import FailureReason
from ..common.limits import DEFAULT_TASK_RETRIES, DEFAULT_TASK_TIMEOUT_S, MAX_TASK_INPUT_BYTES
from ..dag.spec import DagSpec, InputKind, TaskInput
from ..wire.liveness import silence_limit
from .activity import ActivityRecorder, Segment
from .cache_key import cache_key
from .events import (
    CacheEvicted,
    CacheLoaded,
    CacheMissing,
    CacheServed,
    DagCancelled,
    DagRetried,
    DagSubmitted,
    DeviceTrusted,
    Event,
    HostJoined,
    HostLeft,
    HostSeen,
    TaskFinished,
    Tick,
)
from .instructions import (
    AbortAttempt,
    AckResult,
    Assign,
    AttemptEnded,
    DagFinished,
    ForgetHost,
    Instruction,
    RefuseHost,
    ServeCached,
    StoreCached,
)
from .invariants import check as check_invariants
from .model import AttemptRecord, DagRecord, DagState, HostRecord, QuarantineRecord, TaskRecord, TaskState, Vote
from .placement import FreeHosts
from .ready_queue import ReadyQueue

ASSIGNMENT_GRACE_S = 10.0
"""Seconds past its timeout that a live host may keep an attempt without answering before it is taken back.

The host kills an attempt at its own deadline (plus 0.5 s for wasmtime to stop it itself), so an
answer later than this means its executor handling is wedged. The grace covers what the host's
clock does not: sending the assignment and the result (48 MiB at 10 MB/s is ~5 s), an executor
restart (~0.1 s, more on a phone) and a heartbeat interval or two. The clock of an attempt starts
when it can have started at the latest (see `Scheduler._expire_overdue`), so this is the whole
margin: a wedged but heartbeating host holds an attempt at most timeout + 10 s past that point."""

_ENVIRONMENTAL = frozenset(
    {FailureReason.TIMEOUT, FailureReason.EXECUTOR_CRASHED, FailureReason.HOST_LOST, FailureReason.INTERNAL}
)
"""Failures that say something about where an attempt ran, not about what the task computes: a verified
task's replica ending so casts no vote."""

_MEASURABLE_S = 0.005
"""Shorter tasks do not teach a host's speed: startup and I/O overheads dominate them."""

_AVOID_AFTER_LOSSES = 2
"""A task that lost this many attempts with their hosts is not given again to the node that lost the latest
one while another node could run it: a host that flaps (a phone dropping off its network, a member that
stops heartbeating while it computes) took the same task back at once and lost it again, until the task
failed `host_lost`."""

_IDLE_SCAN_S = 0.05
"""Least time between two scans for work idle hosts could steal or back up (outside ticks)."""


def _outcome_digest(
    reason: FailureReason | None, exit_code: int | None, output: bytes, files: Mapping[str, bytes] | None
) -> bytes:
    """sha256 over everything a verified task's replicas must agree on, each part length-prefixed
    (stderr is left out: diagnostics may differ where results do not)."""
    h = hashlib.sha256()
    for part in (
        (reason.value if reason is not None else "").encode(),
        str(exit_code).encode(),
        output,
        *(piece for name in sorted(files or ()) for piece in (name.encode(), (files or {})[name])),
    ):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.digest()


REPLACED = "replaced by a new registration"
"""Why a host was forgotten when its node id registered again from another connection."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How an attempt ended, as its host reported it (a failure: ``reason`` is set)."""

    reason: FailureReason
    error: str
    output: bytes
    files: Mapping[str, bytes] | None
    stderr: bytes
    exit_code: int | None
    duration: float


class _MissingInput(Exception):
    """A task reads `output_of_T/NAME` and T succeeded without writing NAME (rare: an exception is fine)."""

    def __init__(self, item: TaskInput) -> None:
        super().__init__(item.text)
        self.item = item


_RESTORED_FIELDS = (
    "state", "attempt", "failures", "host_losses", "output", "files", "stderr", "exit_code", "reason", "error",
    "started_at", "finished_at", "duration", "not_before", "recorded", "attempts", "cached",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    heartbeat_interval: float = 1.0
    """Seconds between heartbeats (both ways)."""
    liveness: int = 3
    """Missed intervals after which a silent host is declared dead."""
    default_timeout: float = DEFAULT_TASK_TIMEOUT_S
    default_retries: int = DEFAULT_TASK_RETRIES
    max_host_losses: int = 5
    """Attempts a task may lose with dying hosts before it fails with `host_lost`."""
    retry_backoff: float = 1.0
    """Seconds before the first retry; doubles with each further failure."""
    retry_backoff_max: float = 60.0
    """Longest wait between retries, in seconds."""
    retry_jitter: float = 0.2
    """Each backoff is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    reclaim_grace: float = 10.0
    """After a restart, seconds a running attempt waits for its host to come back and claim it."""
    assignment_grace: float = ASSIGNMENT_GRACE_S
    """Seconds past a task's timeout after which an unanswered attempt is taken back (see ASSIGNMENT_GRACE_S)."""
    throughput_window: float = 10.0
    """Seconds over which `tasks_per_s` is averaged (less while work began more recently: see
    `ActivityRecorder.rate`)."""
    prefetch_per_slot: int = 1
    """Assignments a host may hold queued beyond its slots, per slot, once every slot in the cluster
    is busy: its next task starts the moment the last one ends, not a controller round trip later
    (trivial tasks were latency-bound: one round trip per task per slot)."""
    short_task_prefetch: int = 4
    """`prefetch_per_slot` for a host whose recent tasks are short (see `short_task_s`): a round
    trip to the controller takes longer than several such tasks."""
    short_task_s: float = 0.02
    """A host whose tasks took less than this lately (a moving average) gets `short_task_prefetch`,
    while at least `deep_prefetch_min_ready` ready tasks per slot wait: with fewer, the tasks a
    deep queue holds back would leave other hosts idle at the DAG's end (the cheap tiles of a
    Mandelbrot image made a host look short-task, and the costly ones then piled up behind it)."""
    deep_prefetch_min_ready: int = 32
    """Ready tasks per slot in the cluster needed before short-task hosts get the deep queue."""
    long_task_s: float = 0.1
    """A host whose tasks take this long or longer (or whose tasks are not known yet) gets no queue:
    a round trip costs ~1 % of such a task, a task waiting behind another while a host idles a whole one
    -- on a LAN. A host behind a slow link gets the queue `rtt_prefetch_above` gives it, whatever its tasks."""
    rtt_prefetch_above: float = 0.1
    """A host whose measured round trip (its RTO, srtt + 4 x rttvar) is at least this fraction of its mean task queues
    enough to hide it: ceil(round trip / mean task) per slot (at most `max_rtt_prefetch`). A phone 400 ms
    away ran ~1 task of 0.1 s per round trip without it; the queue lasts about one round trip, so it can
    hold back at most that much work from other hosts at a DAG's end."""
    max_rtt_prefetch: int = 32
    """Most assignments per slot queued to cover a round trip (bounds a host's backlog on a bad link)."""
    priority_aging_s: float = 10.0
    """Aging: a DAG with ready tasks gains one priority level for every this many seconds since it was last
    given a slot (or submitted), so a higher-priority DAG delays a lower one but never starves it."""
    speculate_min_s: float = 0.5
    """A running task gets a backup only if a backup is expected to finish it this many seconds sooner: below
    that, shipping inputs and a round trip eat the gain (and trivial tasks at a DAG's end never run twice)."""
    speculate_overrun: float = 2.0
    """An attempt that has run this many times its expected time is presumed slow, whatever its host's speed
    estimate says (a host's first tasks show its speed only when they end)."""
    quarantine_after: int = 2
    """Verified tasks on which a device's output may lose the vote before the device is quarantined."""
    verify_replica_factor: int = 2
    """`verify: N` runs at most factor x N + 1 replicas before the task fails `unverified`."""
    result_cache: bool = False
    """Keep cacheable outputs (`StoreCached`) and reuse them (`ServeCached`). The controller turns it on (unless
    `--cache-size 0`); off by default here, so a bare scheduler runs every task it is given."""


@dataclass(slots=True)
class PreparedDag:
    """A new DAG's records, built off the controller's loop (see `prepare_dag`)."""

    record: DagRecord
    ready: list[tuple[str, int]]
    """(task id, memory) of the tasks ready at once, in file order: queued when the DAG is added."""


def new_dag_record(dag_id: str, spec: DagSpec, submitted_at: float) -> DagRecord:
    """Every task pending, its dependency count set. Pure: touches no scheduler."""
    tasks: dict[str, TaskRecord] = {}
    dependents: dict[str, list[str]] = {t.id: [] for t in spec.tasks}
    for t in spec.tasks:
        deps = set(t.depends_on) if len(t.depends_on) > 1 else t.depends_on
        tasks[t.id] = TaskRecord(spec=t, waiting_on=len(deps))
        for dep in deps:
            dependents[dep].append(t.id)
    dag = DagRecord(id=dag_id, spec=spec, tasks=tasks, dependents=dependents, submitted_at=submitted_at)
    dag.counts[TaskState.PENDING] = len(tasks)
    return dag


def prepare_dag(dag_id: str, spec: DagSpec, submitted_at: float) -> PreparedDag:
    """A submitted DAG's records with its first tasks already READY, ready to be added by `DagSubmitted`.

    Pure, so the controller runs it on its submission thread: for 100,000 tasks this is ~0.5 s of
    Python that used to stall the loop (and heartbeats). Nothing is marked dirty: a task that is
    still pending or ready at attempt 0 needs no journal row, since the DAG's own row (its spec)
    implies it and `restore_dag` rebuilds exactly that state from a missing row.
    """
    dag = new_dag_record(dag_id, spec, submitted_at)
    ready: list[tuple[str, int]] = []
    ready_state = TaskState.READY
    for task in dag.tasks.values():
        if task.waiting_on == 0:
            task.state = ready_state
            ready.append((task.spec.id, task.spec.memory or 0))
    dag.counts[TaskState.PENDING] -= len(ready)
    dag.counts[TaskState.READY] += len(ready)
    return PreparedDag(dag, ready)


_ROOMY_KEPT = frozenset({TaskFinished, HostSeen, Tick, HostJoined, HostLeft})
"""Events that keep `Scheduler._roomy` up to date themselves (the frequent ones: results, heartbeats, ticks,
and joins and losses, which come by the thousand when a big cluster registers)."""


def _host_order(host: HostRecord) -> int:
    return host.order


class Scheduler:
    """All cluster state the controller holds in memory, and every decision about it.

    ``rng`` (a function returning floats in [0, 1)) supplies the retry jitter, so tests
    can pass a fixed one and the scheduler stays deterministic.
    """

    def __init__(self, config: SchedulerConfig | None = None, rng: Callable[[], float] | None = None) -> None:
        self.config = config or SchedulerConfig()
        self.rng = rng or random.Random().random
        self.dags: dict[str, DagRecord] = {}
        self.hosts: dict[str, HostRecord] = {}
        self.ready = ReadyQueue()
        self.delayed: list[tuple[float, str, str]] = []
        """Heap of (not_before, dag id, task id) for tasks waiting out a retry backoff."""
        self.limbo: dict[tuple[str, str], float] = {}
        """Attempts running when the controller restarted: (dag, task) -> reclaim deadline."""
        self.activity = ActivityRecorder(self.config.throughput_window)
        """Attempts per host and finished tasks over the last minutes: the monitor's task stream and the rate."""
        self.total_succeeded = 0
        self.total_failed = 0
        self.retries_total = 0
        self._pause_changed = False
        self._now = 0.0
        """The current event's time (for `_make_ready`, which most transitions reach without it)."""
        self.failures_by_reason: Counter[str] = Counter()
        """Tasks failed for good since start, by reason (for metrics)."""
        self.quarantined: dict[str, QuarantineRecord] = {}
        """Devices (by device id) whose hosts get no tasks: their verified outputs lost the vote too often.
        Journalled by the controller; `DeviceTrusted` lifts it."""
        self.module_cost: dict[str, float] = {}
        """Mean run time of each module (by sha256) on a speed-1.0 host: what speeds are measured against."""
        self._idle_scan_at = 0.0
        self._verify_by_dag: dict[str, int] = {}
        self.mismatches: Counter[str] = Counter()
        """Verified tasks on which each device's output lost the vote (by device id), since it was last trusted."""
        self.quarantine_changed = False
        """`quarantined` changed since the controller last journalled it (it clears this after a commit)."""
        self.cache_keys: set[str] = set()
        """Keys of the shell's result cache (`CacheLoaded`, `StoreCached`, less `CacheEvicted`/`CacheMissing`)."""
        self.serving: dict[tuple[str, str], str] = {}
        """READY tasks whose output was asked of the cache (`ServeCached`), by (dag, task) -> key: out of the
        ready queue until the shell answers. Entries of tasks no longer READY are stale, like the ready queue's."""
        self.cache_hits = 0
        """Tasks served from the cache since start."""
        self.cache_misses = 0
        """Cacheable tasks run since start because the cache did not hold their output."""
        self._cache_out: list[Instruction] = []
        """`ServeCached` made where no instruction list is at hand (`_make_ready`, `restore_dag`): sent with the
        next event's instructions."""
        self._roomy: dict[str, HostRecord] = {}
        """Hosts that may have room for another attempt: every open host with room is here, and perhaps some
        without. Dispatch looks at these only, so a result costs O(1) hosts instead of O(hosts) (1,000 hosts:
        ~1 ms per result walking them all). A host enters when something that can give it room happens to it
        (it joins, an attempt is released, a result or heartbeat changes its mean, round trip or pause);
        anything rarer (a submission, a cancel, a trust) sets `_roomy_stale` and the next dispatch walks
        every host."""
        self._roomy_stale = True
        self._roomy_deep = False
        """Whether `_roomy` was last pruned with deep queues allowed (when that changes, it is refilled)."""
        self._slots_total = 0
        """Slots of every host in `hosts` (kept as they join and leave: summing them was a walk per dispatch)."""
        self._host_order = 0
        self._by_node: dict[str, list[str]] = {}
        """Node id -> ids of the hosts in `hosts` registered under it (two only while one replaces the other):
        a join looks up its node id here instead of walking every host (10,000 joins were O(hosts^2))."""
        self._handlers = {
            DagSubmitted: self._on_dag_submitted,
            DagCancelled: self._on_dag_cancelled,
            DagRetried: self._on_dag_retried,
            DeviceTrusted: self._on_device_trusted,
            HostJoined: self._on_host_joined,
            HostSeen: self._on_host_seen,
            HostLeft: self._on_host_left,
            TaskFinished: self._on_task_finished,
            Tick: self._on_tick,
            CacheLoaded: self._on_cache_loaded,
            CacheServed: self._on_cache_served,
            CacheMissing: self._on_cache_missing,
            CacheEvicted: self._on_cache_evicted,
        }

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; return what the shell must do, assignments last."""
        out: list[Instruction] = []
        self._pause_changed = False
        self._now = event.now
        kind = type(event)
        self._handlers[kind](event, out)  # type: ignore[operator]
        if kind not in _ROOMY_KEPT:
            self._roomy_stale = True  # rare events (and tests) may change any host: walk them all
        if kind is not HostSeen or self._pause_changed:
            self._dispatch(event.now, out, tick=isinstance(event, Tick))
        if self._cache_out:
            out.extend(self._cache_out)
            self._cache_out = []
        return out

    def validate(self) -> None:
        """Raise `InvariantError` if the records contradict each other (see `invariants`).

        For tests, after every event: it walks every task, so the controller does not call it."""
        check_invariants(self)

    # ------------------------------------------------------------------ handlers

    def _on_dag_submitted(self, ev: DagSubmitted, out: list[Instruction]) -> None:
        prepared = ev.prepared if ev.prepared is not None else prepare_dag(ev.dag_id, ev.spec, ev.now)
        dag = prepared.record
        dag.id = ev.dag_id
        self.dags[dag.id] = dag
        ready = prepared.ready
        if self.cache_keys and dag.spec.cache:
            ready = [entry for entry in ready if not self._try_serve(dag, dag.tasks[entry[0]])]
        self.ready.push_many(dag.id, ready)

    def _new_dag_record(self, dag_id: str, spec: DagSpec, submitted_at: float) -> DagRecord:
        dag = new_dag_record(dag_id, spec, submitted_at)
        self.dags[dag_id] = dag
        return dag

    def _on_dag_cancelled(self, ev: DagCancelled, out: list[Instruction]) -> None:
        dag = self.dags.get(ev.dag_id)
        if dag is None or dag.state is not DagState.RUNNING:
            return
        for task in dag.tasks.values():
            if task.state.terminal:
                continue
            if task.state is TaskState.RUNNING:
                if self.limbo.pop((dag.id, task.spec.id), None) is not None:
                    task.live[task.attempt] = ""  # held by nobody known: ended below like the rest
                self._abort_live(dag, task, ev.now, "cancelled", out, "cancelled")
            task.votes.clear()
            task.error = "cancelled"
            task.finished_at = ev.now
            dag.set_state(task, TaskState.CANCELLED)
        self.ready.discard_dag(dag.id)
        dag.state = DagState.CANCELLED
        dag.finished_at = ev.now
        dag.dag_dirty = True
        out.append(DagFinished(dag.id, dag.state))

    def _on_dag_retried(self, ev: DagRetried, out: list[Instruction]) -> None:
        """Give what ended badly a fresh start; what succeeded stays done and keeps its outputs.

        Attempt numbers keep counting up, so a late result from an old attempt stays stale.
        Retries and host-loss budgets start again: the user decided the cause is fixed.
        """
        dag = self.dags.get(ev.dag_id)
        if dag is None:
            return
        again = self.tasks_to_retry(dag)
        if not again:
            return
        for task_id in again:
            task = dag.tasks[task_id]
            dag.set_state(task, TaskState.PENDING)
            task.failures = 0
            task.host_losses = 0
            task.votes.clear()
            task.output = None
            task.files = None
            task.stderr = b""
            task.exit_code = None
            task.reason = None
            task.error = ""
            task.started_at = None
            task.finished_at = None
            task.duration = 0.0
            task.recorded = 0
            task.cached = False
        dag.failures.clear()  # every failed task is among those started again
        dag.state = DagState.RUNNING
        dag.finished_at = None
        dag.dag_dirty = True
        for task_id in again:
            task = dag.tasks[task_id]
            task.waiting_on = sum(
                1 for dep in set(task.spec.depends_on) if dag.tasks[dep].state is not TaskState.SUCCEEDED
            )
            if task.waiting_on == 0:
                self._make_ready(dag, task)

    def _on_device_trusted(self, ev: DeviceTrusted, out: list[Instruction]) -> None:
        """Its hosts get tasks again (dispatch follows) and its mismatch count starts from zero."""
        if self.quarantined.pop(ev.device_id, None) is not None:
            self.quarantine_changed = True
        self.mismatches.pop(ev.device_id, None)

    def _on_host_joined(self, ev: HostJoined, out: list[Instruction]) -> None:
        # A node id is pinned to the key of the live host holding it: another key is refused and the
        # live host left untouched, so a member cannot evict a host and report results in its name.
        # The same key takes over (a host restarted quickly replaces its own stale connection).
        same_node = [self.hosts[h] for h in self._by_node.get(ev.node_id, ())]
        for other in same_node:
            if other.id != ev.host_id and other.key != ev.key:
                duplicate = f"node id {ev.node_id!r} is held by another live host (a different host key)"
                reason = (
                    f"{duplicate}; give each host a unique --node-id (node managers: a unique --device-name, "
                    "or `bxthre3 device-id --new` on a cloned device), or wait until that host is gone"
                )
                out.append(RefuseHost(ev.host_id, ev.node_id, reason, duplicate))
                return
        host = HostRecord(
            id=ev.host_id,
            node_id=ev.node_id,
            slots=max(1, ev.slots),
            ram_mb=ev.ram_mb,
            joined_at=ev.now,
            last_seen=ev.now,
            platform=ev.platform,
            engine=ev.engine,
            device=ev.device,
            device_id=ev.device_id,
            device_ram_mb=ev.device_ram_mb,
            device_cpus=ev.device_cpus,
            modules=set(ev.modules),
            key=ev.key,
        )
        # Adopt first: attempts the node still holds must not be requeued with its old connection.
        for dag_id, task_id, attempt in ev.holding:
            self._adopt(host, dag_id, task_id, attempt, ev.now, out)
        # Attempts the journal gave this node before a restart, which it no longer holds,
        # never reached it (lost in the old controller's send queue): run them again now.
        for key in [k for k in self.limbo if k not in host.running]:
            dag = self.dags.get(key[0])
            task = dag.tasks.get(key[1]) if dag else None
            if task is not None and task.attempts and task.attempts[-1].node_id == ev.node_id:
                del self.limbo[key]
                error = f"host {ev.node_id} re-registered without it after the controller restarted"
                self._requeue_lost(key[0], key[1], task.attempt, ev.now, error, out)
        # A node re-registering under a new connection replaces its old self.
        for old in [h for h in same_node if h.id != ev.host_id and h.id in self.hosts]:
            self._lose_host(old, ev.now, REPLACED, out)
        existing = self.hosts.get(ev.host_id)
        if existing is not None:
            # Same connection registering again (it restarted): what it did not declare is lost.
            for key, attempt in [(k, n) for k, n in existing.running.items() if host.running.get(k) != n]:
                self._requeue_lost(*key, attempt, ev.now, f"host {ev.node_id} re-registered", out)
        if existing is not None:
            host.order = existing.order  # replaced in place: it keeps its place in `hosts`
        else:
            self._host_order += 1
            host.order = self._host_order
        if existing is not None:
            self._unindex(existing)
            self._slots_total -= existing.slots
        self.hosts[ev.host_id] = host
        self._slots_total += host.slots
        self._roomy[host.id] = host
        self._by_node.setdefault(host.node_id, []).append(host.id)
        self.activity.host_joined(host.node_id, host.slots, ev.now)

    def _adopt(
        self, host: HostRecord, dag_id: str, task_id: str, attempt: int, now: float, out: list[Instruction]
    ) -> None:
        """Take over an attempt a (re)joining host declares, or tell it to let go of it."""
        dag = self.dags.get(dag_id)
        task = dag.tasks.get(task_id) if dag else None
        given = task.attempt_record(attempt) if task is not None else None
        if dag is None or task is None or given is None:
            out.append(AbortAttempt(host.id, dag_id, task_id, attempt))
            return
        if given.node_id != host.node_id or (given.key and given.key != host.key):
            # Given to another node, or to this node id's earlier holder with another key (the key is
            # unknown only after a controller restart): not this host's to claim.
            out.append(AbortAttempt(host.id, dag_id, task_id, attempt))
            return
        if task.state.terminal or any(v.attempt == attempt for v in task.votes):
            out.append(AckResult(host.id, dag_id, task_id, attempt))  # recorded already; the ack was lost
            return
        key = (dag_id, task_id)
        device = self._device_of(host)
        if task.spec.verify > 1 and (
            task.voted(device)
            or any(
                (other := self.hosts.get(holder)) is not None
                and other.node_id != host.node_id
                and self._device_of(other) == device
                for number, holder in task.live.items()
                if number != attempt
            )
        ):
            out.append(AbortAttempt(host.id, dag_id, task_id, attempt))  # its device voted or runs another replica
            return
        if task.state is TaskState.RUNNING and attempt in task.live:
            previous = self.hosts.get(task.live[attempt])
            if previous is not None and previous.node_id != host.node_id:
                out.append(AbortAttempt(host.id, dag_id, task_id, attempt))  # someone else holds it
                return
            if previous is not None:
                self._release(previous, key, now)
        elif task.state is TaskState.RUNNING and attempt == task.attempt and key in self.limbo:
            del self.limbo[key]
        elif task.state is TaskState.READY and attempt == task.attempt and given.reason is FailureReason.HOST_LOST:
            # Requeued when this host was declared dead, and not handed out again yet: take it back.
            given.ended_at = None
            given.reason = None
            given.error = ""
            dag.set_state(task, TaskState.RUNNING)
        else:
            # Taken back from it while another attempt runs the task (or not its latest): let go.
            out.append(AbortAttempt(host.id, dag_id, task_id, attempt))
            return
        task.live[attempt] = host.id
        given.host_id = host.id
        given.node_id = host.node_id
        given.key = host.key
        host.running[key] = attempt
        self.activity.started(dag_id, task_id, attempt, host.node_id, now)
        dag.touch(task)

    def _on_host_seen(self, ev: HostSeen, out: list[Instruction]) -> None:
        host = self.hosts.get(ev.host_id)
        if host is not None:
            host.last_seen = ev.now
            if ev.rtt is not None:
                host.rtt.add(ev.rtt)
                self._roomy[host.id] = host  # a longer round trip may deepen its queue
            if ev.rss_mb >= 0:
                host.rss_mb = ev.rss_mb
            if ev.paused is not None and ev.paused != host.paused:
                host.paused = ev.paused
                self._pause_changed = True
                self._roomy[host.id] = host

    def _on_host_left(self, ev: HostLeft, out: list[Instruction]) -> None:
        host = self.hosts.get(ev.host_id)
        if host is not None:
            self._lose_host(host, ev.now, ev.reason, out)

    def _on_task_finished(self, ev: TaskFinished, out: list[Instruction]) -> None:
        host = self.hosts.get(ev.host_id)
        key = (ev.dag_id, ev.task_id)
        if host is None:
            return  # an unregistered connection: not acked, so the host resends it after registering
        # Acknowledge even a stale or duplicate result: it is settled too, and the host may forget it.
        out.append(AckResult(ev.host_id, ev.dag_id, ev.task_id, ev.attempt))
        host.last_seen = ev.now
        if host.running.get(key) == ev.attempt:
            self._release(host, key, ev.now)
        dag = self.dags.get(ev.dag_id)
        task = dag.tasks.get(ev.task_id) if dag else None
        if (
            dag is None
            or task is None
            or task.state is not TaskState.RUNNING
            or task.live.get(ev.attempt) != ev.host_id
        ):
            # Stale or duplicate: the attempt was reassigned, cancelled, lost a race or was already recorded;
            # and only the host that holds an attempt may end it.
            return
        record = task.attempt_record(ev.attempt)
        if record is None:
            return  # cannot happen (validate() checks every live attempt has a record)
        del task.live[ev.attempt]
        record.ended_at = ev.now
        record.reason = ev.reason
        record.error = ev.error
        outcome = ev.reason.value if ev.reason is not None else TaskState.SUCCEEDED.value
        segment = self._attempt_ended(
            dag.id, task, outcome, ev.duration, out, record, "succeeded" if ev.reason is None else "failed"
        )
        self._roomy[host.id] = host  # a slot freed (and its mean moved)
        if ev.duration >= 0:  # also refuses NaN
            host.mean_task_s += (ev.duration - host.mean_task_s) * 0.3
            if ev.reason is None or ev.reason is FailureReason.EXIT_CODE:
                self._learn_speed(host, task.spec.module, ev.duration)
        dag.touch(task)
        if task.spec.verify > 1:
            self._vote(dag, task, host, ev, out)
        elif ev.reason is None:
            self._abort_live(dag, task, ev.now, f"attempt {ev.attempt} on {host.node_id} finished first", out)
            self._succeed(dag, task, host, ev.output, ev.files, ev.stderr, ev.exit_code, ev.duration, ev.now)
            self._offer_to_cache(dag, task, out)
        elif task.live and ev.reason.retryable:
            host.failed += 1  # a backup attempt still runs it: that one decides
        else:
            self._abort_live(dag, task, ev.now, f"attempt {ev.attempt} failed: {ev.reason.value}", out)
            result = _Outcome(ev.reason, ev.error, ev.output, ev.files, ev.stderr, ev.exit_code, ev.duration)
            self._fail_or_retry(dag, task, host, result, ev.now, out)
        if segment is not None and ev.reason is not None and task.state is not TaskState.FAILED:
            segment.state = "retrying"  # the task runs again (or another attempt of it still runs)
        self._check_dag_done(dag, ev.now, out)

    def _succeed(
        self,
        dag: DagRecord,
        task: TaskRecord,
        host: HostRecord | None,
        output: bytes,
        files: Mapping[str, bytes] | None,
        stderr: bytes,
        exit_code: int | None,
        duration: float,
        now: float,
    ) -> None:
        """Record the task's result (exactly once) and make its dependents ready."""
        task.stderr = stderr
        task.exit_code = exit_code
        task.duration = duration
        task.output = output
        task.files = dict(files) if files else None
        task.reason = None
        task.error = ""
        task.finished_at = now
        task.recorded += 1
        dag.set_state(task, TaskState.SUCCEEDED)
        self._count_finished(now, ok=True, host=host, key=(dag.id, task.spec.id))
        for child_id in dag.dependents[task.spec.id]:
            child = dag.tasks[child_id]
            child.waiting_on -= 1
            if child.waiting_on == 0 and child.state is TaskState.PENDING:
                self._make_ready(dag, child)

    def _fail_or_retry(
        self,
        dag: DagRecord,
        task: TaskRecord,
        host: HostRecord | None,
        result: _Outcome,
        now: float,
        out: list[Instruction],
    ) -> None:
        """The task's (only) attempt failed: run it again after a backoff while retries last, else fail it."""
        reason = result.reason
        task.stderr = result.stderr
        task.exit_code = result.exit_code
        task.duration = result.duration
        task.reason = reason
        task.error = result.error
        retries = task.spec.retries if task.spec.retries is not None else self.config.default_retries
        if reason is FailureReason.INTERNAL and host is not None:
            host.modules.discard(task.spec.module)  # e.g. a corrupt cache file: ship it again
        if reason.retryable and task.failures < retries:
            task.failures += 1
            self._retry_later(dag, task, now)
            if host is not None:
                host.failed += 1
        else:
            task.recorded += 1
            self._fail_task(dag, task, now, out)
            self._count_finished(now, ok=False, host=host, key=(dag.id, task.spec.id))

    def _on_tick(self, ev: Tick, out: list[Instruction]) -> None:
        # Silence limits are never below interval x liveness: only hosts silent that long need theirs (a
        # round-trip estimate each: ~1 us a host, ten times a second).
        heard = ev.now if ev.heard_until is None else min(ev.now, ev.heard_until)
        base = self.config.heartbeat_interval * self.config.liveness
        silent = [h for h in self.hosts.values() if heard - h.last_seen > base]
        for host in [h for h in silent if heard - h.last_seen > self.silence_limit(h)]:
            self._lose_host(host, ev.now, f"silent for {heard - host.last_seen:.1f}s", out)
        self._expire_overdue(ev.now, out)
        while self.delayed and self.delayed[0][0] <= ev.now:
            _, dag_id, task_id = heapq.heappop(self.delayed)
            dag = self.dags.get(dag_id)
            task = dag.tasks.get(task_id) if dag else None
            # An entry of an older backoff (the task was cancelled, retried and failed again) is not its own.
            if dag is not None and task is not None and task.state is TaskState.RETRYING and task.not_before <= ev.now:
                self._make_ready(dag, task)
        for key, reclaim_by in list(self.limbo.items()):
            if ev.now >= reclaim_by:
                del self.limbo[key]
                dag = self.dags.get(key[0])
                task = dag.tasks.get(key[1]) if dag else None
                if task is not None:
                    error = "no host reclaimed it after the controller restarted"
                    self._requeue_lost(key[0], key[1], task.attempt, ev.now, error, out)

    # ------------------------------------------------------------------ transitions

    def _make_ready(self, dag: DagRecord, task: TaskRecord, front: bool = False) -> None:
        dag.set_state(task, TaskState.READY)
        if self.cache_keys and self._try_serve(dag, task):
            return
        self._queue(dag, task, front)

    def _queue(self, dag: DagRecord, task: TaskRecord, front: bool = False) -> None:
        """Put a READY task in the ready queue."""
        if not self.ready.queued(dag.id):
            dag.waiting_since = self._now  # it waits from now: the time it had nothing queued does not age it
        self.ready.push(dag.id, task.spec.id, task.spec.memory or 0, front=front)

    def _retry_later(self, dag: DagRecord, task: TaskRecord, now: float) -> None:
        """Exponential backoff with jitter, so a flapping dependency is not hammered in lockstep."""
        self.retries_total += 1
        cfg = self.config
        delay = min(cfg.retry_backoff_max, cfg.retry_backoff * 2 ** (task.failures - 1))
        delay *= 1 + cfg.retry_jitter * (2 * self.rng() - 1)
        if delay <= 0:
            self._make_ready(dag, task)
            return
        task.not_before = now + delay
        dag.set_state(task, TaskState.RETRYING)
        heapq.heappush(self.delayed, (task.not_before, dag.id, task.spec.id))

    def _fail_task(self, dag: DagRecord, task: TaskRecord, now: float, out: list[Instruction]) -> None:
        task.finished_at = now
        reason = task.reason.value if task.reason else FailureReason.INTERNAL.value
        dag.failures[reason] += 1
        self.failures_by_reason[reason] += 1
        dag.set_state(task, TaskState.FAILED)
        # Everything downstream can never run; iterative walk (chains can be 100,000 long).
        stack = list(dag.dependents[task.spec.id])
        while stack:
            child = dag.tasks[stack.pop()]
            if child.state is TaskState.PENDING:
                dag.set_state(child, TaskState.UPSTREAM_FAILED)
                child.reason = None
                child.error = f"upstream task '{task.spec.id}' failed"
                child.finished_at = now
                stack.extend(dag.dependents[child.spec.id])

    def _check_dag_done(self, dag: DagRecord, now: float, out: list[Instruction]) -> None:
        if dag.state is not DagState.RUNNING or dag.done < len(dag.tasks):
            return
        ok = dag.counts[TaskState.SUCCEEDED] == len(dag.tasks)
        dag.state = DagState.SUCCEEDED if ok else DagState.FAILED
        dag.finished_at = now
        dag.dag_dirty = True
        out.append(DagFinished(dag.id, dag.state))

    def _lose_host(self, host: HostRecord, now: float, why: str, out: list[Instruction], forget: bool = True) -> None:
        """Requeue what the host was running, at the front: those tasks have waited longest.

        Only its live attempts: one taken back from it may have been adopted since by its node's new
        connection (see `_adopt`), which runs it now."""
        for (dag_id, task_id), attempt in list(host.running.items()):
            if self._live_attempt(host, (dag_id, task_id), attempt) is None:
                continue
            self._requeue_lost(dag_id, task_id, attempt, now, f"host {host.node_id} lost: {why}", out)
        host.running.clear()
        if forget:
            del self.hosts[host.id]
            self._unindex(host)
            self._slots_total -= host.slots
            self.activity.host_left(host.node_id, now)
            out.append(ForgetHost(host.id, why, host.node_id))
        else:
            self._roomy[host.id] = host

    def _unindex(self, host: HostRecord) -> None:
        """`host` leaves `_by_node` (it left `hosts`, or a record of the same connection replaces it)."""
        ids = self._by_node.get(host.node_id)
        if ids is not None and host.id in ids:
            ids.remove(host.id)
            if not ids:
                del self._by_node[host.node_id]

    def _requeue_lost(
        self, dag_id: str, task_id: str, attempt: int, now: float, error: str, out: list[Instruction]
    ) -> None:
        """End an attempt that will never report, without using up the task's retries."""
        dag = self.dags.get(dag_id)
        task = dag.tasks.get(task_id) if dag else None
        if dag is None or task is None or task.state is not TaskState.RUNNING:
            return
        if attempt in task.live:
            del task.live[attempt]
        elif attempt != task.attempt or task.live:
            return  # over already (or not in limbo: another attempt runs the task)
        record = task.attempt_record(attempt)
        if record is None:
            return
        record.ended_at = now
        record.reason = FailureReason.HOST_LOST
        record.error = error
        self._attempt_ended(dag_id, task, FailureReason.HOST_LOST.value, now - record.started_at, out, record, "lost")
        dag.touch(task)
        if task.live:  # a backup or another replica still runs it
            self._want_replicas(dag, task)
            return
        task.host_losses += 1
        if task.host_losses > self.config.max_host_losses:
            task.votes.clear()
            task.reason = FailureReason.HOST_LOST
            task.error = f"lost {task.host_losses} attempts with their hosts; last: {error}"
            task.recorded += 1
            self._fail_task(dag, task, now, out)
            self._count_finished(now, ok=False, host=None, key=None)
            self._check_dag_done(dag, now, out)
        else:
            self._make_ready(dag, task, front=True)

    def _attempt_ended(
        self,
        dag_id: str,
        task: TaskRecord,
        outcome: str,
        duration: float,
        out: list[Instruction],
        record: AttemptRecord,
        segment: str,
    ) -> Segment | None:
        """Report the end of one of the task's attempts, with the engine of the host it ran on, and close
        its segment in the task stream as `segment` (a state of `activity.SEGMENT_STATES`)."""
        host = self.hosts.get(record.host_id)
        engine = host.engine if host is not None else ""
        out.append(AttemptEnded(dag_id, task.spec.id, record.attempt, outcome, engine, duration))
        ended = record.ended_at if record.ended_at is not None else self._now
        return self.activity.ended(dag_id, task.spec.id, record.attempt, ended, segment)

    def _withdraw(
        self,
        dag: DagRecord,
        task: TaskRecord,
        attempt: int,
        now: float,
        why: str,
        out: list[Instruction],
        segment: str = "aborted",
    ) -> None:
        """Stop one running attempt on its host; its record ends with `why` and its result will be stale."""
        key = (dag.id, task.spec.id)
        host = self.hosts.get(task.live.pop(attempt, ""))
        if host is not None:
            self._release(host, key, now)
            out.append(AbortAttempt(host.id, dag.id, task.spec.id, attempt))
        record = task.attempt_record(attempt)
        if record is not None and record.ended_at is None:
            record.ended_at = now
            record.error = why
            self._attempt_ended(dag.id, task, "cancelled", now - record.started_at, out, record, segment)
        dag.touch(task)

    def _abort_live(
        self, dag: DagRecord, task: TaskRecord, now: float, why: str, out: list[Instruction], segment: str = "aborted"
    ) -> None:
        """Stop every attempt of `task` still running (the losers of a race, or all of them on cancel)."""
        for attempt in list(task.live):
            self._withdraw(dag, task, attempt, now, why, out, segment)

    # ------------------------------------------------------------------ the result cache

    @staticmethod
    def cacheable(dag: DagRecord, task: TaskRecord) -> bool:
        """May this task's output be reused, and stored for reuse? Not with `cache: false` or `--no-cache`;
        not if its module reads time or randomness (`DagSpec.volatile_modules`), unless it runs seeded."""
        spec = task.spec
        if not (spec.cache and dag.spec.cache):
            return False
        return spec.verify > 1 or spec.module not in dag.spec.volatile_modules

    def cache_key_of(self, dag: DagRecord, task: TaskRecord) -> str | None:
        """The task's cache key from its inputs as they are now (None: an input is missing)."""
        try:
            parts = self._stdin_parts(dag, task)
            files = self._in_files(dag, task) if task.spec.files else None
        except _MissingInput:
            return None
        spec = task.spec
        return cache_key(spec.id, spec.module, spec.args, parts, files, spec.memory, spec.verify > 1)

    def _try_serve(self, dag: DagRecord, task: TaskRecord) -> bool:
        """A READY task whose output the cache holds is asked of the shell instead of queued: True if so."""
        if task.votes or not self.cacheable(dag, task):
            return False
        key = self.cache_key_of(dag, task)
        if key is None or key not in self.cache_keys:
            return False
        self.serving[(dag.id, task.spec.id)] = key
        self._cache_out.append(ServeCached(dag.id, task.spec.id, key))
        return True

    def _offer_to_cache(self, dag: DagRecord, task: TaskRecord, out: list[Instruction]) -> None:
        """A task just succeeded by running: keep its output for reuse if it is cacheable."""
        if not self.config.result_cache or not self.cacheable(dag, task):
            return
        self.cache_misses += 1
        key = self.cache_key_of(dag, task)
        if key is None or key in self.cache_keys:
            return
        self.cache_keys.add(key)
        out.append(StoreCached(key, dag.id, task.spec.id, task.output or b"", task.files))

    def _on_cache_loaded(self, ev: CacheLoaded, out: list[Instruction]) -> None:
        self.cache_keys.update(ev.keys)

    def _on_cache_evicted(self, ev: CacheEvicted, out: list[Instruction]) -> None:
        self.cache_keys.difference_update(ev.keys)

    def _answered(self, dag_id: str, task_id: str, key: str) -> tuple[DagRecord, TaskRecord] | None:
        """The task a cache answer is for, if it still waits for that answer (else the answer is stale)."""
        if self.serving.get((dag_id, task_id)) != key:
            return None
        del self.serving[(dag_id, task_id)]
        dag = self.dags.get(dag_id)
        task = dag.tasks.get(task_id) if dag else None
        if dag is None or task is None or task.state is not TaskState.READY:
            return None
        return dag, task

    def _on_cache_served(self, ev: CacheServed, out: list[Instruction]) -> None:
        """A served task succeeds with the cached output, as if it had run: its dependents become ready."""
        found = self._answered(ev.dag_id, ev.task_id, ev.key)
        if found is None:
            return
        dag, task = found
        self.cache_hits += 1
        task.cached = True
        task.started_at = ev.now
        self._succeed(dag, task, None, ev.output, ev.files, b"", 0, 0.0, ev.now)
        self._check_dag_done(dag, ev.now, out)

    def _on_cache_missing(self, ev: CacheMissing, out: list[Instruction]) -> None:
        """The entry is gone: forget its key, and run the task after all."""
        self.cache_keys.discard(ev.key)
        found = self._answered(ev.dag_id, ev.task_id, ev.key)
        if found is None:
            return
        dag, task = found
        self._queue(dag, task)

    # ------------------------------------------------------------------ verification by replication

    @staticmethod
    def _device_of(host: HostRecord) -> str:
        """What counts as one device for `verify` and quarantine: its random device id (a node id if it sent none)."""
        return host.device_id or host.node_id

    def _needed_votes(self, task: TaskRecord) -> int:
        """More agreeing votes the leading outcome needs: N in all, and more than half of every vote cast."""
        n = task.spec.verify
        if not task.votes:
            return n
        lead = Counter(v.digest for v in task.votes).most_common(1)[0][1]
        return max(n - lead, len(task.votes) - 2 * lead + 1, 0)

    def _replica_budget(self, task: TaskRecord) -> int:
        """Replicas still allowed before the task fails `unverified` (factor x N + 1 in all)."""
        return self.config.verify_replica_factor * task.spec.verify + 1 - len(task.votes)

    def _replicas_missing(self, task: TaskRecord) -> int:
        """Attempts a running verified task should be given now, beyond those already running."""
        if task.spec.verify < 2:
            return 0
        return max(0, min(self._needed_votes(task), self._replica_budget(task)) - len(task.live))

    def _want_replicas(self, dag: DagRecord, task: TaskRecord) -> None:
        """Queue what a verified task still needs: a READY entry if nothing runs it, else one entry per replica.

        Entries of a running task are consumed by `_dispatch` only while replicas are missing, so a
        spare entry (a vote made one unnecessary) is dropped when it is popped."""
        if not task.live:
            if task.spec.verify < 2 or self._needed_votes(task) > 0:
                self._make_ready(dag, task, front=True)
            return
        memory = task.spec.memory or 0
        for _ in range(self._replicas_missing(task)):
            self.ready.push(dag.id, task.spec.id, memory, front=True)

    def _may_run(self, dag_id: str, task: TaskRecord, host: HostRecord) -> bool:
        """May `host` take an attempt of `task`? Not one it holds already; for `verify`, not on a device that
        voted or runs a replica (replicas on one device prove nothing)."""
        if (
            task.host_losses >= _AVOID_AFTER_LOSSES
            and self._lost_it_last(task, host)
            and self._another_may_run(task, host)
        ):
            return False
        if host.id in task.live.values():
            return False
        if task.spec.verify < 2:
            return True
        device = self._device_of(host)
        if task.voted(device):
            return False
        return not any(
            (other := self.hosts.get(host_id)) is not None and self._device_of(other) == device
            for host_id in task.live.values()
        )

    @staticmethod
    def _lost_it_last(task: TaskRecord, host: HostRecord) -> bool:
        """Did `host`'s node lose the task's latest attempt (its connection dropped, or it went silent)?"""
        last = task.attempts[-1] if task.attempts else None
        return last is not None and last.reason is FailureReason.HOST_LOST and last.node_id == host.node_id

    def _another_may_run(self, task: TaskRecord, host: HostRecord) -> bool:
        """Is there a host other than `host`, of another node, that could run `task` (busy or not)?"""
        memory = task.spec.memory or 0
        return any(
            other.node_id != host.node_id
            and other.ram_mb >= memory
            and not other.paused
            and self._device_of(other) not in self.quarantined
            and (task.spec.verify < 2 or not task.voted(self._device_of(other)))
            for other in self.hosts.values()
        )

    def _vote(
        self, dag: DagRecord, task: TaskRecord, host: HostRecord, ev: TaskFinished, out: list[Instruction]
    ) -> None:
        """A replica of a verified task ended: count what its device says, decide once a majority agrees."""
        reason = ev.reason
        if reason in _ENVIRONMENTAL:
            # Says nothing about the output (the device was slow, crashed or went away): run another
            # replica while retries last, else the task fails with that reason like an unverified one.
            assert reason is not None
            retries = task.spec.retries if task.spec.retries is not None else self.config.default_retries
            if task.failures < retries:
                task.failures += 1
                host.failed += 1
                if task.live:
                    self._want_replicas(dag, task)
                else:
                    task.reason = reason
                    task.error = ev.error
                    self._retry_later(dag, task, ev.now)
                return
            self._abort_live(dag, task, ev.now, f"replica {ev.attempt} failed: {reason.value}", out)
            task.votes.clear()
            result = _Outcome(reason, ev.error, ev.output, ev.files, ev.stderr, ev.exit_code, ev.duration)
            self._fail_or_retry(dag, task, host, result, ev.now, out)
            return
        device = self._device_of(host)
        if device in self.quarantined or task.voted(device):
            self._want_replicas(dag, task)  # its word does not count (twice, or at all)
            return
        digest = _outcome_digest(reason, ev.exit_code, ev.output, ev.files)
        task.votes.append(
            Vote(
                device, host.device or host.node_id, digest, ev.attempt, host.id, reason, ev.error,
                ev.output, dict(ev.files) if ev.files else None, ev.stderr, ev.exit_code, ev.duration,
            )
        )  # fmt: skip
        self._tally(dag, task, ev.now, out)

    def _tally(self, dag: DagRecord, task: TaskRecord, now: float, out: list[Instruction]) -> None:
        """Accept the outcome N distinct devices and a majority agree on; else ask for more replicas, or give up."""
        counts = Counter(v.digest for v in task.votes)
        leader, lead = counts.most_common(1)[0]
        if lead >= task.spec.verify and 2 * lead > len(task.votes):
            self._decide(dag, task, leader, now, out)
            return
        if self._needed_votes(task) <= self._replica_budget(task):
            self._want_replicas(dag, task)
            return
        self._abort_live(dag, task, now, "its task could not be verified", out)
        outcomes = ", ".join(f"{n} x sha256 {digest.hex()[:12]}" for digest, n in counts.most_common(4))
        task.votes.clear()
        task.reason = FailureReason.UNVERIFIED
        task.error = (
            f"{sum(counts.values())} devices disagreed on its output ({outcomes}); verify: {task.spec.verify} "
            f"needs {task.spec.verify} agreeing devices and a majority"
        )
        task.recorded += 1
        self._fail_task(dag, task, now, out)
        self._count_finished(now, ok=False, host=None, key=None)

    def _decide(self, dag: DagRecord, task: TaskRecord, digest: bytes, now: float, out: list[Instruction]) -> None:
        """The majority's outcome becomes the task's; replicas still running stop; dissenters get a mismatch."""
        winners = [v for v in task.votes if v.digest == digest]
        losers = [v for v in task.votes if v.digest != digest]
        task.votes.clear()
        self._abort_live(dag, task, now, f"verified by {len(winners)} devices before it ended", out)
        for vote in losers:
            record = task.attempt_record(vote.attempt)
            if record is not None:
                record.error = f"outvoted: its output differed from {len(winners)} other devices'"
            self._mismatch(vote, dag, task, len(winners), now, out)
        won = winners[0]
        host = self.hosts.get(won.host_id)
        if won.reason is None:
            self._succeed(dag, task, host, won.output, won.files, won.stderr, won.exit_code, won.duration, now)
            self._offer_to_cache(dag, task, out)
            for vote in winners[1:]:  # every host whose replica agreed did the task: `status` counts it done there
                other = self.hosts.get(vote.host_id)
                if other is not None:
                    other.succeeded += 1
                    other.recent.append(f"{dag.id}/{task.spec.id}")
        else:
            result = _Outcome(won.reason, won.error, won.output, won.files, won.stderr, won.exit_code, won.duration)
            self._fail_or_retry(dag, task, host, result, now, out)

    def _mismatch(
        self, vote: Vote, dag: DagRecord, task: TaskRecord, majority: int, now: float, out: list[Instruction]
    ) -> None:
        """A device's output lost a vote; at `quarantine_after` such votes its hosts get no more tasks."""
        device = vote.device_id
        self.mismatches[device] += 1
        count = self.mismatches[device]
        reason = f"its output of {dag.id}/{task.spec.id} disagreed with {majority} devices"
        held = self.quarantined.get(device)
        if held is not None:
            held.mismatches = count
            held.reason = reason
            self.quarantine_changed = True
        elif count >= self.config.quarantine_after:
            self.quarantined[device] = QuarantineRecord(device, vote.device, now, count, reason)
            self.quarantine_changed = True
            self._evict_device(device, now, out)

    def _evict_device(self, device: str, now: float, out: list[Instruction]) -> None:
        """A quarantined device's attempts are taken back (their results could not be trusted) and run
        elsewhere, and its votes still open are struck out."""
        for host in [h for h in self.hosts.values() if self._device_of(h) == device]:
            for (dag_id, task_id), attempt in list(host.running.items()):
                task = self._live_attempt(host, (dag_id, task_id), attempt)
                if task is None:
                    continue
                dag = self.dags[dag_id]
                self._withdraw(dag, task, attempt, now, f"device {host.device or device} was quarantined", out)
                self._want_replicas(dag, task)
        for dag in self.dags.values():
            if dag.state is not DagState.RUNNING:
                continue
            for task in dag.tasks.values():
                if task.voted(device):
                    task.votes = [v for v in task.votes if v.device_id != device]
                    if task.state is TaskState.RUNNING:
                        self._want_replicas(dag, task)

    # ------------------------------------------------------------------ speeds, stealing and backups

    def _learn_speed(self, host: HostRecord, module: str, duration: float) -> None:
        """Learn how fast `host` is from one finished task, against what its module costs elsewhere.

        ``module_cost`` is a module's mean run time on a speed-1.0 host. A host's speed moves towards
        expected / actual in log space: fast for its first samples (the first one decides outright),
        then as a moving average, since tasks of one module differ (a Mandelbrot tile's cost depends
        on where it is). Tasks shorter than `_MEASURABLE_S` say more about overheads than speed."""
        if duration < _MEASURABLE_S:
            return
        cost = self.module_cost.get(module)
        if cost is None:
            self.module_cost[module] = duration * host.speed
            return
        ratio = min(64.0, max(1 / 64, cost / host.speed / duration))
        weight = 1.0 / (host.speed_samples + 1) if host.speed_samples < 3 else 0.3
        host.speed = min(256.0, max(1 / 256, host.speed * ratio**weight))
        host.speed_samples += 1
        self.module_cost[module] = cost + 0.2 * (duration * host.speed - cost)

    def _use_idle(self, now: float, out: list[Instruction]) -> None:
        """Idle slots and nothing ready for them: take queued work from busy hosts, then back up slow attempts.

        Scans every host's attempts, so it runs at most every `_IDLE_SCAN_S` (and on every tick)."""
        self._idle_scan_at = now + _IDLE_SCAN_S
        idle = [h for h in self._open_hosts() if h.free_slots > 0]
        if not idle:
            return
        idle.sort(key=lambda h: -h.speed)
        # Hosts holding queued attempts: only they can be stolen from, and stealing never adds to their
        # number (a thief has a free slot, so it never holds more than its slots). Found once, not per thief.
        victims = [h for h in self.hosts.values() if len(h.running) > h.slots]
        for thief in idle if victims else ():
            while thief.free_slots > 0 and self._steal_one(thief, victims, now, out):
                pass
        idle = [h for h in idle if h.free_slots > 0]
        if idle and self.module_cost:
            self._speculate(now, idle, out)

    def _steal_one(self, thief: HostRecord, victims: list[HostRecord], now: float, out: list[Instruction]) -> bool:
        """Move the last attempt queued (not started) on the busiest of `victims` to `thief`'s idle slot."""
        best: tuple[int, HostRecord, tuple[str, str], int] | None = None
        for host in victims:
            queued = len(host.running) - host.slots
            if host is thief or queued <= 0 or (best is not None and queued <= best[0]):
                continue
            key, attempt = next(reversed(host.running.items()))
            best = (queued, host, key, attempt)
        if best is None:
            return False
        _, victim, key, attempt = best
        task = self._live_attempt(victim, key, attempt)
        dag = self.dags.get(key[0])
        if task is None or dag is None or not self._may_run(dag.id, task, thief):
            return False
        if (task.spec.memory or 0) > thief.ram_mb:
            return False
        parts = self._stdin_parts(dag, task)  # its inputs exist: it was assigned with them
        files = self._in_files(dag, task) if task.spec.files else None
        self._withdraw(dag, task, attempt, now, f"moved to idle host {thief.node_id} before it started", out)
        out.append(self._assign(dag, task, thief, parts, now, files))
        return True

    def _speculate(self, now: float, idle: list[HostRecord], out: list[Instruction]) -> None:
        """Back up the running attempts expected to end last, on idle hosts expected to end them sooner.

        A running attempt's remaining time is its module's cost over its host's speed, minus what it ran
        already; one that ran `speculate_overrun` times that estimate is presumed to need as long again.
        A backup must beat it by `speculate_min_s`, plus the idle host's round trip. The first result
        wins (`_on_task_finished`); the other attempt is aborted and its result never recorded."""
        candidates: list[tuple[float, str, str, int, float]] = []  # (-remaining, dag, task, attempt, cost)
        for host in self.hosts.values():
            for started, (key, attempt) in enumerate(host.running.items()):
                if started >= host.slots:
                    break  # queued behind the host's running attempts: stealing's business
                task = self._live_attempt(host, key, attempt)
                if task is None or len(task.live) > 1 or not task.spec.speculate or task.spec.verify > 1:
                    continue
                cost = self.module_cost.get(task.spec.module)
                record = task.attempt_record(attempt)
                if cost is None or record is None:
                    continue
                expected = cost / host.speed
                elapsed = now - record.started_at
                remaining = elapsed if elapsed > self.config.speculate_overrun * expected else expected - elapsed
                if remaining > self.config.speculate_min_s:
                    candidates.append((-remaining, key[0], key[1], attempt, cost))
        if not candidates:
            return
        candidates.sort()
        for neg_remaining, dag_id, task_id, _attempt, cost in candidates:
            if not idle:
                return
            dag = self.dags[dag_id]
            task = dag.tasks[task_id]
            memory = task.spec.memory or 0
            fits = [h for h in idle if h.ram_mb >= memory and self._may_run(dag_id, task, h)]
            if not fits:
                continue
            thief = fits[0]  # the fastest idle host (`idle` is sorted by speed)
            round_trip = thief.rtt.rto if thief.rtt.srtt is not None else 0.0
            if cost / thief.speed + round_trip + self.config.speculate_min_s > -neg_remaining:
                continue
            parts = self._stdin_parts(dag, task)
            files = self._in_files(dag, task) if task.spec.files else None
            out.append(self._assign(dag, task, thief, parts, now, files))
            if thief.free_slots <= 0:
                idle.remove(thief)

    def _expire_overdue(self, now: float, out: list[Instruction]) -> None:
        """Backstop for hosts that stay alive but never answer an attempt (a wedged executor).

        A host runs its attempts in the order it got them (FIFO backlog, FIFO executor pipes), so
        an attempt has started at the latest when it was assigned or, if later, when every attempt
        assigned to that host before it had ended: that is when its clock starts, and only the
        oldest unanswered attempt of each host is timed. Once it is overdue (timeout +
        `assignment_grace`), it and every attempt the host got after it are taken back: those
        may sit in the wedged executor's pipe behind it, and timing each in turn would let a
        wedged host hold the last of them for several timeouts. Each taken-back attempt keeps
        its slot counted as busy until the host answers: the host evidently is not working.
        """
        grace = self.config.assignment_grace
        for host in self.hosts.values():
            if not host.running:
                continue
            overdue: list[tuple[tuple[str, str], int]] = []
            for key, attempt in host.running.items():
                task = self._live_attempt(host, key, attempt)
                if task is None:
                    continue  # taken back already (or stale): the host still owes an answer, nothing to time
                if overdue:
                    overdue.append((key, attempt))
                    continue
                if key != host.head:
                    if host.head is not None:  # the previous oldest ended unnoticed: count from now
                        host.head_since = now
                    host.head = key
                record = task.attempt_record(attempt)
                started = record.started_at if record is not None else now
                timeout = task.spec.timeout if task.spec.timeout is not None else self.config.default_timeout
                if now <= max(started, host.head_since) + timeout + grace:
                    break
                overdue.append((key, attempt))
            if overdue:
                host.head = None
                host.head_since = now
                first = overdue[0][0]
                for key, attempt in reversed(overdue):  # each goes to the front: keep their order
                    if key == first:
                        error = f"host {host.node_id} sent no result within timeout + {grace:g}s"
                    else:
                        error = f"host {host.node_id} sent no result for {first[1]!r}, queued before it"
                    self._requeue_lost(key[0], key[1], attempt, now, error, out)

    def _live_attempt(self, host: HostRecord, key: tuple[str, str], attempt: int) -> TaskRecord | None:
        """The task whose current attempt `host` holds under `key`, or None when that attempt is over."""
        dag = self.dags.get(key[0])
        task = dag.tasks.get(key[1]) if dag else None
        if task is None or task.state is not TaskState.RUNNING or task.live.get(attempt) != host.id:
            return None
        return task

    def _release(self, host: HostRecord, key: tuple[str, str], now: float) -> None:
        """`host` no longer holds `key`; if it was the oldest one timed, the next one's clock starts now."""
        if host.running.pop(key, None) is not None:
            self._roomy[host.id] = host
            if key == host.head:
                host.head = None
                host.head_since = now

    def _count_finished(self, now: float, ok: bool, host: HostRecord | None, key: tuple[str, str] | None) -> None:
        self.activity.finished(now)
        if ok:
            self.total_succeeded += 1
        else:
            self.total_failed += 1
        if host is not None:
            if ok:
                host.succeeded += 1
            else:
                host.failed += 1
            if key is not None:
                host.recent.append(f"{key[0]}/{key[1]}")

    # ------------------------------------------------------------------ placement

    def _dispatch(self, now: float, out: list[Instruction], tick: bool = False) -> None:
        if self.ready:
            self._dispatch_ready(now, out)
        if tick or now >= self._idle_scan_at:  # checked first: this runs after every event
            self._use_idle(now, out)

    def _open_hosts(self) -> Iterator[HostRecord]:
        """Hosts that may be given tasks: not paused by their device, not on a quarantined device."""
        quarantined = self.quarantined
        for h in self.hosts.values():
            if not h.paused and (not quarantined or self._device_of(h) not in quarantined):
                yield h

    def _dispatch_ready(self, now: float, out: list[Instruction]) -> None:
        """Hand out ready tasks (and replicas verified tasks still need) while hosts have room."""
        roomy, deep = self._free_hosts()
        if not roomy:
            return
        free = FreeHosts(roomy, lambda h: self._capacity(h, deep), self._long_module)
        rank = self._ranker(now) if self.ready.dag_count > 1 else None
        deferred: list[tuple[str, str, int]] = []  # replicas no free host may run (same device): queued again
        while self.ready and free:
            entry = self.ready.pop_for(free.max_ram, rank)
            if entry is None:
                break  # every queued task needs more memory than any free host offers
            dag_id, task_id, memory = entry
            dag = self.dags.get(dag_id)
            task = dag.tasks.get(task_id) if dag else None
            if dag is None or task is None:
                continue
            if task.state is not TaskState.READY and not (
                task.state is TaskState.RUNNING and self._replicas_missing(task) > 0
            ):
                continue  # stale: assigned, cancelled or done since it was queued
            host = free.best(
                task.spec.module,
                lambda h: h.ram_mb >= memory and self._may_run(dag_id, task, h),  # noqa: B023 (used at once)
            )
            if host is None:
                deferred.append(entry)
                continue
            try:
                parts = self._stdin_parts(dag, task)
                files = self._in_files(dag, task) if task.spec.files else None
            except _MissingInput as missing:
                task.reason = FailureReason.MISSING_INPUT
                task.error = self._missing_text(dag, missing.item)
                self._fail_before_start(dag, task, now, out)
                continue
            size = sum(len(p) for p in parts)
            if files:
                size += sum(len(data) for data in files.values())
            if size > MAX_TASK_INPUT_BYTES:
                task.reason = FailureReason.INPUT_LIMIT
                what = "stdin and /in files add" if files else "inputs add"
                task.error = f"{what} up to {size:,} bytes, over the {MAX_TASK_INPUT_BYTES:,}-byte limit"
                self._fail_before_start(dag, task, now, out)
                continue
            out.append(self._assign(dag, task, host, parts, now, files))
            free.assigned(host, task.spec.module)
            if task.spec.verify > 1:
                self._want_replicas(dag, task)
            if self._capacity(host, deep) == 0:
                free.discard(host)
        for dag_id, task_id, memory in reversed(deferred):
            self.ready.push(dag_id, task_id, memory, front=True)

    def _long_module(self, sha: str) -> bool:
        """Its tasks are known to take `long_task_s` or more: placed on the fastest host (see `placement`)."""
        return self.module_cost.get(sha, 0.0) >= self.config.long_task_s

    def _free_hosts(self) -> tuple[list[HostRecord], bool]:
        """Open hosts with room now, in `hosts` order, and whether queues may be deep (see `_capacity`).

        Looks at `_roomy` only (at every host when it is stale, or when whether queues may be deep changed:
        that changes short-task hosts' room) and drops from it the hosts without room or closed (paused, quarantined:
        a pause or quarantine ending marks it stale)."""
        # Enough ready tasks for short-task hosts to queue deep: decided once per dispatch.
        deep = len(self.ready) >= self.config.deep_prefetch_min_ready * self._slots_total
        if self._roomy_stale or deep != self._roomy_deep:
            self._roomy_stale = False
            self._roomy = dict(self.hosts)
        self._roomy_deep = deep
        quarantined, hosts = self.quarantined, self.hosts
        free: list[HostRecord] = []
        gone: list[str] = []
        for host_id, h in self._roomy.items():
            if h.paused or (quarantined and self._device_of(h) in quarantined) or hosts.get(host_id) is not h:
                gone.append(host_id)
            elif self._capacity(h, deep) > 0:
                free.append(h)
            else:
                gone.append(host_id)
        for host_id in gone:
            del self._roomy[host_id]
        if len(free) > 1:
            free.sort(key=_host_order)
        return free, deep

    def _ranker(self, now: float) -> Callable[[str], tuple[int, int]]:
        """Which DAG's ready task goes next (smallest first): the highest effective priority, then the DAG
        with the fewest running attempts (fair share), then the oldest queued task (`ReadyQueue.pop_for`).

        Effective priority = `priority` + one level per `priority_aging_s` since the DAG was last served.
        Read afresh for each pick: an assignment changes the DAG's running count and served time."""
        dags = self.dags
        aging = self.config.priority_aging_s
        running = TaskState.RUNNING

        def rank(dag_id: str) -> tuple[int, int]:
            dag = dags.get(dag_id)
            if dag is None:
                return (0, 0)  # stale entries: dispatch skips them whatever their rank
            waited = now - max(dag.waiting_since, dag.submitted_at)
            return (-(dag.spec.priority + int(waited // aging)), dag.counts[running])

        return rank

    def _capacity(self, host: HostRecord, deep: bool) -> int:
        """How many more attempts `host` may hold: its slots, plus a queue per slot (see SchedulerConfig)."""
        mean = host.mean_task_s
        if mean >= self.config.long_task_s:
            prefetch = 0
        elif deep and mean < self.config.short_task_s:
            prefetch = self.config.short_task_prefetch
        else:
            prefetch = self.config.prefetch_per_slot
        srtt = host.rtt.srtt
        if srtt is not None:
            round_trip = host.rtt.rto
            if round_trip >= self.config.rtt_prefetch_above * mean:
                cover = math.ceil(round_trip / max(mean, 1e-3))
                prefetch = max(prefetch, min(self.config.max_rtt_prefetch, cover))
        return host.slots * (1 + prefetch) - len(host.running)

    def silence_limit(self, host: HostRecord) -> float:
        """Seconds `host` may stay silent before it is declared dead (adapted to its round trip)."""
        return silence_limit(self.config.heartbeat_interval, self.config.liveness, host.rtt)

    def _fail_before_start(self, dag: DagRecord, task: TaskRecord, now: float, out: list[Instruction]) -> None:
        """A ready task that cannot be sent anywhere (its inputs are missing or too big) fails for good."""
        self._fail_task(dag, task, now, out)
        self._count_finished(now, ok=False, host=None, key=None)
        self._check_dag_done(dag, now, out)

    @staticmethod
    def _stdin_parts(dag: DagRecord, task: TaskRecord) -> list[bytes]:
        """The stdin inputs' bytes in order; raises _MissingInput for a named output never written."""
        parts: list[bytes] = []
        for item in task.spec.stdin_inputs:
            if item.kind is InputKind.OUTPUT:
                upstream = dag.tasks[item.value]
                if item.output:
                    data = upstream.files.get(item.output) if upstream.files else None
                    if data is None:
                        raise _MissingInput(item)
                    parts.append(data)
                else:
                    parts.append(upstream.output or b"")
            else:
                parts.append(item.data)
        return parts

    @staticmethod
    def _in_files(dag: DagRecord, task: TaskRecord) -> dict[str, bytes]:
        """The task's `/in` directory: each name's bytes (files from the DAG, upstream stdout or named outputs)."""
        out: dict[str, bytes] = {}
        for f in task.spec.files:
            source = f.source
            if source.kind is not InputKind.OUTPUT:
                out[f.path] = source.data
                continue
            upstream = dag.tasks[source.value]
            if not source.output:
                out[f.path] = upstream.output or b""
                continue
            data = upstream.files.get(source.output) if upstream.files else None
            if data is None:
                raise _MissingInput(source)
            out[f.path] = data
        return out

    @staticmethod
    def _missing_text(dag: DagRecord, item: TaskInput) -> str:
        """'input ...: task T wrote no file NAME under /out (it wrote: ...)', one line."""
        written = sorted(dag.tasks[item.value].files or ())
        shown = ", ".join(repr(n) for n in written[:5]) + (f" and {len(written) - 5} more" if len(written) > 5 else "")
        wrote = f"it wrote {shown}" if written else "it wrote no files"
        return f"input {item.text!r}: task {item.value!r} wrote no file {item.output!r} under /out ({wrote})"

    def _assign(
        self,
        dag: DagRecord,
        task: TaskRecord,
        host: HostRecord,
        parts: list[bytes],
        now: float,
        files: Mapping[str, bytes] | None = None,
    ) -> Assign:
        spec = task.spec
        dag.waiting_since = now
        task.attempt += 1
        task.live[task.attempt] = host.id
        if task.state is TaskState.RUNNING:
            dag.touch(task)  # a backup or a replica: the task runs already
        else:
            task.started_at = now
            dag.set_state(task, TaskState.RUNNING)
        task.attempts.append(AttemptRecord(task.attempt, host.id, host.node_id, now, key=host.key))
        self.activity.started(dag.id, spec.id, task.attempt, host.node_id, now)
        key = (dag.id, spec.id)
        self._release(host, key, now)  # an older attempt given up on this host: the new one goes last
        host.running[key] = task.attempt
        ship = spec.module not in host.modules
        host.modules.add(spec.module)
        return Assign(
            host_id=host.id,
            dag_id=dag.id,
            task_id=spec.id,
            attempt=task.attempt,
            module_sha=spec.module,
            ship_module=ship,
            args=spec.args,
            stdin=b"".join(parts),
            input_sizes=tuple(len(p) for p in parts),
            timeout=spec.timeout if spec.timeout is not None else self.config.default_timeout,
            files=files,
            deterministic=spec.verify > 1,
        )

    # ------------------------------------------------------------------ restart

    def restore_dag(
        self,
        dag_id: str,
        spec: DagSpec,
        submitted_at: float,
        state: DagState,
        finished_at: float | None,
        saved: dict[str, TaskRecord],
        now: float,
    ) -> DagRecord:
        """Rebuild a DAG from the journal after a restart.

        Attempts that were running are not requeued at once: their hosts are probably still
        computing and will re-register holding them. They wait ``reclaim_grace`` seconds
        in limbo, then are requeued as lost.
        """
        self._now = now
        dag = self._new_dag_record(dag_id, spec, submitted_at)
        dag.state = state
        dag.finished_at = finished_at
        dag.waiting_since = now
        dag.counts.clear()
        for task_id, record in dag.tasks.items():
            old = saved.get(task_id)
            if old is not None:
                for name in _RESTORED_FIELDS:
                    setattr(record, name, getattr(old, name))
                for attempt in record.attempts:
                    # Only the latest attempt of a running task waits in limbo; backups and replicas that ran
                    # beside it are over (their hosts are told to let go when they declare them).
                    latest = attempt.attempt == record.attempt and record.state is TaskState.RUNNING
                    if attempt.ended_at is None and not latest:
                        attempt.ended_at = now
                        attempt.error = "the controller restarted while it ran"
                if record.state is TaskState.RUNNING and (
                    not record.attempts or record.attempts[-1].ended_at is not None
                ):
                    record.state = TaskState.READY  # its latest attempt had ended: nothing to wait for
            dag.counts[record.state] += 1
        for record in dag.tasks.values():
            record.waiting_on = sum(
                1 for dep in set(record.spec.depends_on) if dag.tasks[dep].state is not TaskState.SUCCEEDED
            )
            if record.state is TaskState.FAILED:
                dag.failures[record.reason.value if record.reason else FailureReason.INTERNAL.value] += 1
        for record in dag.tasks.values():  # queue in file order, which is FIFO enough
            key = (dag_id, record.spec.id)
            if record.state is TaskState.PENDING and record.waiting_on == 0 and dag.state is DagState.RUNNING:
                self._make_ready(dag, record)  # its inputs exist (a journal from an older version)
            elif record.state is TaskState.READY:
                if not (self.cache_keys and self._try_serve(dag, record)):
                    self.ready.push(dag_id, record.spec.id, record.spec.memory or 0)
            elif record.state is TaskState.RUNNING:
                self.limbo[key] = now + self.config.reclaim_grace
            elif record.state is TaskState.RETRYING:
                heapq.heappush(self.delayed, (record.not_before, dag_id, record.spec.id))
        dag.dirty.clear()
        dag.dag_dirty = False
        return dag

    def forget_dag(self, dag_id: str) -> None:
        """Drop a finished DAG from memory (pruning); queued entries for it are skipped later."""
        dag = self.dags.get(dag_id)
        if dag is not None and dag.state is not DagState.RUNNING:
            del self.dags[dag_id]
            self._verify_by_dag.pop(dag_id, None)

    # ------------------------------------------------------------------ queries

    def _most_verify(self, dag: DagRecord) -> int:
        """The largest `verify` among the DAG's tasks (remembered: `status` asks every second)."""
        most = self._verify_by_dag.get(dag.id)
        if most is None:
            most = self._verify_by_dag[dag.id] = max((t.verify for t in dag.spec.tasks), default=1)
        return most

    def tasks_per_second(self, now: float | None = None) -> float:
        """Tasks finished per second lately, as of `now` (default: the latest event's time): the one
        rate figure `status`, the role screens and the monitor all show (see `ActivityRecorder.rate`)."""
        return self.activity.rate(self._now if now is None else now)

    @staticmethod
    def tasks_to_retry(dag: DagRecord) -> list[str]:
        """The tasks a retry would start again: failed, upstream-failed and cancelled ones."""
        again = (TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED)
        return [task_id for task_id, task in dag.tasks.items() if task.state in again]

    def waiting_reasons(self) -> list[str]:
        """Why queued tasks cannot start, in words for `status` (empty when none are stuck)."""
        if not self.ready:
            return []
        if not self.hosts:
            return [f"{len(self.ready)} ready task(s) wait for a host to register"]
        largest = max(h.ram_mb for h in self.hosts.values())
        reasons = [
            f"{count} ready task(s) need {memory} MB; the largest host offers {largest} MB"
            for memory, count in self.ready.waiting_above(largest).items()
        ]
        devices = {self._device_of(h) for h in self.hosts.values()} - set(self.quarantined)
        short: Counter[int] = Counter()
        needs = max((self._most_verify(d) for d in self.dags.values() if d.state is DagState.RUNNING), default=1)
        for dag_id, task_id in set(self.ready) if needs > len(devices) else ():
            dag = self.dags.get(dag_id)
            task = dag.tasks.get(task_id) if dag else None
            if task is not None and task.spec.verify > 1 and not task.state.terminal:
                free = devices - {v.device_id for v in task.votes}
                if len(free) < self._needed_votes(task):
                    short[task.spec.verify] += 1
        for verify, count in sorted(short.items()):
            quarantined = f" and {len(self.quarantined)} quarantined" if self.quarantined else ""
            reasons.append(
                f"{count} task(s) with verify: {verify} wait for distinct devices: {len(devices)} trusted "
                f"device(s) registered{quarantined}"
            )
        return reasons
