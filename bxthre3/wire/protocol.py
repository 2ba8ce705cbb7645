"""Every message kind of the wire protocol, one frozen dataclass each (spec: docs/protocol.md).

Decoding is the trust boundary: frames come from anyone who can reach the port, so
:func:`decode` checks the version, the kind and the type of every field, and turns any
problem into :class:`~bxthre3.common.errors.ProtocolError`. Loops catch that one error, count
the frame as dropped and carry on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from ..common.errors import ProtocolError
from ..common.limits import MAX_FRAME_BYTES, MAX_SMALL_FRAME_BYTES, MAX_WIRE_CONTAINERS

PROTOCOL_VERSION = 2
"""2 added `batch`; a peer of another version is refused (with a `reject` saying which)."""

MAX_BATCH_BYTES = 256 * 1024
"""Senders put messages into one `batch` frame up to about this many bytes; larger ones go alone."""


INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""Every integer on the wire fits a signed 64-bit integer: SQLite's INTEGER, so no wire value can make
the journal raise (msgpack alone carries unsigned integers up to 2**64 - 1)."""

EXIT_CODE_MIN = -(2**31)
EXIT_CODE_MAX = 2**32 - 1
"""A WASI exit code is a 32-bit value (`proc_exit(i32)`), reported signed or unsigned."""


def _is_int(v: object) -> bool:
    # `type(v) is int` also refuses bool (a subclass of int) and is the cheapest check there is.
    return type(v) is int and INT64_MIN <= v <= INT64_MAX  # type: ignore[operator]


def _is_float(v: object) -> bool:
    """A finite number: NaN and infinities would poison arithmetic (a NaN deadline never passes)."""
    t = type(v)
    if t is float:
        return math.isfinite(v)  # type: ignore[arg-type]
    return t is int and INT64_MIN <= v <= INT64_MAX  # type: ignore[operator]


def _is_exit_code(v: object) -> bool:
    return v is None or (type(v) is int and EXIT_CODE_MIN <= v <= EXIT_CODE_MAX)  # type: ignore[operator]


def _list_of(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": _is_int,
    "float": _is_float,
    "bool": lambda v: isinstance(v, bool),
    "bytes": lambda v: isinstance(v, bytes),
    "list[str]": _list_of(lambda v: isinstance(v, str)),
    "list[int]": _list_of(_is_int),
    "list[bytes]": _list_of(lambda v: isinstance(v, bytes)),
    "dict[str, Any]": lambda v: isinstance(v, dict),
    "dict[str, bytes]": lambda v: (
        isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, bytes) for k, x in v.items())
    ),
    "int | None": _optional(_is_int),
    "str | None": _optional(lambda v: isinstance(v, str)),
    "list[AttemptRef]": _list_of(
        lambda v: (
            isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and isinstance(v[1], str) and _is_int(v[2])
        )
    ),
}

_FIELD_CHECKS: dict[tuple[str, str], Callable[[object], bool]] = {
    ("result", "exit_code"): _is_exit_code,
}
"""Fields whose meaningful range is narrower than their type's (kind, field) -> check."""

AttemptRef = list
"""[dag_id, task_id, attempt] on the wire: one attempt a host holds (running or finished, unacknowledged)."""


@dataclass(frozen=True, slots=True)
class Message:
    """Base of all kinds. Subclasses set ``KIND`` and list their fields in wire order."""

    KIND: ClassVar[str] = ""

    def to_wire(self) -> list[Any]:
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        return [PROTOCOL_VERSION, self.KIND, *[getattr(self, name) for name in names]]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Each kind's field names in wire order (dataclasses.fields is slow enough to show at 10k messages/s)."""


def _field_specs(cls: type[Message]) -> list[tuple[str, Callable[[object], bool], bool, Any]]:
    """(name, type check, required, default) per field, computed once per kind."""
    specs = []
    for f in dataclasses.fields(cls):
        check = _FIELD_CHECKS.get((cls.KIND, f.name)) or _TYPE_CHECKS[str(f.type)]
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory
        specs.append((f.name, check, not has_default, default))
    return specs


# ---------------------------------------------------------------- host -> controller


