"""The validated shape of a DAG: tasks, their inputs, their modules. Pure: no I/O.

Two doors lead in. The YAML loader (`dag.yaml_loader`) builds a :class:`DagSpec` from a
file the user wrote; :meth:`DagSpec.from_wire` rebuilds one from a msgpack'd dict that
arrived over the network and so may be hostile. Both end in :func:`validate_graph`,
so the controller never holds a DAG the client would have refused, and the graph
rules live in one place.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from bxthre3.common.digests import sha256_hex
from bxthre3.common.errors import DagError, ModuleError
from bxthre3.common.limits import (
    MAX_DAG_BYTES,
    MAX_ID_LENGTH,
    MAX_INPUTS_PER_TASK,
    MAX_MODULE_BYTES,
    MAX_NAME_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_OUTPUT_FILES,
    MAX_PATH_BYTES,
    MAX_TASK_MEMORY_MB,
    MAX_TASKS_PER_DAG,
    MAX_TIMEOUT_S,
)
from bxthre3.wasm.inspect import check_wasi_command

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""A task id: safe in file names, log lines and `output_of_<id>` references."""

OUTPUT_PREFIX = "output_of_"
"""An input `output_of_<id>` is the stdout of upstream task `<id>`; `output_of_<id>/<name>` is the
file that task wrote as `/out/<name>` (a task id holds no '/', so the first '/' splits the two)."""

FILE_PREFIX = "file:"
"""An input `file:<path>` is that file's content, read when the DAG is loaded."""

MAX_RETRIES = 100
"""Most retries one task may ask for; more is a typo or an attempt to pin the cluster."""

MAX_NAME_CHARS = 4096
"""Longest module name or file-input path carried for messages."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class InputKind(str, Enum):
    """Where one task input comes from. Values are stable: they go on the wire."""

    LITERAL = "literal"
    """A string passed in argv."""
    OUTPUT = "output"
    """The stdout of an upstream task, passed on stdin."""
    FILE = "file"
    """A file's content, read at load time and passed on stdin."""


@dataclass(frozen=True, slots=True)
class TaskInput:
    """One input. LITERAL: `value` is the text; OUTPUT: the upstream task id, and `output` the
    name of one of its files under `/out` ("" = its stdout); FILE: the path as written, with
    the content in `data` (read at load time so the cluster needs no shared file system)."""

    kind: InputKind
    value: str
    data: bytes = b""
    output: str = ""

    @property
    def text(self) -> str:
        """The input as a DAG file writes it, for messages."""
        if self.kind is InputKind.OUTPUT:
            return OUTPUT_PREFIX + self.value + (f"/{self.output}" if self.output else "")
        if self.kind is InputKind.FILE:
            return FILE_PREFIX + self.value
        return self.value


@dataclass(frozen=True, slots=True)
class TaskFile:
    """One file of a task's read-only `/in` directory: `/in/<path>` holds the bytes of `source`
    (a FILE input, or an OUTPUT input: an upstream task's stdout or one of its named outputs)."""

    path: str
    source: TaskInput


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task: which module to run (by content hash) on which inputs."""

    id: str
    module: str
    """sha256 hex of the module's bytes: the key into :attr:`DagSpec.modules`."""
    module_name: str
    """The module as written in the DAG, for messages only."""
    inputs: tuple[TaskInput, ...] = ()
    depends_on: tuple[str, ...] = ()
    timeout: float | None = None
    """Seconds per attempt; None means the cluster default."""
    retries: int | None = None
    """Extra attempts after a failure; None means the cluster default."""
    memory: int | None = None
    """MB of RAM the task needs; it runs only on a host whose --ram-limit is at least this."""
    files: tuple[TaskFile, ...] = ()
    """Its `/in` directory, in the order written (most tasks have none: they cost nothing then)."""

    @property
    def args(self) -> tuple[str, ...]:
        """The literal inputs in order: they become argv[1:]."""
        return tuple(i.value for i in self.inputs if i.kind is InputKind.LITERAL)

    @property
    def stdin_inputs(self) -> tuple[TaskInput, ...]:
        """The upstream outputs and files in order: concatenated, they are stdin."""
        return tuple(i for i in self.inputs if i.kind is not InputKind.LITERAL)

    @property
    def sources(self) -> tuple[TaskInput, ...]:
        """Every input, then every `/in` file's source: what the graph checks look at. Validation
        walks this for every task of a DAG (100,000 of them): without files it is `inputs` itself."""
        if not self.files:
            return self.inputs
        return self.inputs + tuple(f.source for f in self.files)

    def field_of(self, item: TaskInput) -> str:
        """'inputs' or 'files': where `item` (one of `sources`) is written, for error messages."""
        return "inputs" if any(i is item for i in self.inputs) else "files"


