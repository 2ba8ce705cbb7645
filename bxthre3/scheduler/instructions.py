"""Instructions: imperatives for the I/O shell to carry out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .model import DagState


@dataclass(frozen=True, slots=True)
class Assign:
    """Send one attempt of a task to a host. ``ship_module``: the host lacks the module bytes."""

    host_id: str
    dag_id: str
    task_id: str
    attempt: int
    module_sha: str
    ship_module: bool
    args: tuple[str, ...]
    stdin: bytes
    input_sizes: tuple[int, ...]
    timeout: float
    files: Mapping[str, bytes] | None = None
    """The task's `/in` directory, resolved: relative path -> bytes."""
    deterministic: bool = False
    """Run with deterministic clocks and random bytes seeded from ``task_id`` (a verified task: replicas
    on different devices must produce the same bytes)."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """Tell the host its result for this attempt is recorded (or stale): it may forget it.

    Sent only after the journal commit that holds the result.
    """

    host_id: str
    dag_id: str
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class AbortAttempt:
    """Tell the host to stop this attempt and send nothing (cancelled, or stale)."""

    host_id: str
    dag_id: str
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class DagFinished:
    """A DAG reached an end state; waiters can be told."""

    dag_id: str
    state: DagState


@dataclass(frozen=True, slots=True)
class ForgetHost:
    """The host is gone (dead or left); the shell drops its connection bookkeeping."""

    host_id: str
    reason: str
    node_id: str = ""


@dataclass(frozen=True, slots=True)
class RefuseHost:
    """Refuse a registration: its node id belongs to a live host that proved another key.

    The claimant is told why (``reason``, one line); the live host is left untouched.
    """

    host_id: str
    node_id: str
    reason: str
    duplicate: str = ""
    """What happened without a remedy (``reason`` adds a generic one): the host adds the flag that fixes
    it on the command that started it."""


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """An attempt is over, however it ended: the shell feeds its duration to the metrics histogram.

    Emitted once per attempt, only when the scheduler records its end (a duplicate or stale result
    is not an end), so counting these counts attempts. ``outcome`` is ``succeeded``, ``cancelled``
    or a failure reason (a closed set: safe as a label); ``engine`` is the host's ("" if unknown).
    """

    dag_id: str
    task_id: str
    attempt: int
    outcome: str
    engine: str
    duration: float


@dataclass(frozen=True, slots=True)
class ServeCached:
    """A ready task's output is in the result cache under ``key``: read it and answer with `CacheServed`
    (or `CacheMissing` if the entry is gone). The task waits READY, outside the ready queue, meanwhile."""

    dag_id: str
    task_id: str
    key: str


@dataclass(frozen=True, slots=True)
class StoreCached:
    """A cacheable task succeeded: keep its output under ``key`` (the shell's cap may evict older entries,
    which it reports with `CacheEvicted`)."""

    key: str
    dag_id: str
    task_id: str
    output: bytes
    files: Mapping[str, bytes] | None


Instruction = (
    Assign | AckResult | AbortAttempt | AttemptEnded | DagFinished | ForgetHost | RefuseHost | ServeCached | StoreCached
)