@dataclass(frozen=True, slots=True)
class Register(Message):
    KIND: ClassVar[str] = "register"
    node_id: str
    slots: int
    ram_mb: int
    platform: str
    engine: str
    modules: list[str] = field(default_factory=list)
    pid: int = 0
    software: str = ""
    holding: list[AttemptRef] = field(default_factory=list)
    device: str = ""
    """The device the host runs on (its node manager's name), so views can group hosts by device."""
    device_ram_mb: int = 0
    device_cpus: int = 0
    key: bytes = b""
    """The host's identity key (random, kept per node id on its device): the controller pins the node id
    to it while the host lives, so no other member can register under that node id (required)."""
    device_id: str = ""
    """The random id of the device (`device_identity`): devices are counted by it, since hostnames repeat."""


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    KIND: ClassVar[str] = "heartbeat"
    rss_mb: int = -1
    """Host to controller: memory the host and its executors use now, in MB (-1: unknown)."""
    paused: str = ""
    """Host to controller: why it takes no new tasks now (a phone on low battery, too hot); empty: it does."""
    stamp: float = 0.0
    """Controller to host: the controller's clock when it sent this (0: none); the host echoes it back."""
    echo: float = 0.0
    """Host to controller: the last `stamp` it received (0: none), so the controller measures the round trip."""
    held: float = 0.0
    """Host to controller: seconds the host held `echo` before sending it (subtracted from the round trip)."""
    silence_s: float = 0.0
    """Controller to host: how long the controller waits for a word from this host before declaring it dead
    (adapted to the measured round trip, see `liveness.py`); the host waits as long before reconnecting."""
    rto_s: float = 0.0
    """Controller to host: its retransmission timeout for the path to this host (0: not measured yet); the host
    gives a TCP connect to the controller that long before trying again (see `liveness.connect_timeout`)."""


@dataclass(frozen=True, slots=True)
class Result(Message):
    KIND: ClassVar[str] = "result"
    dag_id: str
    task_id: str
    attempt: int
    exit_code: int | None
    output: bytes
    stderr: bytes
    reason: str | None
    error: str
    duration: float
    files: dict[str, bytes] = field(default_factory=dict)
    """Named outputs: every regular file the task left under `/out`, by relative path (success only)."""


@dataclass(frozen=True, slots=True)
class Bye(Message):
    KIND: ClassVar[str] = "bye"
    reason: str = ""


# ---------------------------------------------------------------- controller -> host


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    KIND: ClassVar[str] = "welcome"
    node_id: str
    heartbeat_interval: float
    liveness: int


@dataclass(frozen=True, slots=True)
class Reject(Message):
    KIND: ClassVar[str] = "reject"
    reason: str
    duplicate: str = ""
    """Non-empty when the node id is taken: what happened, without a remedy, so the host can name the
    flag that fixes it on the command that started it (`reason` says it generically, for older hosts)."""


@dataclass(frozen=True, slots=True)
class Reregister(Message):
    """The controller does not know this connection (it restarted, or dropped the host): register again."""

    KIND: ClassVar[str] = "reregister"


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """The result of this attempt is committed; the host may forget it."""

    KIND: ClassVar[str] = "ack"
    dag_id: str
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Abort(Message):
    """Stop this attempt (its DAG was cancelled, or it was reassigned); send no result."""

    KIND: ClassVar[str] = "abort"
    dag_id: str
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Assign(Message):
    KIND: ClassVar[str] = "assign"
    dag_id: str
    task_id: str
    attempt: int
    module_sha: str
    module: bytes
    args: list[str]
    stdin: bytes
    input_sizes: list[int]
    timeout: float
    files: dict[str, bytes] = field(default_factory=dict)
    """The task's read-only `/in` directory: relative path -> contents (resolved by the controller)."""
    deterministic: bool = False
    """Run with logical clocks and random bytes seeded from the task id (a task with `verify:` >= 2, whose
    replicas on other devices must produce the same bytes). A host older than this field ignores it."""


# ---------------------------------------------------------------- client <-> controller


@dataclass(frozen=True, slots=True)
class Submit(Message):
    KIND: ClassVar[str] = "submit"
    req_id: int
    dag: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusRequest(Message):
    KIND: ClassVar[str] = "status"
    req_id: int


@dataclass(frozen=True, slots=True)
class ProgressRequest(Message):
    KIND: ClassVar[str] = "progress"
    req_id: int
    dag_id: str


@dataclass(frozen=True, slots=True)
class ResultsRequest(Message):
    KIND: ClassVar[str] = "results"
    req_id: int
    dag_id: str
    with_output: bool = True
    """False leaves out every task's output and stderr (a cheap task table)."""
    task_id: str = ""
    """Non-empty: only this task (unknown: the reply is not ok, "no task ...")."""
    limit: int = 0
    """Positive: at most this many tasks, the ones a UI shows first (see `views.pick_tasks`)."""
    with_files: bool = False
    """True adds the contents of every named output (`data`); otherwise they are listed by name,
    size and sha256 only. `run --out` asks per task, so one reply holds at most one task's files."""