@dataclass(frozen=True, slots=True)
class DagSpec:
    """A whole DAG with the bytes of every module it runs, ready to ship to a controller."""

    name: str
    tasks: tuple[TaskSpec, ...]
    modules: Mapping[str, bytes]
    """sha256 hex -> module bytes; read-only after construction."""
    source: str = "<submission>"
    """Where the DAG came from (a file path or a peer), used in every error message."""
    description: str = ""

    def __post_init__(self) -> None:
        # Frozen means frozen: callers cannot mutate the lists or dict they passed in.
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "modules", MappingProxyType(dict(self.modules)))

    def task(self, task_id: str) -> TaskSpec:
        """The task called `task_id` (KeyError when there is none)."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-friendly dict (only dict/list/str/int/float/bytes/None)."""
        wire: dict[str, Any] = {
            "name": self.name,
            "tasks": [_task_to_wire(t) for t in self.tasks],
            "modules": dict(self.modules),
        }
        if self.description:
            wire["description"] = self.description
        return wire

    @classmethod
    def from_wire(cls, obj: object, *, source: str = "<submission>") -> DagSpec:
        """Rebuild and fully validate a DAG that came from the network.

        The input is hostile: every type, size and cross-reference is checked and any
        problem is a DagError naming the task and field; nothing else escapes.
        """
        return _WireReader(source).read(obj)


def _input_to_wire(item: TaskInput) -> dict[str, Any]:
    if item.kind is InputKind.FILE:
        return {"kind": item.kind.value, "value": item.value, "data": item.data}
    if item.output:
        return {"kind": item.kind.value, "value": item.value, "output": item.output}
    return {"kind": item.kind.value, "value": item.value}


def _task_to_wire(task: TaskSpec) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "id": task.id,
        "module": task.module,
        "module_name": task.module_name,
        "inputs": [
            {"kind": i.kind.value, "value": i.value}
            if i.kind is not InputKind.FILE and not i.output
            else _input_to_wire(i)
            for i in task.inputs
        ],
        "depends_on": list(task.depends_on),
    }
    if task.files:  # absent when empty: DAGs without files read as they always did
        wire["files"] = [{"path": f.path, **_input_to_wire(f.source)} for f in task.files]
    if task.timeout is not None:
        wire["timeout"] = task.timeout
    if task.retries is not None:
        wire["retries"] = task.retries
    if task.memory is not None:
        wire["memory"] = task.memory
    return wire


def parse_input(text: str) -> TaskInput:
    """Classify one input as written in a DAG file (FILE inputs still need their data).

    `output_of_T/NAME` is T's named output NAME; the caller checks NAME with `path_problem`."""
    if text.startswith(OUTPUT_PREFIX):
        task_id, _, name = text[len(OUTPUT_PREFIX) :].partition("/")
        return TaskInput(InputKind.OUTPUT, task_id, output=name)
    if text.startswith(FILE_PREFIX):
        return TaskInput(InputKind.FILE, text[len(FILE_PREFIX) :])
    return TaskInput(InputKind.LITERAL, text)


def id_problem(value: str) -> str | None:
    """Why `value` is not a valid task id, or None when it is."""
    if not value:
        return "a task id must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"task id is {len(value)} characters, over the limit of {MAX_ID_LENGTH}"
    if not ID_PATTERN.fullmatch(value):
        return f"invalid task id {_show(value)}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
    return None


# A task's `timeout`, `retries` and `memory` are checked twice: by the YAML loader (which names the line)
# and by the wire form (the controller trusts no client). Both ask these, so the two cannot disagree;
# each adds the value as it was written.


