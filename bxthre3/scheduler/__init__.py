"""The scheduler: a pure state machine. Events in, instructions out; no sockets, no clocks.

The controller's I/O loop turns frames and timers into events (each carrying ``now``) and
carries out the instructions that come back. Keeping policy here makes it testable as
"these events give exactly these instructions".
"""

from .core import Scheduler, SchedulerConfig
from .events import (
    CacheEvicted,
    CacheLoaded,
    CacheMissing,
    CacheServed,
    DagCancelled,
    DagRetried,
    DagSubmitted,
    DeviceTrusted,
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
from .invariants import InvariantError
from .model import DagRecord, DagState, HostRecord, QuarantineRecord, TaskRecord, TaskState

__all__ = [
    "CacheEvicted",
    "CacheLoaded",
    "CacheMissing",
    "CacheServed",
    "ServeCached",
    "StoreCached",
    "AbortAttempt",
    "AckResult",
    "Assign",
    "AttemptEnded",
    "DagCancelled",
    "DagFinished",
    "DagRecord",
    "DagRetried",
    "DagState",
    "DagSubmitted",
    "ForgetHost",
    "HostJoined",
    "HostLeft",
    "HostRecord",
    "HostSeen",
    "Instruction",
    "InvariantError",
    "RefuseHost",
    "Scheduler",
    "SchedulerConfig",
    "TaskFinished",
    "TaskRecord",
    "TaskState",
    "Tick",
    "DeviceTrusted",
    "QuarantineRecord",
]