@dataclass(frozen=True, slots=True)
class CancelRequest(Message):
    KIND: ClassVar[str] = "cancel"
    req_id: int
    dag_id: str


@dataclass(frozen=True, slots=True)
class RetryRequest(Message):
    """Run the DAG's failed, upstream-failed and cancelled tasks again (successes are kept)."""

    KIND: ClassVar[str] = "retry"
    req_id: int
    dag_id: str


@dataclass(frozen=True, slots=True)
class TrustRequest(Message):
    """Lift a device's quarantine (`bxthre3 hosts trust DEVICE`): its hosts get tasks again.

    ``device`` is what the user typed: a quarantined device's id, a unique prefix of it (4 characters
    or more), or its name when no other quarantined device has it; the controller resolves it."""

    KIND: ClassVar[str] = "trust"
    req_id: int
    device: str


@dataclass(frozen=True, slots=True)
class CacheRequest(Message):
    """The controller's result cache: ``action`` "stats" (entries, bytes, cap, hits and misses since start)
    or "clear" (drop every entry; `bxthre3 cache clear`)."""

    KIND: ClassVar[str] = "cache"
    req_id: int
    action: str


@dataclass(frozen=True, slots=True)
class ActivityRequest(Message):
    """Where the cluster's time went over the last ``window_s`` seconds: finishes per second, each host's
    busy fraction per second and its latest attempts (the monitor's task stream), and `tasks_per_s`."""

    KIND: ClassVar[str] = "activity"
    req_id: int
    window_s: float = 120.0


@dataclass(frozen=True, slots=True)
class StructureRequest(Message):
    """A DAG's tasks gathered into groups by stage, with counts per state (the monitor's DAG view)."""

    KIND: ClassVar[str] = "structure"
    req_id: int
    dag_id: str


@dataclass(frozen=True, slots=True)
class WatchRequest(Message):
    """Subscribe to pushed cluster updates for ``lease`` seconds (renew by sending it again)."""

    KIND: ClassVar[str] = "watch"
    req_id: int
    lease: float = 10.0


@dataclass(frozen=True, slots=True)
class Update(Message):
    """A pushed status snapshot (the `status` shape); at most one per tick, only when something changed."""

    KIND: ClassVar[str] = "update"
    seq: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply(Message):
    KIND: ClassVar[str] = "reply"
    req_id: int
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""


# ---------------------------------------------------------------- either way


@dataclass(frozen=True, slots=True)
class Batch(Message):
    """Several encoded messages for one peer in one frame, to be handled in order.

    At a few thousand tasks a second, the cost of a message is mostly the frame: a
    send, a poll wake-up, a receive and a CURVE box each. Hosts send their results of
    one loop turn together; the controller sends a host its acks and assignments of one
    commit together. A batch never holds a batch.
    """

    KIND: ClassVar[str] = "batch"
    frames: list[bytes]


_KINDS: dict[str, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Register,
        Heartbeat,
        Result,
        Bye,
        Welcome,
        Reject,
        Reregister,
        Assign,
        Ack,
        Abort,
        Batch,
        Submit,
        StatusRequest,
        ProgressRequest,
        ResultsRequest,
        CancelRequest,
        RetryRequest,
        TrustRequest,
        CacheRequest,
        ActivityRequest,
        StructureRequest,
        WatchRequest,
        Update,
        Reply,
    )
}
_SPECS = {kind: _field_specs(cls) for kind, cls in _KINDS.items()}

_BULK_KINDS = frozenset({"register", "result", "assign", "submit", "reply", "update", "batch"})
"""Kinds that carry data (outputs, modules, DAGs, results, status); every other kind is a small command."""


# ---------------------------------------------------------------- codec


def encode(message: Message) -> bytes:
    return msgpack.packb(message.to_wire(), use_bin_type=True)


def batched(frames: list[bytes]) -> list[bytes]:
    """`frames` (encoded messages for one peer, in order) as few frames as possible.

    Consecutive frames are packed into `batch` frames of about MAX_BATCH_BYTES at most;
    a frame as big as that on its own is sent as it is.
    """
    if len(frames) < 2:
        return frames
    out: list[bytes] = []
    group: list[bytes] = []
    size = 0

    def close_group() -> None:
        if len(group) == 1:
            out.append(group[0])
        elif group:
            out.append(encode(Batch(list(group))))
        group.clear()

    for frame in frames:
        if size + len(frame) > MAX_BATCH_BYTES and group:
            close_group()
            size = 0
        group.append(frame)
        size += len(frame)
    close_group()
    return out