def timeout_problem(seconds: float) -> str | None:
    """What is wrong with `seconds` as a task's timeout, or None (NaN and infinity are wrong)."""
    if math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_S:
        return None
    return f"must be seconds > 0 and <= {MAX_TIMEOUT_S:g}"


def retries_problem(retries: object) -> str | None:
    """What is wrong with `retries` as a task's retry budget, or None."""
    if isinstance(retries, int) and not isinstance(retries, bool) and 0 <= retries <= MAX_RETRIES:
        return None
    return f"must be between 0 and {MAX_RETRIES}"


def memory_problem(mb: object) -> str | None:
    """What is wrong with `mb` as a task's declared memory in MB, or None."""
    if isinstance(mb, int) and not isinstance(mb, bool) and 1 <= mb <= MAX_TASK_MEMORY_MB:
        return None
    return f"must be between 1 and {MAX_TASK_MEMORY_MB} MB"


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a file under `/in` or `/out`, or None when it can.

    The same rule holds for `/in` names in a DAG, output names a host reports and the files
    `--out` writes: relative, '/'-separated, no empty, '.' or '..' component (so it can never
    leave its directory, whatever joins it), no NUL, within MAX_PATH_BYTES and MAX_NAME_BYTES.
    """
    if not path:
        return "a file name must not be empty"
    if "\0" in path:
        return f"file name {_show(path)} contains a NUL character"
    if path.startswith("/"):
        return f"file name {_show(path)} must be relative (no leading '/')"
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        return f"file name {_show(path)} is {size} bytes, over the limit of {MAX_PATH_BYTES}"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            shown = "an empty" if not part else f"a {part!r}"
            return f"file name {_show(path)} has {shown} component; write a plain relative path like 'dir/name'"
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            return f"file name {_show(path)} has a component over {MAX_NAME_BYTES} bytes"
    return None


def paths_problem(paths: Iterable[str]) -> str | None:
    """Why these paths cannot live in one directory tree together (one names a directory the
    other needs as a file, or a name is repeated), or None. Assumes each passed `path_problem`."""
    seen: set[str] = set()
    listed = list(paths)
    for path in listed:
        if path in seen:
            return f"file name {_show(path)} is listed twice"
        seen.add(path)
    for path in listed:
        parent, sep, _ = path.rpartition("/")
        while sep:
            if parent in seen:
                return f"{_show(parent)} cannot be both a file and the directory of {_show(path)}"
            parent, sep, _ = parent.rpartition("/")
    return None


def output_files_problem(files: Mapping[str, bytes], stdout_bytes: int) -> tuple[str, bool] | None:
    """Why a host's report of a task's `/out` files cannot be true, or None: (message, over_limit).

    The controller does not trust the wire: names must pass `path_problem` and `paths_problem`,
    and the files with stdout must fit the limits the engine enforces. `over_limit` tells a
    size or count overflow (the module's doing: `output_limit`) from a malformed name.
    """
    if len(files) > MAX_OUTPUT_FILES:
        return f"{len(files)} files under /out, over the limit of {MAX_OUTPUT_FILES}", True
    total = stdout_bytes + sum(len(data) for data in files.values())
    if total > MAX_OUTPUT_BYTES:
        return f"stdout and /out files add up to {total:,} bytes, over the {MAX_OUTPUT_BYTES:,}-byte limit", True
    for name in files:
        problem = path_problem(name)
        if problem:
            return f"output {problem}", False
    problem = paths_problem(files)
    return (f"outputs: {problem}", False) if problem else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' hint for a misspelt key or id, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: object, limit: int = 60) -> str:
    """repr() of a hostile value, cut short so an error message stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def submission_bytes(spec: DagSpec) -> int:
    """The bytes a submission carries: modules, file inputs and literal inputs, `/in` files."""
    total = sum(len(data) for data in spec.modules.values())
    for task in spec.tasks:
        for item in task.inputs:
            total += len(item.data) + len(item.value) + len(item.output)
        for f in task.files:
            total += len(f.path) + len(f.source.data) + len(f.source.value) + len(f.source.output)
    return total


def check_limits(spec: DagSpec) -> None:
    """Refuse a DAG over any size limit of `bxthre3.common.limits`.

    Shared by the loader (so the user hears it before submitting) and by
    :meth:`DagSpec.from_wire` (so the controller enforces it anyway).
    """
    if len(spec.tasks) > MAX_TASKS_PER_DAG:
        raise DagError(
            f"{len(spec.tasks)} tasks, over the limit of {MAX_TASKS_PER_DAG}",
            file=spec.source,
            field="tasks",
        )
    for task in spec.tasks:
        if len(task.inputs) > MAX_INPUTS_PER_TASK:
            raise DagError(
                f"{len(task.inputs)} inputs, over the limit of {MAX_INPUTS_PER_TASK}",
                file=spec.source,
                task=task.id,
                field="inputs",
            )
        if len(task.files) > MAX_INPUTS_PER_TASK:
            raise DagError(
                f"{len(task.files)} files, over the limit of {MAX_INPUTS_PER_TASK}",
                file=spec.source,
                task=task.id,
                field="files",
            )
    for digest, data in spec.modules.items():
        if len(data) > MAX_MODULE_BYTES:
            raise DagError(
                f"module {_module_label(spec, digest)} is {len(data)} bytes, over the limit of {MAX_MODULE_BYTES}",
                file=spec.source,
                task=_first_user(spec, digest),
                field="module",
            )
    total = submission_bytes(spec)
    if total > MAX_DAG_BYTES:
        raise DagError(
            f"the DAG carries {total} bytes of modules and inputs, over the limit of {MAX_DAG_BYTES}",
            file=spec.source,
        )


def _first_user(spec: DagSpec, digest: str) -> str | None:
    return next((t.id for t in spec.tasks if t.module == digest), None)


def _module_label(spec: DagSpec, digest: str) -> str:
    name = next((t.module_name for t in spec.tasks if t.module == digest), "")
    return f"{_show(name)} ({digest[:12]})" if name else digest[:12]


# --------------------------------------------------------------------------- graph


def validate_graph(spec: DagSpec) -> None:
    """Check the cross-references of a DAG; raise DagError at the first problem.

    Duplicate ids, unknown or self dependencies, missing modules, cycles (printed as
    "a -> b -> a", read "a depends on b"), and `output_of_x` inputs whose task is
    unknown or not upstream. Iterative and linear in tasks + edges, so a
    100,000-task chain is fine; the upstream check costs an extra bitwise OR per
    edge over the tasks that are referenced indirectly (see `_check_upstream`).
    """
    src = spec.source
    index: dict[str, int] = {}
    for i, task in enumerate(spec.tasks):
        if task.id in index:
            raise DagError(
                f"duplicate task id {task.id!r} (also task #{index[task.id] + 1})",
                file=src,
                task=task.id,
                field="id",
            )
        index[task.id] = i
    for task in spec.tasks:
        seen: set[str] = set()
        for dep in task.depends_on:
            if dep == task.id:
                raise DagError("a task cannot depend on itself", file=src, task=task.id, field="depends_on")
            if dep not in index:
                raise DagError(
                    f"depends on unknown task {_show(dep)}{did_you_mean(dep, index)}",
                    file=src,
                    task=task.id,
                    field="depends_on",
                )
            if dep in seen:
                raise DagError(f"{dep!r} is listed twice", file=src, task=task.id, field="depends_on")
            seen.add(dep)
        if task.module not in spec.modules:
            raise DagError(
                f"module {_show(task.module_name)} (sha256 {task.module[:12]}...) is not among the DAG's modules",
                file=src,
                task=task.id,
                field="module",
            )
        for item in task.sources:
            if item.kind is not InputKind.OUTPUT:
                continue
            if item.value == task.id:
                raise DagError(
                    f"input {_show(item.text)}: a task cannot read its own output",
                    file=src,
                    task=task.id,
                    field=task.field_of(item),
                )
            if item.value not in index:
                raise DagError(
                    f"input {_show(item.text)} reads unknown task "
                    f"{_show(item.value)}{did_you_mean(item.value, index)}",
                    file=src,
                    task=task.id,
                    field=task.field_of(item),
                )
    order = _kahn(spec, index)
    _check_upstream(spec, index, order)


def topological_order(spec: DagSpec) -> list[str]:
    """Task ids, every task after all its dependencies; ties keep file order.

    Raises DagError on a cycle or an unknown dependency (call validate_graph first
    for the full set of checks).
    """
    index: dict[str, int] = {}
    for i, task in enumerate(spec.tasks):
        index.setdefault(task.id, i)
    for task in spec.tasks:
        for dep in task.depends_on:
            if dep not in index:
                raise DagError(
                    f"depends on unknown task {_show(dep)}",
                    file=spec.source,
                    task=task.id,
                    field="depends_on",
                )
    return [spec.tasks[i].id for i in _kahn(spec, index)]


def _kahn(spec: DagSpec, index: dict[str, int]) -> list[int]:
    """Kahn's algorithm over task indices; on a cycle raise DagError printing one."""
    n = len(spec.tasks)
    waiting = [0] * n
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, task in enumerate(spec.tasks):
        deps = {index[d] for d in task.depends_on}
        waiting[i] = len(deps)
        for d in deps:
            dependents[d].append(i)
    ready = deque(i for i in range(n) if waiting[i] == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) < n:
        cycle = _find_cycle(spec, index, waiting)
        raise DagError(
            "dependency cycle: " + _cycle_text([spec.tasks[i].id for i in cycle]) + " (each task depends on the next)",
            file=spec.source,
            task=spec.tasks[cycle[0]].id,
            field="depends_on",
        )
    return order


def _cycle_text(ids: list[str], keep: int = 8) -> str:
    """'a -> b -> a' (``ids`` ends where it starts), shortened in the middle when long."""
    ring = ids
    if len(ring) <= 2 * keep + 1:
        return " -> ".join(ring)
    hidden = len(ring) - 2 * keep
    return " -> ".join(ring[:keep]) + f" -> ... {hidden} more ... -> " + " -> ".join(ring[-keep:])


def _find_cycle(spec: DagSpec, index: dict[str, int], waiting: list[int]) -> list[int]:
    """One cycle among the tasks Kahn could not order, first task in file order first.

    Every such task still waits on another such task, so following those edges from
    any of them must come back to a task already on the path.
    """
    stuck = [w > 0 for w in waiting]
    start = next(i for i, s in enumerate(stuck) if s)
    position: dict[int, int] = {}
    path: list[int] = []
    current = start
    while current not in position:
        position[current] = len(path)
        path.append(current)
        current = next(index[d] for d in spec.tasks[current].depends_on if stuck[index[d]])
    cycle = path[position[current] :]
    first = cycle.index(min(cycle))
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]


