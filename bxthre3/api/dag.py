"""`Dag`: a DAG built in Python, the same thing a YAML file describes.

Every value is checked when it is given, by the rules the YAML loader asks (`dag.fields`), and the
whole DAG by `dag.fields.check_limits` and `dag.graph.validate_graph` when it is built; the errors
are the loader's `DagError`s, naming the DAG, the task and the field. Modules are found where the
loader looks (`dag.yaml_loader.module_candidates`): relative names against `base_dir` (default: the
current directory) as if a YAML file lived there, then ../wasm_modules/, $BXTHRE3_MODULE_PATH and
the bundled modules. `to_yaml()` writes the file that loads (from `base_dir`) to an equal `DagSpec`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

from ..common.digests import sha256_hex
from ..common.errors import DagError, ModuleError
from ..common.limits import MAX_DAG_BYTES, MAX_ID_LENGTH, MAX_MODULE_BYTES, input_file_over_limit
from ..dag.fields import (
    DEFAULT_FIELDS,
    cache_problem,
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
from ..dag.spec import DagSpec, InputKind, TaskFile, TaskInput, TaskSpec, parse_input

T = TypeVar("T")

ModuleRef = Union[str, "os.PathLike[str]", bytes]
"""A module: a file name or path (found like the YAML loader finds it), or the module's bytes."""


class TaskOutput:
    """A named output of a task: the file it writes as `/out/<name>` (`task.file(name)`)."""

    __slots__ = ("task", "name")

    def __init__(self, task: Task, name: str) -> None:
        self.task = task
        self.name = name

    def __repr__(self) -> str:
        return f"<output {self.task.id}/{self.name}>"


class Task:
    """A task of a `Dag`, as `dag.task` returns it: pass it (its stdout) or `task.file(name)` (one of
    its named outputs) to a later task's `stdin` or `files`, which then depends on it."""

    __slots__ = ("dag", "id")

    def __init__(self, dag: Dag, task_id: str) -> None:
        self.dag = dag
        self.id = task_id

    def file(self, name: str) -> TaskOutput:
        """The file this task writes as `/out/<name>`."""
        problem = path_problem(name) if isinstance(name, str) else "a file name must be a string"
        if problem:
            raise DagError(f"output {problem}", file=self.dag.source, task=self.id)
        return TaskOutput(self, name)

    @property
    def spec(self) -> TaskSpec:
        return self.dag._tasks[self.id]

    def __repr__(self) -> str:
        return f"<task {self.id}>"


Source = Union[Task, TaskOutput, "os.PathLike[str]"]
"""What `stdin` and `files` take: a task (its stdout), a task's named output, or a local file (a `Path`)."""


