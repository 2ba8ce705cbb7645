"""A DAG as msgpack carries it: :meth:`DagSpec.to_wire` and the hostile-input door :meth:`DagSpec.from_wire`. Pure.

The controller trusts no client: every type, size and cross-reference of a submission (or of a DAG
read back from the journal) is checked, with the field rules of `dag.fields` and the graph rules of
`dag.graph`, the same ones the YAML loader asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bxthre3.common.digests import sha256_hex
from bxthre3.common.errors import DagError, ModuleError
from bxthre3.common.limits import (
    MAX_DAG_BYTES,
    MAX_ID_LENGTH,
    MAX_INPUTS_PER_TASK,
    MAX_MODULE_BYTES,
    MAX_TASKS_PER_DAG,
)
from bxthre3.dag.fields import (
    MAX_NAME_CHARS,
    _first_user,
    _module_label,
    _show,
    cache_problem,
    check_limits,
    id_problem,
    memory_problem,
    path_problem,
    paths_problem,
    priority_problem,
    retries_problem,
    speculate_problem,
    timeout_problem,
    verify_problem,
)
from bxthre3.dag.graph import validate_graph
from bxthre3.dag.spec import OUTPUT_PREFIX, DagSpec, InputKind, TaskFile, TaskInput, TaskSpec
from bxthre3.wasm.abi import NONDETERMINISTIC_IMPORTS, WASI_MODULE
from bxthre3.wasm.inspect import check_wasi_command

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def to_wire(spec: DagSpec) -> dict[str, Any]:
    """A msgpack-friendly dict (only dict/list/str/int/float/bytes/None)."""
    wire: dict[str, Any] = {
        "name": spec.name,
        "tasks": [_task_to_wire(t) for t in spec.tasks],
        "modules": dict(spec.modules),
    }
    if spec.description:
        wire["description"] = spec.description
    if spec.priority:
        wire["priority"] = spec.priority  # absent means 0: older controllers and journals never wrote it
    if not spec.cache:
        wire["cache"] = False  # absent means True (`--no-cache` sets it)
    return wire


def from_wire(obj: object, *, source: str = "<submission>") -> DagSpec:
    """Rebuild and fully validate a DAG that came from the network (:meth:`DagSpec.from_wire`)."""
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
    if task.verify != 1:  # absent means 1 and True: older controllers and journals never wrote them
        wire["verify"] = task.verify
    if not task.speculate:
        wire["speculate"] = False
    if not task.cache:
        wire["cache"] = False
    return wire


_TOP_KEYS = frozenset({"name", "tasks", "modules", "description", "priority", "cache"})
_TASK_KEYS = frozenset(
    {"id", "module", "module_name", "inputs", "depends_on", "timeout", "retries", "memory", "files"}
    | {"verify", "speculate", "cache"}
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
        self.shared: dict[str, str] = {}
        """Module hashes and names read so far, each kept once (see `task`); lives as long as one read."""

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
        priority = obj.get("priority", 0)
        problem = priority_problem(priority)
        if problem:
            raise self.fail(f"{problem}, not {_show(priority)}", field="priority")
        cache = obj.get("cache", True)
        problem = cache_problem(cache)
        if problem:
            raise self.fail(f"{problem}, not {_show(cache)}", field="cache")
        raw_tasks = obj["tasks"]
        if not isinstance(raw_tasks, (list, tuple)):
            raise self.fail(f"must be a list, not {type(raw_tasks).__name__}", field="tasks")
        if not raw_tasks:
            raise self.fail("a DAG needs at least one task", field="tasks")
        if len(raw_tasks) > MAX_TASKS_PER_DAG:
            raise self.fail(f"{len(raw_tasks)} tasks, over the limit of {MAX_TASKS_PER_DAG}", field="tasks")
        tasks = tuple(self.task(raw, n) for n, raw in enumerate(raw_tasks, 1))
        modules = self.modules(obj["modules"], tasks)
        spec = DagSpec(
            name, tasks, modules, source=self.source, description=description, priority=priority, cache=cache
        )
        check_limits(spec)
        volatile = self.check_modules(spec)
        validate_graph(spec)
        if volatile:
            object.__setattr__(spec, "volatile_modules", volatile)  # derived from the modules just inspected
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
        # msgpack decodes each task's copy of the same hash and name into a string of its own: one shared
        # object per distinct value saves ~170 bytes a task (17 MB in a controller holding 100,000 tasks).
        module = self.shared.setdefault(module, module)
        module_name = self.shared.setdefault(module_name, module_name)
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
        verify = raw.get("verify", 1)
        problem = verify_problem(verify)
        if problem:
            raise self.fail(f"{problem}, not {_show(verify)}", task_id, "verify")
        speculate = raw.get("speculate", True)
        problem = speculate_problem(speculate)
        if problem:
            raise self.fail(f"{problem}, not {_show(speculate)}", task_id, "speculate")
        cache = raw.get("cache", True)
        problem = cache_problem(cache)
        if problem:
            raise self.fail(f"{problem}, not {_show(cache)}", task_id, "cache")
        files = self.files(raw["files"], task_id) if "files" in raw else ()
        return TaskSpec(
            task_id,
            module,
            module_name,
            inputs,
            depends_on,
            timeout,
            retries,
            memory,
            files,
            verify=verify,
            speculate=speculate,
            cache=cache,
        )

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

    def check_modules(self, spec: DagSpec) -> frozenset[str]:
        """Hash and inspect each module once (the costly part, so it runs after sizes); returns the modules
        that import a call reading time or randomness (`DagSpec.volatile_modules`)."""
        volatile: set[str] = set()
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
                info = check_wasi_command(data, name=_module_label(spec, digest), scan_code=False)
            except ModuleError as exc:
                raise self.fail(str(exc), user, "module") from None
            if any(i.module == WASI_MODULE and i.name in NONDETERMINISTIC_IMPORTS for i in info.imports):
                volatile.add(digest)
        return frozenset(volatile)