def _check_upstream(spec: DagSpec, index: dict[str, int], order: list[int]) -> None:
    """Every `output_of_x` input must name a task upstream of its reader.

    A direct dependency is checked in O(1). For the rest, each task referenced
    indirectly gets one bit, and each task's "upstream referenced tasks" set is an
    int bitmask ORed from its dependencies in topological order. Masks are shared
    when a merge adds nothing and dropped once their last dependent has read them,
    so a long chain holds one at a time. Worst case (many live tasks with distinct
    ancestor sets) costs tasks x referenced-tasks bits; the frame and task limits
    bound that.
    """
    indirect: list[tuple[int, TaskInput]] = []
    bit_of: dict[int, int] = {}
    for i, task in enumerate(spec.tasks):
        direct = set(task.depends_on)
        for item in task.sources:
            if item.kind is InputKind.OUTPUT and item.value not in direct:
                target = index[item.value]
                indirect.append((i, item))
                bit_of.setdefault(target, len(bit_of))
    if not indirect:
        return
    queries: dict[int, list[TaskInput]] = {}
    for reader, item in indirect:
        queries.setdefault(reader, []).append(item)
    unread = [0] * len(spec.tasks)
    dep_lists: list[list[int]] = []
    for task in spec.tasks:
        deps = [index[d] for d in task.depends_on]
        dep_lists.append(deps)
        for d in deps:
            unread[d] += 1
    up: dict[int, int] = {}  # task -> bits of itself (if referenced) and its ancestors
    for i in order:
        mask = 0
        for d in dep_lists[i]:
            theirs = up[d]
            if not mask:
                mask = theirs  # share the object: a chain holds one mask, not n copies
            elif theirs and theirs is not mask:
                merged = mask | theirs
                if merged == theirs:
                    mask = theirs
                elif merged != mask:
                    mask = merged
            unread[d] -= 1
            if unread[d] == 0:
                del up[d]
        for item in queries.get(i, ()):
            target_id = item.value
            if not mask >> bit_of[index[target_id]] & 1:
                task = spec.tasks[i]
                raise DagError(
                    f"input {_show(item.text)} reads task {target_id!r}, "
                    f"which is not upstream of this task: add {target_id!r} to depends_on",
                    file=spec.source,
                    task=task.id,
                    field=task.field_of(item),
                )
        if unread[i]:
            bit = bit_of.get(i)
            up[i] = mask if bit is None else mask | (1 << bit)


