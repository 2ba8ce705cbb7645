"""Read a DAG YAML file from disk into a validated :class:`DagSpec`. The I/O half of DAGs.

The user fixes a bad DAG from the message alone, so every error names the file, the
line, the task and the field. PyYAML's constructed objects have no line numbers, so
this module builds its own node tree from PyYAML's event stream (libyaml's C parser
when available): one pass that also refuses what the format does not need and an
attacker would like -- aliases (expansion bombs), deep nesting (libyaml's composer
recurses in C and crashes the process at ~100,000 levels), duplicate keys (silently
last-wins in PyYAML) and more than one document.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from bxthre3.common.digests import sha256_hex
from bxthre3.common.errors import DagError, ModuleError
from bxthre3.common.limits import (
    MAX_DAG_BYTES,
    MAX_ID_LENGTH,
    MAX_INPUTS_PER_TASK,
    MAX_MODULE_BYTES,
    MAX_TASKS_PER_DAG,
    MAX_YAML_BYTES,
    input_file_over_limit,
)
from bxthre3.dag import examples
from bxthre3.dag.examples import MODULE_PATH_ENV
from bxthre3.dag.fields import (
    DEFAULT_FIELDS,
    cache_problem,
    check_limits,
    did_you_mean,
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
from bxthre3.dag.spec import OUTPUT_PREFIX, DagSpec, InputKind, TaskFile, TaskInput, TaskSpec, parse_input
from bxthre3.dag.templates import NAME_PATTERN, TemplateError, evaluate_whole, substitute
from bxthre3.wasm.inspect import check_wasi_command

_EventLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_YAML_DEPTH = 32
"""Deepest nesting of lists and mappings accepted; a DAG needs 4."""

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_T + n for n in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP = _T + "seq", _T + "map"
_KNOWN_TAGS = frozenset(
    _T + n
    for n in ("str", "int", "float", "bool", "null", "timestamp", "binary", "merge", "value")
    + ("seq", "map", "omap", "pairs", "set")
)
_TYPE_WORDS = {
    _INT: "a number",
    _FLOAT: "a number",
    _BOOL: "a boolean",
    _NULL: "empty (null)",
    _T + "timestamp": "a date",
    _T + "binary": "binary data",
    _SEQ: "a list",
    _MAP: "a mapping",
}

_TOP_KEYS = ("name", "description", "params", "priority", "defaults", "tasks")
_TASK_KEYS = (
    "id",
    "for_each",
    "module",
    "inputs",
    "files",
    "depends_on",
    "timeout",
    "retries",
    "memory",
    "verify",
    "speculate",
    "cache",
)
_INPUT_FORMS = "{output: TASK}, {output: TASK, file: NAME}, {file: PATH} or {literal: TEXT}"
_ALL = "[*]"
"""`output_of_tile[*]`: every task a `for_each` made of `tile`, in expansion order."""
_VALUE_PATTERN = re.compile(r"[\w.-]+", re.ASCII)
"""A for_each value, as it appears in the task ids (`tile[r=0,c=1]`)."""


def load_dag(path: str | os.PathLike[str], params: Mapping[str, str] | None = None) -> DagSpec:
    """Read, parse and fully validate the DAG file at `path`, modules included.

    `params` set the file's `params:` by name (`bxthre3 run -p name=value`)."""
    p = Path(path)
    source = str(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise DagError("not a regular file", file=source)
        if size > MAX_YAML_BYTES:
            raise DagError(f"file is {size} bytes, over the limit of {MAX_YAML_BYTES}", file=source)
        with p.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise DagError("DAG file not found", file=source) from None
    except OSError as exc:
        raise DagError(f"cannot read DAG file: {exc.strerror or exc}", file=source) from None
    if len(raw) > MAX_YAML_BYTES:
        raise DagError(f"file is over the limit of {MAX_YAML_BYTES} bytes", file=source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DagError(f"not UTF-8 text (bad byte 0x{raw[exc.start]:02x})", file=source, line=line) from None
    return parse_dag(text, source=source, base_dir=p.parent, params=params)


def parse_dag(text: str, *, source: str, base_dir: Path, params: Mapping[str, str] | None = None) -> DagSpec:
    """Parse DAG YAML `text`; `source` names it in messages, `base_dir` anchors paths, `params`
    set its `params:`."""
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise DagError(f"DAG text is over the limit of {MAX_YAML_BYTES} bytes", file=source)
    with _gc_paused():
        root = _compose(text, source)
        builder = _DagBuilder(source, Path(base_dir), params or {})
        builder.any_for_each = "for_each" in text  # else skip the expansion pass over every task
        return builder.build(root)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building a large tree of acyclic objects.

    Every allocation burst triggers a collection that rescans the whole growing
    tree; for an 80,000-task file that halves the load time (13 s -> 7 s). The
    tree holds no cycles, so nothing is leaked; the previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _line(node: Node | yaml.Event) -> int:
    """1-based line of a node or event (PyYAML's marks count from 0); 0 when unknown."""
    mark = node.start_mark
    return int(mark.line) + 1 if mark is not None else 0


# --------------------------------------------------------------------------- YAML


@dataclass(slots=True)
class _Open:
    """A list or mapping whose end event has not come yet."""

    node: SequenceNode | MappingNode
    key: ScalarNode | None = None
    seen: dict[str, int] = field(default_factory=dict)


def _compose(text: str, source: str) -> Node | None:
    """Build a node tree (with line marks) from the event stream, iteratively."""
    resolver = Resolver()
    stack: list[_Open] = []
    root: Node | None = None
    documents = 0

    def fail(message: str, at: Node | yaml.Event) -> DagError:
        return DagError(message, file=source, line=_line(at))

    def attach(node: Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        top = stack[-1]
        if isinstance(top.node, SequenceNode):
            top.node.value.append(node)
        elif top.key is None:
            if not isinstance(node, ScalarNode):
                raise fail("a mapping key must be a plain value, not a list or mapping", node)
            if node.value in top.seen:
                raise fail(f"duplicate key {node.value!r} (first on line {top.seen[node.value]})", node)
            top.seen[node.value] = _line(node)
            top.key = node
        else:
            top.node.value.append((top.key, node))
            top.key = None

    resolved: dict[tuple[type[Node], str | None, object], str] = {}

    def tag_of(event: yaml.ScalarEvent | yaml.CollectionStartEvent, kind: type[Node], value: str | None) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            # Keys and module names repeat in every task; the resolver runs regexes.
            implicit: Any = event.implicit
            key = (kind, value, implicit)
            found = resolved.get(key)
            if found is None:
                found = resolved[key] = str(resolver.resolve(kind, value, implicit))  # type: ignore[no-untyped-call]
            return found
        if tag not in _KNOWN_TAGS:
            raise fail(f"unsupported YAML tag {tag!r}", event)
        return str(tag)

    try:
        for event in yaml.parse(text, Loader=_EventLoader):
            start: Any = event.start_mark  # libyaml's Mark type, which the stubs do not know
            if isinstance(event, yaml.ScalarEvent):
                tag = tag_of(event, ScalarNode, event.value)
                attach(ScalarNode(tag, event.value, start, None, event.style))
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= MAX_YAML_DEPTH:
                    raise fail(f"nested deeper than {MAX_YAML_DEPTH} levels", event)
                if isinstance(event, yaml.SequenceStartEvent):
                    node: Node = SequenceNode(tag_of(event, SequenceNode, None), [], start, None)
                else:
                    node = MappingNode(tag_of(event, MappingNode, None), [], start, None)
                stack.append(_Open(node))  # type: ignore[arg-type]
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                attach(stack.pop().node)
            elif isinstance(event, yaml.AliasEvent):
                raise fail(f"YAML aliases (*{event.anchor}) are not supported: write the value out", event)
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise fail("only one YAML document per DAG file (found a second '---')", event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "syntax error"
        if exc.context:
            context_line = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            problem = f"{problem} ({exc.context}{context_line})"
        raise DagError(f"invalid YAML: {problem}", file=source, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise DagError(f"invalid YAML: {exc}", file=source) from None
    return root


# --------------------------------------------------------------------------- DAG


class _DagBuilder:
    """Walks the node tree of one DAG file, reading modules and file inputs as it goes.

    Remembers the line of every task and field, so that the graph checks of
    `dag.graph` (which know nothing of lines) can be reported at the right place.
    """

    def __init__(self, source: str, base_dir: Path, overrides: Mapping[str, str]) -> None:
        self.source = source
        self.base_dir = base_dir
        self.overrides = overrides
        self.scope: dict[str, str] = {}  # params, then the for_each names of the task being read
        self.groups: dict[str, list[str]] = {}  # for_each task as written -> the ids it made
        self.resolver = Resolver()
        self.params_scope: dict[str, str] = {}
        self.any_for_each = True
        self.lines: dict[tuple[str | None, str | None], int] = {}  # (None, top-level key) -> line
        self.task_nodes: dict[str, tuple[Node, dict[str, tuple[ScalarNode, Node]]]] = {}  # id -> node, fields
        self.modules: dict[str, bytes] = {}
        self.module_by_name: dict[str, str] = {}  # as written -> sha256; most DAGs reuse a few
        self.module_by_path: dict[Path, str] = {}
        self.carried = 0  # bytes of modules and file inputs read so far
        self.file_uses: dict[str, int] = {}  # how many tasks read each input file so far
        self.constructor = SafeConstructor()
        self.template_fields: dict[int, dict[str, tuple[ScalarNode, Node]]] = {}  # for_each node -> its fields
        self.shared_values: dict[tuple[int, str], object] = {}  # (field node, name) -> value, see field()

    def fail(self, message: str, node: Node, task: str | None = None, field: str | None = None) -> DagError:
        return DagError(message, file=self.source, line=_line(node), task=task, field=field)

    # -- generic shapes

    def mapping(
        self, node: Node, allowed: tuple[str, ...], task: str | None, what: str
    ) -> dict[str, tuple[ScalarNode, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(f"{what} must be a mapping, not {_kind(node)}", node, task)
        out: dict[str, tuple[ScalarNode, Node]] = {}
        for key, value in node.value:
            name = str(key.value)
            if name not in allowed:
                raise self.fail(
                    f"unknown field {name!r}{did_you_mean(name, allowed)}; expected one of: {', '.join(allowed)}",
                    key,
                    task,
                    name,
                )
            out[name] = (key, value)
        return out

    def string(self, node: Node, task: str | None, field: str) -> str:
        if isinstance(node, ScalarNode) and node.tag == _STR:
            text = str(node.value)
            return text if "$" not in text else self.subst(text, node, task, field)
        hint = f'; quote it: "{node.value}"' if isinstance(node, ScalarNode) and node.value else ""
        raise self.fail(f"must be a string, not {_kind(node)}{hint}", node, task, field)

    def subst(self, text: str, node: Node, task: str | None, field: str) -> str:
        """`text` with its `${...}` filled in from the params and for_each names in scope."""
        if "$" not in text:
            return text
        try:
            return substitute(text, self.scope)
        except TemplateError as exc:
            raise self.fail(str(exc), node, task, field) from None

    def resolved(self, node: Node, task: str | None, field: str) -> Node:
        """A number or boolean field after substitution: `timeout: ${t}` (or "${t}", as a flow
        mapping needs) reads the value as YAML reads an unquoted one (30 -> a number)."""
        if not (isinstance(node, ScalarNode) and node.tag == _STR and "$" in node.value):
            return node
        text = self.subst(str(node.value), node, task, field)
        tag = str(self.resolver.resolve(ScalarNode, text, (True, False)))  # type: ignore[no-untyped-call]
        return ScalarNode(tag, text, node.start_mark, node.end_mark, None)

    def scalar_value(self, node: ScalarNode, task: str | None, field: str) -> object:
        try:
            return self.constructor.construct_object(node)
        except (ValueError, OverflowError, yaml.YAMLError):
            raise self.fail(f"cannot read value {node.value!r}", node, task, field) from None

    def sequence(self, node: Node, task: str | None, field: str) -> list[Node]:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, SequenceNode):
            raise self.fail(f"must be a list, e.g. [a, b], not {_kind(node)}", node, task, field)
        return list(node.value)

    # -- the DAG

    def build(self, root: Node | None) -> DagSpec:
        if root is None:
            raise DagError("the file is empty: a DAG needs 'name' and 'tasks'", file=self.source)
        top = self.mapping(root, _TOP_KEYS, None, "the top level")
        for key, (key_node, _) in top.items():
            self.lines[(None, key)] = _line(key_node)
        for required in ("name", "tasks"):
            if required not in top:
                raise self.fail(f"missing required field '{required}'", root, None, required)
        self.scope = self.params(top["params"][1] if "params" in top else None)
        self.params_scope = self.scope
        name = self.string(top["name"][1], None, "name")
        if not name or len(name) > MAX_ID_LENGTH or not name.isprintable():
            raise self.fail(f"must be 1 to {MAX_ID_LENGTH} printable characters", top["name"][1], None, "name")
        description = ""
        if "description" in top:
            description = self.string(top["description"][1], None, "description")
        priority = self.priority(self.resolved(top["priority"][1], None, "priority")) if "priority" in top else 0
        self.defaults: dict[str, object] = {}
        if "defaults" in top:
            fields = self.mapping(top["defaults"][1], DEFAULT_FIELDS, None, "defaults")
            parsers = {
                "timeout": self.timeout,
                "retries": self.retries,
                "memory": self.memory,
                "verify": self.verify,
                "speculate": self.speculate,
                "cache": self.cache,
            }
            for key, (_, value_node) in fields.items():
                value = parsers[key](self.resolved(value_node, None, key), None)
                if value is not None:
                    self.defaults[key] = value
        tasks_node = top["tasks"][1]
        items = self.sequence(tasks_node, None, "tasks")
        if not items:
            raise self.fail("a DAG needs at least one task", tasks_node, None, "tasks")
        if len(items) > MAX_TASKS_PER_DAG:
            raise self.fail(f"{len(items)} tasks, over the limit of {MAX_TASKS_PER_DAG}", tasks_node, None, "tasks")
        expansions = self.expansions(items) if self.any_for_each else {}
        first_line: dict[str, int] = {}
        tasks: list[TaskSpec] = []
        for number, item in enumerate(items, 1):
            expansion = expansions.get(number)
            made = (
                [self.task(item, number)]
                if expansion is None
                else [self.task(item, number, task_id, bindings) for task_id, bindings in expansion]
            )
            for task in made:
                if task.id in first_line:
                    raise self.fail(
                        f"duplicate task id {task.id!r} (first defined on line {first_line[task.id]})",
                        item,
                        task.id,
                        "id",
                    )
                first_line[task.id] = _line(item)
                tasks.append(task)
        self.scope = self.params_scope
        spec = DagSpec(
            name,
            tuple(_implied_edges(tasks, first_line)),
            self.modules,
            source=self.source,
            description=description,
            priority=priority,
        )
        try:
            check_limits(spec)
            validate_graph(spec)
        except DagError as exc:
            line = self.line_of(exc.task, exc.field)
            raise DagError(exc.message, file=self.source, line=line, task=exc.task, field=exc.field) from None
        return spec

    def line_of(self, task: str | None, field: str | None) -> int | None:
        """The line of a task's field (else of the task; of a top-level key when `task` is None)
        for an error found once the DAG is built (the graph checks know nothing of lines)."""
        if task is None:
            return self.lines.get((None, field)) or self.lines.get((None, None))
        entry = self.task_nodes.get(task)
        if entry is None:
            return None
        node, fields = entry
        key = fields.get(field) if field is not None else None
        return (_line(key[0]) if key is not None else 0) or _line(node)

    # -- params and for_each

    def params(self, node: Node | None) -> dict[str, str]:
        """`params:` (name: default) with the `-p name=value` overrides; every value a string."""
        declared: dict[str, tuple[ScalarNode, str | None]] = {}
        if node is not None and not (isinstance(node, ScalarNode) and node.tag == _NULL):
            if not isinstance(node, MappingNode):
                raise self.fail(
                    f"must map names to default values (size: 512), not {_kind(node)}", node, None, "params"
                )
            for key, value in node.value:
                name = str(key.value)
                if key.tag != _STR or not NAME_PATTERN.fullmatch(name):
                    raise self.fail(
                        f"param name {name!r} must be letters, digits and '_', not starting with a digit",
                        key,
                        None,
                        "params",
                    )
                if isinstance(value, ScalarNode) and value.tag == _NULL:
                    declared[name] = (key, None)
                elif isinstance(value, ScalarNode):
                    declared[name] = (key, str(value.value))
                else:
                    raise self.fail(
                        f"param {name!r}: the default must be one value (a string or number), not {_kind(value)}",
                        value,
                        None,
                        "params",
                    )
        for name in self.overrides:
            if name not in declared:
                fix = (
                    f"its params are: {', '.join(declared)}"
                    if declared
                    else f"it declares none: add params: {{{name}: DEFAULT}} to use ${{{name}}} in it"
                )
                raise DagError(
                    f"-p {name}=...: the DAG has no param {name!r}{did_you_mean(name, declared)}; {fix}",
                    file=self.source,
                    line=self.lines.get((None, "params")),
                )
        scope: dict[str, str] = {}
        for name, (key, default) in declared.items():
            if name in self.overrides:
                scope[name] = self.overrides[name]  # as given: a -p value is never substituted
                continue
            if default is None:
                raise self.fail(
                    f"param {name!r} has no default and was not given: run with -p {name}=VALUE, "
                    f"or give it a default ({name}: VALUE)",
                    key,
                    None,
                    "params",
                )
            self.scope = scope  # a default may use the params above it: blocks: "${(n + tile - 1) / tile}"
            scope[name] = self.subst(default, key, None, "params")
        return scope

    def expansions(self, items: list[Node]) -> dict[int, list[tuple[str, dict[str, str]]]]:
        """Expand every task with `for_each`: task number -> [(id, scope)], and fill `self.groups`.

        Done before any task is read, so `output_of_tile[*]` works wherever `tile` is written."""
        out: dict[int, list[tuple[str, dict[str, str]]]] = {}
        total = len(items)
        for number, item in enumerate(items, 1):
            if not isinstance(item, MappingNode) or "for_each" not in [k.value for k, _ in item.value]:
                continue
            keys = {str(k.value): (k, v) for k, v in item.value}
            if "id" not in keys:
                continue
            id_node = keys["id"][1]
            base = self.string(id_node, f"#{number}", "id")
            problem = id_problem(base)
            if problem or "[" in base:
                raise self.fail(
                    problem or "a for_each task's id must not hold '[': ids get [name=value,...] added",
                    id_node,
                    base,
                    "id",
                )
            node = keys["for_each"][1]
            names, columns = self.for_each(node, base)
            count = math.prod(len(c) for c in columns)
            total += count - 1
            if total > MAX_TASKS_PER_DAG:
                raise self.fail(
                    f"makes {count} tasks, which takes the DAG to {total}, over the limit of {MAX_TASKS_PER_DAG} tasks",
                    node,
                    base,
                    "for_each",
                )
            made: list[tuple[str, dict[str, str]]] = []
            for combo in itertools.product(*columns):
                task_id = base + "[" + ",".join(f"{n}={v}" for n, v in zip(names, combo, strict=True)) + "]"
                made.append((task_id, {**self.params_scope, **dict(zip(names, combo, strict=True))}))
            self.groups[base] = [task_id for task_id, _ in made]
            out[number] = made
        return out

    def for_each(self, node: Node, task: str) -> tuple[list[str], list[list[str]]]:
        """`for_each: {NAME: [values...] or {range: ...}, ...}` -> names and their values as text."""
        shape = "map names to lists of values (r: [0, 1]) or ranges (r: {range: 4})"
        if not isinstance(node, MappingNode) or not node.value:
            raise self.fail(f"must {shape}, not {_kind(node)}", node, task, "for_each")
        names: list[str] = []
        columns: list[list[str]] = []
        for key, value in node.value:
            name = str(key.value)
            if key.tag != _STR or not NAME_PATTERN.fullmatch(name):
                raise self.fail(
                    f"name {name!r} must be letters, digits and '_', not starting with a digit", key, task, "for_each"
                )
            if name in self.params_scope:
                raise self.fail(f"{name!r} is also a param: rename one of them", key, task, "for_each")
            values: range | list[str]
            if isinstance(value, MappingNode):
                values = self.range(value, name, task)
            elif isinstance(value, SequenceNode):
                values = [self.for_each_value(entry, name, task) for entry in value.value]
            else:
                raise self.fail(
                    f"{name!r}: must be a list of values or {{range: ...}}, not {_kind(value)}", value, task, "for_each"
                )
            if not values:
                raise self.fail(f"{name!r} has no values, so the task would vanish", value, task, "for_each")
            sizes = [len(c) for c in columns] + [len(values)]
            if math.prod(sizes) > MAX_TASKS_PER_DAG:
                raise self.fail(
                    f"{' x '.join(map(str, sizes))} = {math.prod(sizes)} tasks, over the limit of "
                    f"{MAX_TASKS_PER_DAG} in a DAG",
                    value,
                    task,
                    "for_each",
                )
            names.append(name)
            columns.append([str(v) for v in values] if isinstance(values, range) else values)
        return names, columns

    def for_each_value(self, entry: Node, name: str, task: str) -> str:
        if not isinstance(entry, ScalarNode) or entry.tag == _NULL:
            raise self.fail(
                f"{name!r}: each value must be a string or number, not {_kind(entry)}", entry, task, "for_each"
            )
        text = self.subst(str(entry.value), entry, task, "for_each")
        if not _VALUE_PATTERN.fullmatch(text):
            raise self.fail(
                f"{name!r}: value {text!r} cannot be part of a task id ({task}[{name}=...]): use "
                "letters, digits, '_', '.' and '-'",
                entry,
                task,
                "for_each",
            )
        return text

    def range(self, node: MappingNode, name: str, task: str) -> range:
        """`{range: STOP}`, `{range: [START, STOP]}` or `{range: [START, STOP, STEP]}`, as Python's range."""
        form = f"{name!r}: write {{range: STOP}}, {{range: [START, STOP]}} or {{range: [START, STOP, STEP]}}"
        if len(node.value) != 1 or node.value[0][0].value != "range":
            raise self.fail(form, node, task, "for_each")
        value = node.value[0][1]
        entries = value.value if isinstance(value, SequenceNode) else [value]
        if not 1 <= len(entries) <= 3 or not all(isinstance(e, ScalarNode) for e in entries):
            raise self.fail(form, value, task, "for_each")
        bounds = []
        for entry in entries:
            try:
                bounds.append(evaluate_whole(str(entry.value), self.params_scope, f"{name!r}: a range bound"))
            except TemplateError as exc:
                raise self.fail(str(exc), entry, task, "for_each") from None
        if len(bounds) == 3 and bounds[2] == 0:
            raise self.fail(f"{name!r}: a range step must not be 0", value, task, "for_each")
        return range(*bounds)

    def references(self, text: str, node: Node, where: str, task_id: str, field: str, prefix: str) -> list[str]:
        """The task ids `text` names: itself, or every task of a for_each group for `tile[*]`.
        `where` says which entry it is, `prefix` how the entry writes a task (output_of_ or nothing)."""
        if text.endswith(_ALL):
            base = text[: -len(_ALL)]
            ids = self.groups.get(base)
            if ids is None:
                raise self.fail(
                    f"{where}: {base!r} is not a for_each task{did_you_mean(base, self.groups)}, so it has no [*]",
                    node,
                    task_id,
                    field,
                )
            return ids
        if text in self.groups:
            ids = self.groups[text]
            raise self.fail(
                f"{where}: {text!r} is a for_each task ({len(ids)} tasks): write {prefix}{text}[*] for all of "
                f"them, or one of them like {prefix}{ids[0]}",
                node,
                task_id,
                field,
            )
        return [text]

    # -- tasks

    def task(
        self, node: Node, number: int, expanded_id: str | None = None, bindings: dict[str, str] | None = None
    ) -> TaskSpec:
        label = f"#{number}"
        if expanded_id is not None:
            label = expanded_id
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                if key.value == "id" and isinstance(value, ScalarNode) and value.tag == _STR:
                    label = str(value.value)
        if expanded_id is None:
            fields = self.mapping(node, _TASK_KEYS, label, f"task {label}")
        else:  # every task of one for_each shares its node: check its keys once
            fields = self.template_fields.get(id(node))  # type: ignore[assignment]
            if fields is None:
                fields = self.template_fields[id(node)] = self.mapping(node, _TASK_KEYS, label, f"task {label}")
        if "id" not in fields:
            raise self.fail("missing required field 'id'", node, label, "id")
        if expanded_id is None:
            if "for_each" in fields:  # pragma: no cover  (expansions() read it)
                raise self.fail("for_each needs an id", node, label, "for_each")
            task_id = self.string(fields["id"][1], label, "id")
            problem = id_problem(task_id)
            if problem:
                raise self.fail(problem, fields["id"][1], label, "id")
        else:
            task_id = expanded_id
        self.scope = bindings if bindings is not None else self.params_scope
        self.task_nodes[task_id] = (node, fields)  # its lines, looked up only for an error (line_of)
        if "module" not in fields:
            raise self.fail("missing required field 'module'", node, task_id, "module")
        module_node = fields["module"][1]
        module_name = self.string(module_node, task_id, "module")
        digest = self.module(module_name, module_node, task_id)
        inputs: list[TaskInput] = []
        if "inputs" in fields:
            entries = self.sequence(fields["inputs"][1], task_id, "inputs")
            for n, entry in enumerate(entries, 1):
                inputs.extend(self.task_input(entry, n, task_id))
            if len(inputs) > MAX_INPUTS_PER_TASK:
                raise self.fail(
                    f"{len(inputs)} inputs, over the limit of {MAX_INPUTS_PER_TASK}",
                    fields["inputs"][1],
                    task_id,
                    "inputs",
                )
        depends_on: list[str] = []
        if "depends_on" in fields:
            for entry in self.sequence(fields["depends_on"][1], task_id, "depends_on"):
                written = self.string(entry, task_id, "depends_on")
                deps = (
                    [written]
                    if written[-1:] != "]" and written not in self.groups
                    else self.references(written, entry, f"dependency {written!r}", task_id, "depends_on", "")
                )
                for dep in deps:
                    problem = id_problem(dep)
                    if problem:
                        raise self.fail(problem, entry, task_id, "depends_on")
                    depends_on.append(dep)
        shared = expanded_id is not None
        timeout: float | None = self.task_field(fields, "timeout", self.timeout, task_id, shared)
        retries: int | None = self.task_field(fields, "retries", self.retries, task_id, shared)
        memory: int | None = self.task_field(fields, "memory", self.memory, task_id, shared)
        # DAG-level `defaults:` fill what the task leaves out (the wire form carries the result).
        timeout = timeout if timeout is not None else self.defaults.get("timeout")  # type: ignore[assignment]
        retries = retries if retries is not None else self.defaults.get("retries")  # type: ignore[assignment]
        memory = memory if memory is not None else self.defaults.get("memory")  # type: ignore[assignment]
        verify: int | None = self.task_field(fields, "verify", self.verify, task_id, shared)
        speculate: bool | None = self.task_field(fields, "speculate", self.speculate, task_id, shared)
        verify = verify if verify is not None else self.defaults.get("verify", 1)  # type: ignore[assignment]
        speculate = speculate if speculate is not None else self.defaults.get("speculate", True)  # type: ignore[assignment]
        cache: bool | None = self.task_field(fields, "cache", self.cache, task_id, shared)
        cache = cache if cache is not None else self.defaults.get("cache", True)  # type: ignore[assignment]
        files = self.files(fields["files"][1], task_id) if "files" in fields else ()
        return TaskSpec(
            task_id,
            digest,
            module_name,
            tuple(inputs),
            tuple(depends_on),
            timeout,
            retries,
            memory,
            files,
            verify=verify,  # type: ignore[arg-type]
            speculate=speculate,  # type: ignore[arg-type]
            cache=cache,  # type: ignore[arg-type]
        )

    def task_field(
        self,
        fields: dict[str, tuple[ScalarNode, Node]],
        name: str,
        parse: Callable[[Node, str | None], Any],
        task_id: str,
        shared: bool,
    ) -> Any:
        """A number or boolean field of a task, None when absent. The tasks of one for_each share a
        value written without `${...}`: it is read (and any error raised, for the first of them) once."""
        entry = fields.get(name)
        if entry is None:
            return None
        node = entry[1]
        if not (shared and isinstance(node, ScalarNode) and "$" not in node.value):
            return parse(self.resolved(node, task_id, name), task_id)
        key = (id(node), name)
        if key in self.shared_values:
            return self.shared_values[key]
        value = self.shared_values[key] = parse(node, task_id)
        return value

    def files(self, node: Node, task_id: str) -> tuple[TaskFile, ...]:
        """`files:` maps names under `/in` to `file:PATH`, `output_of_T` or `output_of_T/NAME`
        (or their structured forms `{file: PATH}`, `{output: T}`, `{output: T, file: NAME}`)."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return ()
        if not isinstance(node, MappingNode):
            raise self.fail(
                f"must be a mapping of names under /in to sources (name: file:PATH), not {_kind(node)}",
                node,
                task_id,
                "files",
            )
        if len(node.value) > MAX_INPUTS_PER_TASK:
            raise self.fail(f"{len(node.value)} files, over the limit of {MAX_INPUTS_PER_TASK}", node, task_id, "files")
        out: list[TaskFile] = []
        for key, value in node.value:
            if key.tag != _STR:
                hint = f'file name {key.value!r} is {_kind(key)}; quote it: "{key.value}"'
                raise self.fail(hint, key, task_id, "files")
            name = self.subst(str(key.value), key, task_id, "files")
            problem = path_problem(name)
            if problem:
                raise self.fail(problem, key, task_id, "files")
            where = f"file {name!r}"
            if isinstance(value, MappingNode):
                sources = self.structured_input(value, where, task_id, "files")
                if len(sources) != 1:
                    raise self.fail(
                        f"{where}: a [*] source names {len(sources)} tasks; a file takes one: name one task",
                        value,
                        task_id,
                        "files",
                    )
                out.append(TaskFile(name, sources[0]))
                continue
            if not (isinstance(value, ScalarNode) and value.tag == _STR):
                raise self.fail(
                    f"file {name!r}: the source is {_kind(value)}; write file:PATH, {OUTPUT_PREFIX}TASK "
                    f"or {OUTPUT_PREFIX}TASK/NAME",
                    value,
                    task_id,
                    "files",
                )
            text = self.subst(str(value.value), value, task_id, "files")
            source = parse_input(text)
            if source.kind is InputKind.LITERAL:
                raise self.fail(
                    f"{where}: source {text!r} is neither file:PATH, {OUTPUT_PREFIX}TASK nor {OUTPUT_PREFIX}TASK/NAME",
                    value,
                    task_id,
                    "files",
                )
            if source.kind is InputKind.OUTPUT and source.value.endswith(_ALL):
                group = self.groups.get(source.value[: -len(_ALL)], ["TASK"])
                raise self.fail(
                    f"{where}: {text!r} names many tasks, and a file holds one: "
                    f"name one, like {OUTPUT_PREFIX}{group[0]}",
                    value,
                    task_id,
                    "files",
                )
            if source.kind is InputKind.OUTPUT:
                self.references(source.value, value, f"{where}: source {text!r}", task_id, "files", OUTPUT_PREFIX)
            out.append(TaskFile(name, self.resolve_input(source, text, value, where, task_id, "files")))
        problem = paths_problem(f.path for f in out)
        if problem:
            raise self.fail(problem, node, task_id, "files")
        return tuple(out)

    def task_input(self, node: Node, number: int, task_id: str) -> list[TaskInput]:
        """One entry of `inputs:` -- usually one input; `output_of_tile[*]` is one per tile."""
        if isinstance(node, ScalarNode) and node.tag == _STR:  # the common case, kept short: 100,000s of these
            text = str(node.value)
            if "$" in text:
                text = self.subst(text, node, task_id, "inputs")
            item = parse_input(text)
            if item.kind is InputKind.LITERAL or (
                item.kind is InputKind.OUTPUT and "/" not in text and "[" not in text and item.value not in self.groups
            ):
                return [item]
        where = f"input #{number}"
        if isinstance(node, MappingNode):
            return self.structured_input(node, where, task_id, "inputs")
        if not (isinstance(node, ScalarNode) and node.tag == _STR):
            shown = f" ({node.value})" if isinstance(node, ScalarNode) and node.value else ""
            hint = (
                f'; quote it to pass it as text: "{node.value}"'
                if isinstance(node, ScalarNode) and node.tag != _NULL
                else '; write "" for an empty string'
                if isinstance(node, ScalarNode)
                else f"; write a string or one of {_INPUT_FORMS}"
            )
            raise self.fail(f"{where} is {_kind(node)}{shown}, not a string{hint}", node, task_id, "inputs")
        text = str(node.value)
        if "$" in text:
            text = self.subst(text, node, task_id, "inputs")
        item = parse_input(text)
        if item.kind is InputKind.OUTPUT and ("[" in item.value or item.value in self.groups):
            ids = self.references(item.value, node, f"{where} {text!r}", task_id, "inputs", OUTPUT_PREFIX)
            items = [TaskInput(InputKind.OUTPUT, i, output=item.output) for i in ids]
            return [self.resolve_input(i, i.text, node, where, task_id, "inputs") for i in items]
        return [self.resolve_input(item, text, node, where, task_id, "inputs")]

    def structured_input(self, node: MappingNode, where: str, task_id: str, field: str) -> list[TaskInput]:
        """`{output: T}`, `{output: T, file: NAME}`, `{file: PATH}` or (inputs only) `{literal: TEXT}`."""
        forms = _INPUT_FORMS if field == "inputs" else "{output: TASK}, {output: TASK, file: NAME} or {file: PATH}"
        parts: dict[str, tuple[Node, str]] = {}
        for key, value in node.value:
            name = str(key.value)
            if name not in ("output", "file", "literal"):
                raise self.fail(f"{where}: unknown key {name!r}; write {forms}", key, task_id, field)
            parts[name] = (value, self.string(value, task_id, field))
        keys = set(parts)
        if keys == {"literal"} and field == "inputs":
            return [TaskInput(InputKind.LITERAL, parts["literal"][1])]
        if keys == {"file"}:
            value_node, path = parts["file"]
            return [self.resolve_input(TaskInput(InputKind.FILE, path), path, value_node, where, task_id, field)]
        if keys in ({"output"}, {"output", "file"}):
            value_node, target = parts["output"]
            output = parts["file"][1] if "file" in parts else ""
            if "file" in parts and not output:
                raise self.fail(f"{where}: 'file' must name one of the task's /out files", node, task_id, field)
            ids = self.references(target, value_node, f"{where} {{output: {target}}}", task_id, field, "")
            items = [TaskInput(InputKind.OUTPUT, i, output=output) for i in ids]
            return [self.resolve_input(i, i.text, node, where, task_id, field) for i in items]
        raise self.fail(f"{where}: write {forms}, not a mapping with {', '.join(parts)}", node, task_id, field)

    def resolve_input(self, item: TaskInput, text: str, node: Node, where: str, task_id: str, field: str) -> TaskInput:
        """Check an `output_of_T/NAME` name; read a `file:` input's content (relative to the DAG file)."""
        if item.kind is InputKind.OUTPUT:
            if "/" in text:
                problem = path_problem(item.output)
                if problem:
                    raise self.fail(f"{where} {text!r}: {problem}", node, task_id, field)
            return item
        if item.kind is not InputKind.FILE:
            return item
        if not item.value:
            raise self.fail(f"{where}: 'file:' needs a path", node, task_id, field)
        path = self.base_dir / item.value
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise self.fail(f"input file {str(path)!r} is not a regular file", node, task_id, field)
            if self.carried + size > MAX_DAG_BYTES:
                uses = self.file_uses.get(str(path), 0)
                raise self.fail(input_file_over_limit(str(path), size, uses), node, task_id, field)
            data = path.read_bytes()
        except FileNotFoundError:
            raise self.fail(
                f"input file {item.value!r} not found (looked for {str(path)!r})",
                node,
                task_id,
                field,
            ) from None
        except OSError as exc:
            raise self.fail(
                f"cannot read input file {str(path)!r}: {exc.strerror or exc}", node, task_id, field
            ) from None
        self.carried += len(data)
        self.file_uses[str(path)] = self.file_uses.get(str(path), 0) + 1
        return TaskInput(InputKind.FILE, item.value, data)

    def timeout(self, node: Node, task_id: str | None) -> float | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not (isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT)):
            shown = f" ({node.value!r})" if isinstance(node, ScalarNode) else ""
            raise self.fail(f"must be a number of seconds, not {_kind(node)}{shown}", node, task_id, "timeout")
        value = self.scalar_value(node, task_id, "timeout")
        seconds = float(value) if isinstance(value, (int, float)) else math.nan
        problem = timeout_problem(seconds)
        if problem:
            raise self.fail(f"{problem}, not {node.value}", node, task_id, "timeout")
        return seconds

    def retries(self, node: Node, task_id: str | None) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            shown = f" ({node.value})" if isinstance(node, ScalarNode) else ""
            raise self.fail(f"must be a whole number, not {_kind(node)}{shown}", node, task_id, "retries")
        value = self.scalar_value(node, task_id, "retries")
        if not isinstance(value, int) or retries_problem(value):
            raise self.fail(f"{retries_problem(value)}, not {node.value}", node, task_id, "retries")
        return value

    def priority(self, node: Node) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            shown = f" ({node.value})" if isinstance(node, ScalarNode) else ""
            raise self.fail(f"must be a whole number, not {_kind(node)}{shown}", node, None, "priority")
        value = self.scalar_value(node, None, "priority")
        problem = priority_problem(value)
        if not isinstance(value, int) or problem:
            raise self.fail(f"{problem}, not {node.value}", node, None, "priority")
        return value

    def memory(self, node: Node, task_id: str | None) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            shown = f" ({node.value})" if isinstance(node, ScalarNode) else ""
            raise self.fail(f"must be a whole number of MB, not {_kind(node)}{shown}", node, task_id, "memory")
        value = self.scalar_value(node, task_id, "memory")
        if not isinstance(value, int) or memory_problem(value):
            raise self.fail(
                f"{memory_problem(value)} (wasm32 addresses at most 4 GiB), not {node.value}", node, task_id, "memory"
            )
        return value

    def verify(self, node: Node, task_id: str | None) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            shown = f" ({node.value})" if isinstance(node, ScalarNode) else ""
            raise self.fail(
                f"must be a whole number of devices (1: off, 2 to 9: run on that many and compare), "
                f"not {_kind(node)}{shown}",
                node,
                task_id,
                "verify",
            )
        value = self.scalar_value(node, task_id, "verify")
        problem = verify_problem(value)
        if not isinstance(value, int) or problem:
            raise self.fail(f"{problem}, not {node.value}", node, task_id, "verify")
        return value

    def speculate(self, node: Node, task_id: str | None) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            shown = f" ({node.value})" if isinstance(node, ScalarNode) else ""
            raise self.fail(
                f"{speculate_problem(None)} (false: never run a backup copy of this task), not {_kind(node)}{shown}",
                node,
                task_id,
                "speculate",
            )
        value = self.scalar_value(node, task_id, "speculate")
        if not isinstance(value, bool):  # pragma: no cover  (the tag says bool)
            raise self.fail(f"{speculate_problem(value)}, not {node.value}", node, task_id, "speculate")
        return value

    def cache(self, node: Node, task_id: str | None) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            shown = f" ({node.value})" if isinstance(node, ScalarNode) else ""
            raise self.fail(
                f"{cache_problem(None)} (false: always run it, never reuse a cached output), not {_kind(node)}{shown}",
                node,
                task_id,
                "cache",
            )
        value = self.scalar_value(node, task_id, "cache")
        if not isinstance(value, bool):  # pragma: no cover  (the tag says bool)
            raise self.fail(f"{cache_problem(value)}, not {node.value}", node, task_id, "cache")
        return value

    # -- modules

    def module(self, name: str, node: Node, task_id: str) -> str:
        """Find, read and check a module file once; return its sha256 hex."""
        if name in self.module_by_name:
            return self.module_by_name[name]
        if not name:
            raise self.fail("must name a .wasm file", node, task_id, "module")
        try:
            path = locate_module(name, self.base_dir)
            key = path.resolve()
            if key in self.module_by_path:
                self.module_by_name[name] = self.module_by_path[key]
                return self.module_by_path[key]
            data = read_module(name, path)
        except ModuleFileError as exc:
            raise self.fail(str(exc), node, task_id, "module") from None
        try:
            check_wasi_command(data, name=name)
        except ModuleError as exc:
            raise self.fail(str(exc), node, task_id, "module") from None
        digest = sha256_hex(data)
        if digest not in self.modules:
            self.carried += len(data)
            if self.carried > MAX_DAG_BYTES:
                raise self.fail(
                    f"module {name!r} takes the DAG over the limit of {MAX_DAG_BYTES} bytes",
                    node,
                    task_id,
                    "module",
                )
            self.modules[digest] = data
        self.module_by_path[key] = self.module_by_name[name] = digest
        return digest


class ModuleFileError(Exception):
    """A module file that cannot be found or read: the one-line message; the caller says where (file, line,
    task) in its own error, for the YAML loader and the Python API alike."""


def locate_module(name: str, base_dir: Path) -> Path:
    """The file a DAG's module `name` is (see `module_candidates`); ModuleFileError saying where it looked."""
    candidates = [Path(name)] if os.path.isabs(name) else module_candidates(base_dir, name)
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        looked = ", ".join(os.path.normpath(c) for c in candidates)
        hint = "" if os.path.isabs(name) else f" (add directories to ${MODULE_PATH_ENV}, {os.pathsep}-separated)"
        raise ModuleFileError(f"module file {name!r} not found; looked in: {looked}{hint}")
    return path


def read_module(name: str, path: Path) -> bytes:
    """The bytes of module `name` found at `path`, refused past MAX_MODULE_BYTES before reading them."""
    try:
        size = path.stat().st_size
        if size > MAX_MODULE_BYTES:
            raise ModuleFileError(f"module {name!r} is {size} bytes, over the limit of {MAX_MODULE_BYTES}")
        return path.read_bytes()
    except OSError as exc:
        raise ModuleFileError(f"cannot read module {str(path)!r}: {exc.strerror or exc}") from None


def module_candidates(base_dir: Path, name: str) -> list[Path]:
    """Where a DAG's relative module `name` may be, in order: beside the DAG, its ../wasm_modules/,
    each directory of $BXTHRE3_MODULE_PATH, then the modules bundled with bxthre3 -- so a DAG written
    anywhere (`bxthre3 dag ... -o /elsewhere/x.yaml`) runs from anywhere."""
    extra = [Path(d) / name for d in os.environ.get(MODULE_PATH_ENV, "").split(os.pathsep) if d.strip()]
    return [base_dir / name, base_dir / ".." / "wasm_modules" / name, *extra, examples.modules_dir() / name]


def _kind(node: Node) -> str:
    """How a node reads to a user: 'a number', 'a list', 'the string ...'."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    return _TYPE_WORDS.get(str(node.tag), "a string" if node.tag == _STR else "a value")


def _implied_edges(tasks: list[TaskSpec], ids: Mapping[str, int]) -> list[TaskSpec]:
    """Add to each task's `depends_on` the tasks its `output_of_...` references read, after the
    ones written (so `depends_on` is optional where a reference already says it). Unknown and
    self references are left for `validate_graph` to report."""
    out = tasks
    output = InputKind.OUTPUT
    for k, task in enumerate(tasks):
        extra: list[str] = []
        deps = task.depends_on
        for item in task.sources:
            if item.kind is output and item.value not in deps and item.value != task.id and item.value in ids:
                if item.value not in extra:
                    extra.append(item.value)
        if extra:
            if out is tasks:
                out = list(tasks)
            out[k] = dataclasses.replace(task, depends_on=task.depends_on + tuple(extra))
    return out