class Dag:
    """A DAG under construction. ``Dag("name", defaults={"timeout": 30})`` then `task` and `map`.

    >>> dag = Dag("hello")
    >>> init = dag.task("init", "init.wasm", args=["Bxthre3"])
    >>> greet = dag.task("greet", "greet_1.wasm", stdin=[init])
    >>> greet.spec.depends_on
    ('init',)
    """

    def __init__(
        self,
        name: str,
        *,
        defaults: Mapping[str, Any] | None = None,
        description: str = "",
        priority: int = 0,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.source = f"<Dag {name!r}>" if isinstance(name, str) else "<Dag>"
        if not isinstance(name, str) or not name or len(name) > MAX_ID_LENGTH or not name.isprintable():
            raise DagError(f"must be 1 to {MAX_ID_LENGTH} printable characters", file=self.source, field="name")
        if not isinstance(description, str):
            raise DagError("must be a string", file=self.source, field="description")
        problem = priority_problem(priority)
        if problem:
            raise DagError(f"{problem}, not {priority!r}", file=self.source, field="priority")
        self.name = name
        self.description = description
        self.priority = priority
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.defaults: dict[str, Any] = {}
        for key, value in (defaults or {}).items():
            if key not in DEFAULT_FIELDS:
                raise DagError(
                    f"unknown field {key!r}; expected one of: {', '.join(DEFAULT_FIELDS)}",
                    file=self.source,
                    field=key,
                )
            if value is not None:
                self.defaults[key] = _OPTION_CHECKS[key](value, self.source, None)
        self._tasks: dict[str, TaskSpec] = {}
        self._given: dict[str, dict[str, Any]] = {}
        """Per task, the options given to `task` itself (not from defaults): what `to_yaml` writes."""
        self._modules: dict[str, bytes] = {}
        self._module_by_name: dict[str, str] = {}
        self._bytes_modules: set[str] = set()
        self._carried = 0
        self._file_uses: dict[str, int] = {}
        """How many tasks read each input file so far (the limit's error says what to do instead)."""

    # -- building

    def task(
        self,
        task_id: str,
        module: ModuleRef,
        *,
        args: Sequence[str | int | float] = (),
        stdin: Sequence[Source] = (),
        files: Mapping[str, Source] | None = None,
        after: Sequence[Task | str] = (),
        timeout: float | None = None,
        retries: int | None = None,
        memory: int | None = None,
        verify: int | None = None,
        speculate: bool | None = None,
        cache: bool | None = None,
    ) -> Task:
        """Add a task running `module` with argv `args`; its stdin is the concatenation of `stdin`
        (tasks' stdout, named outputs, local files), its `/in` directory holds `files`. It depends on
        every task it reads and on those in `after`. Options left out come from `defaults`.
        A task refused with a DagError leaves the DAG as it was."""
        before = (
            dict(self._modules), dict(self._module_by_name), set(self._bytes_modules), self._carried,
            dict(self._file_uses),
        )  # fmt: skip
        try:
            return self._add(
                task_id, module, args, stdin, files, after, timeout, retries, memory, verify, speculate, cache
            )
        except BaseException:
            self._modules, self._module_by_name, self._bytes_modules, self._carried, self._file_uses = before
            raise

    def _add(
        self,
        task_id: str,
        module: ModuleRef,
        args: Sequence[str | int | float],
        stdin: Sequence[Source],
        files: Mapping[str, Source] | None,
        after: Sequence[Task | str],
        timeout: float | None,
        retries: int | None,
        memory: int | None,
        verify: int | None,
        speculate: bool | None,
        cache: bool | None = None,
    ) -> Task:
        src = self.source
        label = task_id if isinstance(task_id, str) else repr(task_id)
        problem = id_problem(task_id) if isinstance(task_id, str) else "a task id must be a string"
        if problem:
            raise DagError(problem, file=src, task=label, field="id")
        if task_id in self._tasks:
            raise DagError(f"duplicate task id {task_id!r}", file=src, task=task_id, field="id")
        digest, module_name = self._module(module, task_id)
        if isinstance(args, (str, bytes)):
            raise DagError('args must be a list, e.g. ["a", "b"]', file=src, task=task_id, field="inputs")
        if isinstance(stdin, (Task, TaskOutput, os.PathLike)):
            stdin = [stdin]
        inputs = [self._arg(a, n, task_id) for n, a in enumerate(args, 1)]
        deps: list[str] = []
        for n, item in enumerate(stdin, 1):
            inputs.append(self._source(item, f"stdin #{n}", task_id, "inputs", deps))
        task_files: list[TaskFile] = []
        for name, item in (files or {}).items():
            problem = path_problem(name) if isinstance(name, str) else f"file name {name!r} must be a string"
            if problem:
                raise DagError(problem, file=src, task=task_id, field="files")
            task_files.append(TaskFile(name, self._source(item, f"file {name!r}", task_id, "files", deps)))
        problem = paths_problem(f.path for f in task_files)
        if problem:
            raise DagError(problem, file=src, task=task_id, field="files")
        for dep in after:
            dep_id = dep.id if isinstance(dep, Task) else dep
            if not isinstance(dep_id, str) or id_problem(dep_id):
                raise DagError(f"after: {dep!r} is not a task", file=src, task=task_id, field="depends_on")
            if dep_id not in deps:
                deps.append(dep_id)
        given: dict[str, Any] = {}
        for key, value in (
            ("timeout", timeout),
            ("retries", retries),
            ("memory", memory),
            ("verify", verify),
            ("speculate", speculate),
            ("cache", cache),
        ):
            if value is not None:
                given[key] = _OPTION_CHECKS[key](value, src, task_id)
        options = {**self.defaults, **given}
        spec = TaskSpec(
            task_id,
            digest,
            module_name,
            tuple(inputs),
            tuple(deps),
            options.get("timeout"),
            options.get("retries"),
            options.get("memory"),
            tuple(task_files),
            verify=options.get("verify", 1),
            speculate=options.get("speculate", True),
            cache=options.get("cache", True),
        )
        self._tasks[task_id] = spec
        self._given[task_id] = given
        return Task(self, task_id)

    def map(
        self,
        prefix: str,
        module: ModuleRef,
        over: Iterable[T],
        *,
        args: Callable[[T], Sequence[str | int | float]] | Sequence[str | int | float] = (),
        stdin: Callable[[T], Sequence[Source]] | Sequence[Source] = (),
        files: Callable[[T], Mapping[str, Source]] | Mapping[str, Source] | None = None,
        ids: Callable[[int, T], str] | None = None,
        **options: Any,
    ) -> list[Task]:
        """One task per item of `over`: the fan-out. `args`, `stdin` and `files` are values shared by
        every task, or functions of the item. Ids are `<prefix>-<n>` (n from 0, zero-padded so they
        sort), or `ids(n, item)`. Other keywords (timeout, retries, ...) go to every `task`."""
        items = list(over)
        width = len(str(max(len(items) - 1, 0)))
        tasks = []
        for n, item in enumerate(items):
            task_id = ids(n, item) if ids is not None else f"{prefix}-{n:0{width}d}"
            tasks.append(
                self.task(
                    task_id,
                    module,
                    args=args(item) if callable(args) else args,
                    stdin=stdin(item) if callable(stdin) else stdin,
                    files=files(item) if callable(files) else files,
                    **options,
                )
            )
        return tasks

    # -- reading back

    def __getitem__(self, task_id: str) -> Task:
        if task_id not in self._tasks:
            raise KeyError(task_id)
        return Task(self, task_id)

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def tasks(self) -> list[Task]:
        return [Task(self, t) for t in self._tasks]

    def spec(self) -> DagSpec:
        """The validated `DagSpec` (what `Client.submit` sends): size limits and graph rules checked."""
        from ..dag.fields import check_limits
        from ..dag.graph import validate_graph

        if not self._tasks:
            raise DagError("a DAG needs at least one task", file=self.source, field="tasks")
        spec = DagSpec(
            self.name,
            tuple(self._tasks.values()),
            self._modules,
            source=self.source,
            description=self.description,
            priority=self.priority,
        )
        check_limits(spec)
        validate_graph(spec)
        return spec

    def to_yaml(self) -> str:
        """The DAG as a YAML file that `load_dag` reads (from `base_dir`) into an equal `DagSpec`.

        A module given as bytes is named `<sha256[:12]>.wasm`: `save` writes it beside the file."""
        import yaml

        self.spec()  # only a valid DAG is written
        doc: dict[str, Any] = {"name": self.name}
        if self.description:
            doc["description"] = self.description
        if self.priority:
            doc["priority"] = self.priority
        if self.defaults:
            doc["defaults"] = dict(self.defaults)
        tasks = []
        for task in self._tasks.values():
            entry: dict[str, Any] = {"id": task.id, "module": task.module_name}
            if task.inputs:
                entry["inputs"] = [i.text for i in task.inputs]
            if task.files:
                entry["files"] = {f.path: f.source.text for f in task.files}
            if task.depends_on:
                entry["depends_on"] = list(task.depends_on)
            entry.update(self._given[task.id])
            tasks.append(entry)
        doc["tasks"] = tasks
        return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1 << 30, default_flow_style=None))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_yaml()` to `path`, and any module given as bytes beside it; returns the path."""
        target = Path(path)
        text = self.to_yaml()
        for digest in self._bytes_modules:
            (target.parent / _bytes_name(digest)).write_bytes(self._modules[digest])
        target.write_text(text, encoding="utf-8")
        return target

    # -- the pieces

    def _arg(self, value: object, number: int, task_id: str) -> TaskInput:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise DagError(
                f"arg #{number} is {type(value).__name__} ({value!r}), not a string or number",
                file=self.source,
                task=task_id,
                field="inputs",
            )
        text = str(value)
        if parse_input(text).kind is not InputKind.LITERAL:
            raise DagError(
                f"arg #{number} {text!r} reads as a reference in a DAG file: pass tasks and files on stdin",
                file=self.source,
                task=task_id,
                field="inputs",
            )
        return TaskInput(InputKind.LITERAL, text)

    def _source(self, item: object, where: str, task_id: str, field: str, deps: list[str]) -> TaskInput:
        if isinstance(item, (Task, TaskOutput)):
            task = item if isinstance(item, Task) else item.task
            if task.dag is not self:
                raise DagError(f"{where}: {task!r} belongs to another Dag", file=self.source, task=task_id, field=field)
            if task.id not in deps:
                deps.append(task.id)
            return TaskInput(InputKind.OUTPUT, task.id, output=item.name if isinstance(item, TaskOutput) else "")
        if isinstance(item, os.PathLike):
            return self._read_file(os.fspath(item), where, task_id, field)
        raise DagError(
            f"{where} is {type(item).__name__} ({item!r}): give a task, task.file(name) or a pathlib.Path",
            file=self.source,
            task=task_id,
            field=field,
        )

    def _read_file(self, value: str, where: str, task_id: str, field: str) -> TaskInput:
        if not value:
            raise DagError(f"{where}: a file needs a path", file=self.source, task=task_id, field=field)
        path = self.base_dir / value
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise DagError(
                    f"input file {str(path)!r} is not a regular file", file=self.source, task=task_id, field=field
                )
            if self._carried + size > MAX_DAG_BYTES:
                raise DagError(
                    input_file_over_limit(str(path), size, self._file_uses.get(str(path), 0)),
                    file=self.source,
                    task=task_id,
                    field=field,
                )
            data = path.read_bytes()
        except FileNotFoundError:
            raise DagError(
                f"input file {value!r} not found (looked for {str(path)!r})",
                file=self.source,
                task=task_id,
                field=field,
            ) from None
        except OSError as exc:
            raise DagError(
                f"cannot read input file {str(path)!r}: {exc.strerror or exc}",
                file=self.source,
                task=task_id,
                field=field,
            ) from None
        self._carried += len(data)
        self._file_uses[str(path)] = self._file_uses.get(str(path), 0) + 1
        return TaskInput(InputKind.FILE, value, data)

    def _module(self, module: object, task_id: str) -> tuple[str, str]:
        """(sha256, name as a DAG file writes it) of a module, read and checked once per name."""
        from ..dag.yaml_loader import ModuleFileError, locate_module, read_module
        from ..wasm.inspect import check_wasi_command

        def fail(message: str) -> DagError:
            return DagError(message, file=self.source, task=task_id, field="module")

        if isinstance(module, (bytes, bytearray, memoryview)):
            data = bytes(module)
            digest = sha256_hex(data)
            name = _bytes_name(digest)
            self._bytes_modules.add(digest)
        elif isinstance(module, (str, os.PathLike)):
            name = os.fspath(module)
            if name in self._module_by_name:
                return self._module_by_name[name], name
            if not name:
                raise fail("must name a .wasm file")
            try:
                data = read_module(name, locate_module(name, self.base_dir))
            except ModuleFileError as exc:
                raise fail(str(exc)) from None
            digest = sha256_hex(data)
        else:
            raise fail(f"must be a file name, a path or the module's bytes, not {type(module).__name__}")
        if digest not in self._modules:
            if len(data) > MAX_MODULE_BYTES:
                raise fail(f"module {name!r} is {len(data)} bytes, over the limit of {MAX_MODULE_BYTES}")
            try:
                check_wasi_command(data, name=name)
            except ModuleError as exc:
                raise fail(str(exc)) from None
            if self._carried + len(data) > MAX_DAG_BYTES:
                raise fail(f"module {name!r} takes the DAG over the limit of {MAX_DAG_BYTES} bytes")
            self._carried += len(data)
            self._modules[digest] = data
        if not isinstance(module, (bytes, bytearray, memoryview)):
            self._module_by_name[name] = digest
        return digest, name


def _bytes_name(digest: str) -> str:
    return f"{digest[:12]}.wasm"


# -- the options, each checked by its rule in dag.fields; the message adds the value as given


def _timeout(value: object, source: str, task: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DagError(f"must be a number of seconds, not {value!r}", file=source, task=task, field="timeout")
    problem = timeout_problem(float(value))
    if problem:
        raise DagError(f"{problem}, not {value!r}", file=source, task=task, field="timeout")
    return float(value)


def _whole(
    rule: Callable[[object], str | None], field: str, note: str = ""
) -> Callable[[object, str, str | None], int]:
    def check(value: object, source: str, task: str | None) -> int:
        problem = rule(value)
        if problem or not isinstance(value, int):
            raise DagError(f"{problem}{note}, not {value!r}", file=source, task=task, field=field)
        return value

    return check


def _flag(rule: Callable[[object], str | None], field: str) -> Callable[[object, str, str | None], bool]:
    def check(value: object, source: str, task: str | None) -> bool:
        problem = rule(value)
        if problem or not isinstance(value, bool):
            raise DagError(f"{problem}, not {value!r}", file=source, task=task, field=field)
        return value

    return check


_OPTION_CHECKS: dict[str, Callable[[Any, str, str | None], Any]] = {
    "timeout": _timeout,
    "retries": _whole(retries_problem, "retries"),
    "memory": _whole(memory_problem, "memory", " (wasm32 addresses at most 4 GiB)"),  # as the loader says it
    "verify": _whole(verify_problem, "verify"),
    "speculate": _flag(speculate_problem, "speculate"),
    "cache": _flag(cache_problem, "cache"),
}