def unbatch(message: Message) -> list[Message | ProtocolError]:
    """The messages a received message stands for: itself, or a batch's, each decoded or its error."""
    if type(message) is not Batch:
        return [message]
    out: list[Message | ProtocolError] = []
    for frame in message.frames:
        try:
            inner = decode(frame)
        except ProtocolError as exc:
            out.append(exc)
            continue
        out.append(ProtocolError("a batch inside a batch") if type(inner) is Batch else inner)
    return out


def decode(frame: bytes) -> Message:
    """Bytes off the wire to a message; every problem is a ProtocolError saying which."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    if len(frame) > MAX_SMALL_FRAME_BYTES:
        _, peeked = peek_kind(frame)
        if not isinstance(peeked, str) or peeked not in _BULK_KINDS:
            shown = _short(peeked)
            raise ProtocolError(f"a {shown} frame of {len(frame):,} bytes: only {', '.join(sorted(_BULK_KINDS))} "
                                f"frames may exceed {MAX_SMALL_FRAME_BYTES:,} bytes")  # fmt: skip
    containers = 0

    def count(value: Any) -> Any:
        # Empty arrays cost 1 byte on the wire and ~60 in Python: cap how many a frame may build.
        nonlocal containers
        containers += 1
        if containers > MAX_WIRE_CONTAINERS:
            raise ValueError(f"more than {MAX_WIRE_CONTAINERS:,} arrays and maps")
        return value

    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=True, list_hook=count, object_hook=count)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        detail = f" ({exc})" if containers > MAX_WIRE_CONTAINERS else ""
        raise ProtocolError(f"not msgpack: {type(exc).__name__}{detail}") from exc
    if not isinstance(obj, list) or len(obj) < 2:
        raise ProtocolError("not a [version, kind, ...] array")
    version, kind = obj[0], obj[1]
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {_short(version)} (this side speaks {PROTOCOL_VERSION})",
        )
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ProtocolError(f"unknown message kind {_short(kind)}")
    values = obj[2:]
    kwargs: dict[str, Any] = {}
    for i, (name, check, required, default) in enumerate(_SPECS[kind]):
        if i < len(values):
            value = values[i]
            if not check(value):
                _refuse_field(kind, values, f"{kind}: field '{name}' {_what_is_wrong(kind, name, value)}")
            kwargs[name] = value
        elif required:
            _refuse_field(kind, values, f"{kind}: missing field '{name}'")
        elif callable(default):
            kwargs[name] = default()
        else:
            kwargs[name] = default
    return _KINDS[kind](**kwargs)


class PoisonResult(ProtocolError):
    """A `result` that names its attempt but carries an impossible value (an exit code of 2**63, a NaN).

    Dropping it would not be enough: the host keeps every result until it is acknowledged and resends
    it after each registration, forever. So the controller acknowledges it and records the attempt
    as failed (`internal`, saying what was wrong), which ends the story whatever the host does.
    """

    def __init__(self, why: str, dag_id: str, task_id: str, attempt: int) -> None:
        super().__init__(why)
        self.dag_id = dag_id
        self.task_id = task_id
        self.attempt = attempt


def _refuse_field(kind: str, values: list[Any], why: str) -> None:
    """Raise the error for a bad field: a PoisonResult when the frame is a result naming a valid attempt."""
    if kind == Result.KIND and len(values) >= 3:
        dag_id, task_id, attempt = values[0], values[1], values[2]
        if type(dag_id) is str and type(task_id) is str and _is_int(attempt):
            raise PoisonResult(why, dag_id, task_id, attempt)
    raise ProtocolError(why)


def _what_is_wrong(kind: str, name: str, value: object) -> str:
    """'is out of range (...)' for a number where a number belongs, else 'has the wrong type (...)'."""
    declared = next(str(f.type) for f in dataclasses.fields(_KINDS[kind]) if f.name == name)
    if declared in ("int", "float", "int | None") and (type(value) is int or type(value) is float):
        return f"is out of range ({_short(value)})"
    return f"has the wrong type ({type(value).__name__})"


def peek_kind(frame: bytes) -> tuple[object, object]:
    """(version, kind) from the first bytes of a frame, without decoding the rest (cheap on any input)."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=4096)
    try:
        unpacker.feed(frame[:256])
        if unpacker.read_array_header() < 2:
            return None, None
        return unpacker.unpack(), unpacker.unpack()
    except Exception:
        return None, None


def _short(value: object) -> str:
    """A hostile value in an error message: its repr, cut (a 20 MB "kind" must not become a 20 MB log line)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}… ({len(text):,} characters)"
