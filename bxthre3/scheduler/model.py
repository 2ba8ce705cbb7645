"""States and the records the scheduler keeps per DAG, task and host."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from ..common.failures import FailureReason
from ..dag.spec import DagSpec, TaskSpec
from ..wire.liveness import RttEstimate


class TaskState(str, Enum):
    PENDING = "pending"
    """Waiting for upstream tasks."""
    READY = "ready"
    """Inputs exist; queued for a host."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Failed for good: retries exhausted or a deterministic failure."""
    UPSTREAM_FAILED = "upstream_failed"
    """Will never run: a task it depends on failed."""
    RETRYING = "retrying"
    """Failed an attempt; waits out its backoff before it is ready again."""
    CANCELLED = "cancelled"
    """Its DAG was cancelled before it finished."""

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK_STATES


_TERMINAL_TASK_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED}
)


class DagState(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class AttemptRecord:
    """One try of a task on one host: the story `results` tells when a task was retried."""

    attempt: int
    host_id: str
    node_id: str
    started_at: float
    ended_at: float | None = None
    reason: FailureReason | None = None
    error: str = ""
    key: str = ""
    """The key pin of the host it was given to; only a host proving that key may adopt it. Not
    journalled: after a controller restart it is "" and the first registration of the node claims it."""


@dataclass(slots=True)
class TaskRecord:
    spec: TaskSpec
    waiting_on: int
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    """Number of the latest attempt issued; results for older attempts are stale."""
    failures: int = 0
    """The task's own failures, counted against its retries."""
    host_losses: int = 0
    """Attempts lost with their host; counted separately so a flaky device does not use up retries."""
    live: dict[int, str] = field(default_factory=dict)
    """Attempt number -> id of the host running it, for every attempt running now: one, or more while a
    speculative backup or `verify` replicas run. Empty when the task is not running (or is in limbo)."""
    votes: list[Vote] = field(default_factory=list)
    """`verify: N`: the outcomes replicas on distinct devices reported so far in this round (not journalled:
    after a restart the vote starts again)."""
    output: bytes | None = None
    files: Mapping[str, bytes] | None = None
    """Named outputs once it succeeded: what it left under `/out`, by relative path (None: none)."""
    stderr: bytes = b""
    exit_code: int | None = None
    reason: FailureReason | None = None
    error: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    duration: float = 0.0
    not_before: float = 0.0
    """While RETRYING: when the backoff ends."""
    cached: bool = False
    """It succeeded with an output reused from the result cache (no attempt ran it): `results` says `cached`."""
    recorded: int = 0
    """How many times an end result was recorded: exactly-once means this never exceeds 1."""
    attempts: list[AttemptRecord] = field(default_factory=list)

    @property
    def host_id(self) -> str | None:
        """The host running its latest attempt (None when that attempt is not running)."""
        return self.live.get(self.attempt)

    def voted(self, device_id: str) -> bool:
        """Has `device_id` cast a vote on this verified task in the current round?"""
        return any(v.device_id == device_id for v in self.votes)

    def attempt_record(self, attempt: int) -> AttemptRecord | None:
        """The record of attempt number `attempt` (live ones are at the end: searched from there)."""
        for record in reversed(self.attempts):
            if record.attempt == attempt:
                return record
            if record.attempt < attempt:
                return None
        return None


@dataclass(slots=True)
class Vote:
    """One replica's outcome of a verified task: what its device says the task produced."""

    device_id: str
    device: str
    digest: bytes
    """sha256 over the failure reason, exit code, stdout and every `/out` file (name and bytes)."""
    attempt: int
    host_id: str
    reason: FailureReason | None
    error: str
    output: bytes
    files: Mapping[str, bytes] | None
    stderr: bytes
    exit_code: int | None
    duration: float


@dataclass(slots=True)
class DagRecord:
    id: str
    spec: DagSpec
    tasks: dict[str, TaskRecord]
    dependents: dict[str, list[str]]
    submitted_at: float
    state: DagState = DagState.RUNNING
    finished_at: float | None = None
    counts: Counter[TaskState] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    """Tasks failed for good, by failure reason (kept as they happen: status must stay cheap)."""
    dirty: set[str] = field(default_factory=set)
    """Tasks changed since the journal last wrote them; the store empties it."""
    waiting_since: float = 0.0
    """Aging counts from here: when the DAG was last given a slot, or when its first ready task since it held
    none was queued (submission, restore). Not journalled: a restore sets it to the restart's time."""
    dag_dirty: bool = True
    """The DAG row itself (state, finish time) changed since the journal last wrote it."""

    def touch(self, task: TaskRecord) -> None:
        self.dirty.add(task.spec.id)

    def set_state(self, task: TaskRecord, state: TaskState) -> None:
        """Every task state change goes through here so the per-state counts stay exact."""
        self.counts[task.state] -= 1
        self.counts[state] += 1
        task.state = state
        self.dirty.add(task.spec.id)

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in _TERMINAL_TASK_STATES)


@dataclass(slots=True)
class HostRecord:
    id: str
    node_id: str
    slots: int
    ram_mb: int
    joined_at: float
    last_seen: float
    platform: str = ""
    engine: str = ""
    device: str = ""
    device_id: str = ""
    """The device's random id: hosts of one device share it, hosts of two same-named devices do not."""
    device_ram_mb: int = 0
    device_cpus: int = 0
    modules: set[str] = field(default_factory=set)
    running: dict[tuple[str, str], int] = field(default_factory=dict)
    """(dag id, task id) -> attempt, for every attempt assigned to this host and not yet reported."""
    succeeded: int = 0
    failed: int = 0
    rss_mb: int = -1
    """Memory the host process and its executors use, from its last heartbeat (-1: unknown)."""
    paused: str = ""
    """Why the host takes no new tasks (its device's battery or temperature); empty: it does."""
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    """The last tasks this host finished, as "dag/task", for `status`."""
    mean_task_s: float = 1.0
    """Moving average of how long its tasks ran (starts long: no deep prefetch before it is known)."""
    head: tuple[str, str] | None = None
    """The oldest attempt in `running` still being timed by the overdue backstop (None: not chosen yet)."""
    head_since: float = 0.0
    """When the attempt before `head` ended: `head` can have waited behind it until then."""
    key: str = ""
    """The pin of its identity key (see `HostJoined.key`)."""
    rtt: RttEstimate = field(default_factory=RttEstimate)
    """Its measured round trip (heartbeat echoes): sets its silence limit and how deep its queue is."""
    speed: float = 1.0
    """How fast it runs tasks relative to the cluster's reference (2.0: twice as fast), learned from the
    tasks it finished (see `Scheduler._learn_speed`); 1.0 until it finished one."""
    speed_samples: int = 0
    """How many finished tasks `speed` is learned from (0: a guess)."""
    order: int = 0
    """Its place in `Scheduler.hosts` (insertion order): dispatch, which looks only at hosts that may have
    room, sorts them by it to pick among equals exactly as a walk over every host would."""

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.running)


@dataclass(slots=True)
class QuarantineRecord:
    """A device whose verified outputs disagreed with the majority too often: its hosts get no tasks.

    Kept by device id (every host of that device is out) until `bxthre3 hosts trust DEVICE`."""

    device_id: str
    device: str
    """The device's name when it was quarantined (for `status`; the id is what identifies it)."""
    since: float
    mismatches: int
    """Verified tasks on which its output lost the vote."""
    reason: str
    """One line: which task's vote it lost last, e.g. "output of dag-3/tile-7 disagreed with 2 devices"."""
