"""Events: past-tense facts the I/O shell observed, each stamped with the time it saw them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..common.failures import FailureReason
from ..dag.spec import DagSpec

if TYPE_CHECKING:
    from .core import PreparedDag


@dataclass(frozen=True, slots=True)
class DagSubmitted:
    """A validated DAG was accepted under ``dag_id`` (ids are minted by the shell).

    ``prepared`` (from `core.prepare_dag` on the same spec) is its records built in advance, off
    the controller's loop; without it the scheduler builds them itself."""

    dag_id: str
    spec: DagSpec
    now: float
    prepared: PreparedDag | None = None


@dataclass(frozen=True, slots=True)
class HostJoined:
    """A host registered (or re-registered). ``host_id`` is its connection identity."""

    host_id: str
    node_id: str
    slots: int
    ram_mb: int
    now: float
    platform: str = ""
    engine: str = ""
    modules: frozenset[str] = field(default_factory=frozenset)
    holding: tuple[tuple[str, str, int], ...] = ()
    device: str = ""
    device_ram_mb: int = 0
    device_cpus: int = 0
    device_id: str = ""
    """Attempts the host still runs or finished without an ack: adopted, not run again."""
    key: str = ""
    """The pin of the host's identity key (a digest of its secret): a node id held by a live host
    is taken over only by a registration proving the same key."""


@dataclass(frozen=True, slots=True)
class HostSeen:
    """Any frame arrived from the host: it is alive."""

    host_id: str
    now: float
    rss_mb: int = -1
    """From a heartbeat: the host's memory use in MB (-1: not reported)."""
    paused: str | None = None
    """From a heartbeat: why the host takes no new tasks ("" = it does; None = not reported)."""
    rtt: float | None = None
    """From a heartbeat echo: one measured round trip to the host, in seconds (None: none measured)."""


@dataclass(frozen=True, slots=True)
class HostLeft:
    """The host said goodbye, or was replaced by a newer registration of the same node."""

    host_id: str
    now: float
    reason: str = "left"


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """A host reported the end of an attempt; ``reason`` None means success."""

    host_id: str
    dag_id: str
    task_id: str
    attempt: int
    now: float
    output: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = 0
    reason: FailureReason | None = None
    error: str = ""
    duration: float = 0.0
    files: Mapping[str, bytes] | None = None
    """Named outputs (the task's `/out` files), already checked by the shell; success only."""


@dataclass(frozen=True, slots=True)
class DagCancelled:
    """A user asked to cancel the DAG."""

    dag_id: str
    now: float


@dataclass(frozen=True, slots=True)
class DagRetried:
    """A user asked to run the DAG's failed, cancelled and upstream-failed tasks again."""

    dag_id: str
    now: float


@dataclass(frozen=True, slots=True)
class DeviceTrusted:
    """A user vouched for a quarantined device (`bxthre3 hosts trust DEVICE`): its hosts get tasks again."""

    device_id: str
    now: float


@dataclass(frozen=True, slots=True)
class CacheLoaded:
    """These keys are in the shell's result cache (at start, read from the store): READY tasks with one are served."""

    keys: frozenset[str]
    now: float


@dataclass(frozen=True, slots=True)
class CacheServed:
    """The shell read the cache entry a `ServeCached` asked for: the task's output, as a run that succeeded."""

    dag_id: str
    task_id: str
    key: str
    now: float
    output: bytes = b""
    files: Mapping[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class CacheMissing:
    """The entry a `ServeCached` asked for is gone (evicted, cleared, unreadable): the task runs after all."""

    dag_id: str
    task_id: str
    key: str
    now: float


@dataclass(frozen=True, slots=True)
class CacheEvicted:
    """The shell dropped these entries from the cache (its size cap, or `bxthre3 cache clear`)."""

    keys: frozenset[str]
    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; the scheduler checks host liveness."""

    now: float
    heard_until: float | None = None
    """Every frame that reached the controller before this time has been handled (None: `now`). Silence is
    counted up to here: a controller behind on its inbound queue (a registration storm, a starved CPU) holds
    the very heartbeats that would show its hosts alive, and declaring them dead for it made a storm worse
    (each dead host registers again)."""


Event = (
    DagSubmitted
    | DagCancelled
    | DagRetried
    | DeviceTrusted
    | HostJoined
    | HostSeen
    | HostLeft
    | TaskFinished
    | Tick
    | CacheLoaded
    | CacheServed
    | CacheMissing
    | CacheEvicted
)
