"""The validated shape of a DAG: tasks, their inputs, their modules. Pure: no I/O.

Two doors lead in. The YAML loader (`dag.yaml_loader`) builds a :class:`DagSpec` from a
file the user wrote; :meth:`DagSpec.from_wire` (`dag.wire_form`) rebuilds one from a msgpack'd
dict that arrived over the network and so may be hostile. Both ask the field rules of
`dag.fields` and end in `dag.graph.validate_graph`, so the controller never holds a DAG the
client would have refused, and each rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

OUTPUT_PREFIX = "output_of_"
"""An input `output_of_<id>` is the stdout of upstream task `<id>`; `output_of_<id>/<name>` is the
file that task wrote as `/out/<name>` (a task id holds no '/', so the first '/' splits the two)."""

FILE_PREFIX = "file:"
"""An input `file:<path>` is that file's content, read when the DAG is loaded."""


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
    verify: int = 1
    """Distinct devices whose outputs must agree (sha256 of exit code, stdout and `/out` files) before
    the result counts; 1: trusted as is. A verified task sees deterministic clocks and random bytes."""
    speculate: bool = True
    """May run a backup attempt on an idle fast host while a slow one runs it (False: never runs twice,
    e.g. a task with effects outside its outputs)."""
    cache: bool = True
    """May reuse a cached output of the same module on the same inputs (False: always runs; see README 'Reuse
    of results'). Only tasks that read no clock or random bytes, or run seeded (`verify` >= 2), are cached."""

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
    priority: int = 0
    """Higher goes first when DAGs compete for slots (see the scheduler's `_rank`); 0 when absent."""
    cache: bool = True
    """False (`--no-cache`): no task of this run is served from or stored in the result cache."""
    volatile_modules: frozenset[str] = frozenset()
    """Modules (sha256) that import a WASI call reading time or randomness (`wasm.abi.NONDETERMINISTIC_IMPORTS`):
    their tasks are cached only when they run seeded (`verify` >= 2). Derived, not sent: `from_wire`
    computes it while it inspects the modules."""

    def __post_init__(self) -> None:
        # Frozen means frozen: callers cannot mutate the lists or dict they passed in.
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "modules", MappingProxyType(dict(self.modules)))
        object.__setattr__(self, "volatile_modules", frozenset(self.volatile_modules))

    def task(self, task_id: str) -> TaskSpec:
        """The task called `task_id` (KeyError when there is none)."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-friendly dict (only dict/list/str/int/float/bytes/None)."""
        from bxthre3.dag.wire_form import to_wire  # wire_form builds DagSpecs: imported here, or a cycle

        return to_wire(self)

    @classmethod
    def from_wire(cls, obj: object, *, source: str = "<submission>") -> DagSpec:
        """Rebuild and fully validate a DAG that came from the network.

        The input is hostile: every type, size and cross-reference is checked and any
        problem is a DagError naming the task and field; nothing else escapes.
        """
        from bxthre3.dag.wire_form import from_wire  # wire_form builds DagSpecs: imported here, or a cycle

        return from_wire(obj, source=source)


def parse_input(text: str) -> TaskInput:
    """Classify one input as written in a DAG file (FILE inputs still need their data).

    `output_of_T/NAME` is T's named output NAME; the caller checks NAME with `path_problem`."""
    if text.startswith(OUTPUT_PREFIX):
        task_id, _, name = text[len(OUTPUT_PREFIX) :].partition("/")
        return TaskInput(InputKind.OUTPUT, task_id, output=name)
    if text.startswith(FILE_PREFIX):
        return TaskInput(InputKind.FILE, text[len(FILE_PREFIX) :])
    return TaskInput(InputKind.LITERAL, text)