# --------------------------------------------------------------------------- wire

_TOP_KEYS = frozenset({"name", "tasks", "modules", "description"})
_TASK_KEYS = frozenset(
    {"id", "module", "module_name", "inputs", "depends_on", "timeout", "retries", "memory", "files"}
)
_INPUT_KEYS = frozenset({"kind", "value", "data", "output"})
_FILE_KEYS = _INPUT_KEYS | {"path"}
_KINDS = {k.value: k for k in InputKind}


class _WireReader:
    """Turns an untrusted decoded-msgpack object into a DagSpec, or a DagError.

    Every access is preceded by a type check, so a wrong type anywhere becomes a
    message naming the task and field instead of a KeyError or TypeError.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, task: str | None = None, field: str | None = None) -> DagError:
        return DagError(message, file=self.source, task=task, field=field)

    def keys(
        self, obj: dict[Any, Any], allowed: frozenset[str], what: str, task: str | None, field: str | None = None
    ) -> None:
        unknown = [k for k in obj if k not in allowed]
        if unknown:
            shown = ", ".join(sorted(_show(k) for k in unknown[:5]))
            raise self.fail(f"unknown {what} key(s): {shown}", task, field)

    def string(self, value: object, task: str | None, field: str, limit: int) -> str:
        if not isinstance(value, str):
            raise self.fail(f"must be a string, not {type(value).__name__}", task, field)
        if len(value) > limit:
            raise self.fail(f"is {len(value)} characters, over the limit of {limit}", task, field)
        return value

    def read(self, obj: object) -> DagSpec:
        if not isinstance(obj, dict):
            raise self.fail(f"a DAG must be a map, not {type(obj).__name__}")
        self.keys(obj, _TOP_KEYS, "top-level", None)
        for required in ("name", "tasks", "modules"):
            if required not in obj:
                raise self.fail("missing required field", field=required)
        name = self.string(obj["name"], None, "name", MAX_ID_LENGTH)
        if not name or not name.isprintable():
            raise self.fail("must be a non-empty printable string", field="name")
        description = self.string(obj.get("description", ""), None, "description", MAX_NAME_CHARS)
        raw_tasks = obj["tasks"]
        if not isinstance(raw_tasks, (list, tuple)):
            raise self.fail(f"must be a list, not {type(raw_tasks).__name__}", field="tasks")
        if not raw_tasks:
            raise self.fail("a DAG needs at least one task", field="tasks")
        if len(raw_tasks) > MAX_TASKS_PER_DAG:
            raise self.fail(f"{len(raw_tasks)} tasks, over the limit of {MAX_TASKS_PER_DAG}", field="tasks")
        tasks = tuple(self.task(raw, n) for n, raw in enumerate(raw_tasks, 1))
        modules = self.modules(obj["modules"], tasks)
        spec = DagSpec(name, tasks, modules, source=self.source, description=description)
        check_limits(spec)
        self.check_modules(spec)
        validate_graph(spec)
        return spec

    def task(self, raw: object, number: int) -> TaskSpec:
        label = f"#{number}"
        if not isinstance(raw, dict):
            raise self.fail(f"a task must be a map, not {type(raw).__name__}", label)
        raw_id = raw.get("id")
        if raw_id is None:
            raise self.fail("missing required field", label, "id")
        task_id = self.string(raw_id, label, "id", MAX_ID_LENGTH)
        problem = id_problem(task_id)
        if problem:
            raise self.fail(problem, label, "id")
        self.keys(raw, _TASK_KEYS, "task", task_id)
        for required in ("module", "module_name"):
            if required not in raw:
                raise self.fail("missing required field", task_id, required)
        module = self.string(raw["module"], task_id, "module", 64)
        if not _SHA256_HEX.fullmatch(module):
            raise self.fail("must be a lowercase sha256 hex digest", task_id, "module")
        module_name = self.string(raw["module_name"], task_id, "module_name", MAX_NAME_CHARS)
        inputs = self.inputs(raw.get("inputs", []), task_id)
        depends_on = self.depends_on(raw.get("depends_on", []), task_id)
        timeout = raw.get("timeout")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise self.fail(f"must be a number, not {type(timeout).__name__}", task_id, "timeout")
            timeout = float(timeout)
            problem = timeout_problem(timeout)
            if problem:
                raise self.fail(f"{problem}, not {timeout!r}", task_id, "timeout")
        retries = raw.get("retries")
        if retries is not None:
            if isinstance(retries, bool) or not isinstance(retries, int):
                raise self.fail(f"must be an integer, not {type(retries).__name__}", task_id, "retries")
            problem = retries_problem(retries)
            if problem:
                raise self.fail(f"{problem}, not {retries}", task_id, "retries")
        memory = raw.get("memory")
        if memory is not None:
            if isinstance(memory, bool) or not isinstance(memory, int):
                raise self.fail(f"must be an integer (MB), not {type(memory).__name__}", task_id, "memory")
            problem = memory_problem(memory)
            if problem:
                raise self.fail(f"{problem}, not {memory}", task_id, "memory")
        files = self.files(raw["files"], task_id) if "files" in raw else ()
        return TaskSpec(task_id, module, module_name, inputs, depends_on, timeout, retries, memory, files)

    def files(self, raw: object, task_id: str) -> tuple[TaskFile, ...]:
        out: list[TaskFile] = []
        for where, item in self.maps(raw, task_id, "files", "file", _FILE_KEYS):
            path = item.get("path")
            if not isinstance(path, str):
                raise self.fail(f"{where} path must be a string", task_id, "files")
            problem = path_problem(path)
            if problem:
                raise self.fail(problem, task_id, "files")
            source = self.one_input({k: v for k, v in item.items() if k != "path"}, where, task_id, "files")
            if source.kind is InputKind.LITERAL:
                raise self.fail(f"{where} ({_show(path)}) must be a file or an upstream output", task_id, "files")
            out.append(TaskFile(path, source))
        problem = paths_problem(f.path for f in out)
        if problem:
            raise self.fail(problem, task_id, "files")
        return tuple(out)

    def inputs(self, raw: object, task_id: str) -> tuple[TaskInput, ...]:
        return tuple(
            self.one_input(item, where, task_id, "inputs")
            for where, item in self.maps(raw, task_id, "inputs", "input", _INPUT_KEYS)
        )

    def maps(
        self, raw: object, task_id: str, field: str, noun: str, allowed: frozenset[str]
    ) -> Iterator[tuple[str, dict[Any, Any]]]:
        """Each map of the list `field` (`inputs` or `files`) with where it stands (`input #2`).

        `inputs` and `files` are both a bounded list of maps with known keys, and must refuse
        a malformed one in the same words. A generator, so that each map is checked just
        before the caller reads it: the first error in the list is still the one reported.
        """
        if not isinstance(raw, (list, tuple)):
            raise self.fail(f"must be a list, not {type(raw).__name__}", task_id, field)
        if len(raw) > MAX_INPUTS_PER_TASK:
            raise self.fail(f"{len(raw)} {field}, over the limit of {MAX_INPUTS_PER_TASK}", task_id, field)
        for n, item in enumerate(raw, 1):
            where = f"{noun} #{n}"
            if not isinstance(item, dict):
                raise self.fail(f"{where} must be a map, not {type(item).__name__}", task_id, field)
            self.keys(item, allowed, where, task_id, field)
            yield where, item

    def one_input(self, item: dict[Any, Any], where: str, task_id: str, field: str) -> TaskInput:
        """One input map (keys already checked) of `inputs` or `files`."""
        raw_kind = item.get("kind")
        kind = _KINDS.get(raw_kind) if isinstance(raw_kind, str) else None
        if kind is None:
            raise self.fail(
                f"{where} has kind {_show(item.get('kind'))}; expected one of " + ", ".join(sorted(_KINDS)),
                task_id,
                field,
            )
        value = item.get("value")
        if not isinstance(value, str):
            raise self.fail(f"{where} value must be a string", task_id, field)
        data = item.get("data", b"")
        if isinstance(data, bytearray):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise self.fail(f"{where} data must be bytes", task_id, field)
        if kind is not InputKind.FILE and data:
            raise self.fail(f"{where} is {kind.value} but carries data", task_id, field)
        output = ""
        if "output" in item:  # a named output: rare, so checked apart
            output = item["output"]
            if not isinstance(output, str):
                raise self.fail(f"{where} output must be a string", task_id, field)
            if output and kind is not InputKind.OUTPUT:
                raise self.fail(f"{where} is {kind.value} but names an output", task_id, field)
            if output:
                problem = path_problem(output)
                if problem:
                    raise self.fail(f"{where} ({_show(OUTPUT_PREFIX + value)}/...): {problem}", task_id, field)
        if kind is InputKind.OUTPUT:
            problem = id_problem(value)
            if problem:
                raise self.fail(f"{where}: {problem}", task_id, field)
        elif kind is InputKind.FILE and len(value) > MAX_NAME_CHARS:
            raise self.fail(f"{where} path is too long", task_id, field)
        return TaskInput(kind, value, data, output)

    def depends_on(self, raw: object, task_id: str) -> tuple[str, ...]:
        if not isinstance(raw, (list, tuple)):
            raise self.fail(f"must be a list, not {type(raw).__name__}", task_id, "depends_on")
        if len(raw) > MAX_INPUTS_PER_TASK:
            raise self.fail(
                f"{len(raw)} dependencies, over the limit of {MAX_INPUTS_PER_TASK}",
                task_id,
                "depends_on",
            )
        for dep in raw:
            if not isinstance(dep, str):
                raise self.fail(
                    f"every dependency must be a string, not {type(dep).__name__}",
                    task_id,
                    "depends_on",
                )
            problem = id_problem(dep)
            if problem:
                raise self.fail(problem, task_id, "depends_on")
        return tuple(raw)

    def modules(self, raw: object, tasks: tuple[TaskSpec, ...]) -> dict[str, bytes]:
        if not isinstance(raw, dict):
            raise self.fail(f"must be a map, not {type(raw).__name__}", field="modules")
        used = {t.module for t in tasks}
        out: dict[str, bytes] = {}
        total = 0
        for digest, data in raw.items():
            if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
                raise self.fail(f"key {_show(digest)} is not a sha256 hex digest", field="modules")
            if isinstance(data, bytearray):
                data = bytes(data)
            if not isinstance(data, bytes):
                raise self.fail(f"module {digest[:12]} must be bytes, not {type(data).__name__}", field="modules")
            if digest not in used:
                raise self.fail(f"module {digest[:12]} is not used by any task", field="modules")
            total += len(data)
            if len(data) > MAX_MODULE_BYTES or total > MAX_DAG_BYTES:
                raise self.fail(
                    f"module {digest[:12]} is {len(data)} bytes; modules may be at most "
                    f"{MAX_MODULE_BYTES} bytes each and the DAG {MAX_DAG_BYTES} in all",
                    field="modules",
                )
            out[digest] = data
        return out

    def check_modules(self, spec: DagSpec) -> None:
        """Hash and inspect each module once (the costly part, so it runs after sizes)."""
        for digest, data in spec.modules.items():
            user = _first_user(spec, digest)
            if sha256_hex(data) != digest:
                raise self.fail(
                    f"module {_module_label(spec, digest)}: content does not match its sha256",
                    user,
                    "module",
                )
            try:
                # Imports, exports and sections only: decoding every instruction costs ~0.15 ms per KB
                # of code in the controller's loop (seconds for the largest DAGs). The client's loader
                # does that scan before submitting, and each host refuses what its engine cannot run.
                check_wasi_command(data, name=_module_label(spec, digest), scan_code=False)
            except ModuleError as exc:
                raise self.fail(str(exc), user, "module") from None
