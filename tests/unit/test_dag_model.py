"""DagSpec and the graph rules: validate_graph, topological_order and the wire door."""

from __future__ import annotations

import copy
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import pytest

from bxthre3.common.errors import DagError
from bxthre3.common.limits import MAX_INPUTS_PER_TASK, MAX_MODULE_BYTES, MAX_TASKS_PER_DAG
from bxthre3.dag import fields
from bxthre3.dag.graph import topological_order, validate_graph
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec
from bxthre3.dag.yaml_loader import parse_dag

MODULES = Path(__file__).resolve().parents[1] / "data" / "dags" / "modules"
OK = (MODULES / "ok.wasm").read_bytes()
OK_SHA = hashlib.sha256(OK).hexdigest()


def out(task_id: str) -> TaskInput:
    return TaskInput(InputKind.OUTPUT, task_id)


def lit(text: str) -> TaskInput:
    return TaskInput(InputKind.LITERAL, text)


def task(task_id: str, *deps: str, inputs: tuple[TaskInput, ...] = ()) -> TaskSpec:
    return TaskSpec(task_id, OK_SHA, "ok.wasm", inputs=inputs, depends_on=deps)


def dag(*tasks: TaskSpec, modules: dict[str, bytes] | None = None) -> DagSpec:
    return DagSpec("t", tasks, {OK_SHA: OK} if modules is None else modules, source="t.yaml")


def fanout() -> DagSpec:
    return DagSpec(
        "fanout",
        (
            TaskSpec("init", OK_SHA, "ok.wasm", (lit("Bxthre3"), TaskInput(InputKind.FILE, "a.txt", b"\x00hi"))),
            TaskSpec("greet_1", OK_SHA, "ok.wasm", (out("init"), lit("x")), ("init",), timeout=30.0, retries=2),
            TaskSpec("greet_2", OK_SHA, "ok.wasm", (out("init"),), ("init",), timeout=1.5),
            TaskSpec(
                "aggregate", OK_SHA, "ok.wasm", (out("greet_1"), out("greet_2"), out("init")), ("greet_1", "greet_2")
            ),
        ),
        {OK_SHA: OK},
        description="fan out, fan in",
    )


# -- the dataclasses -----------------------------------------------------------------


def test_args_and_stdin_inputs_keep_their_order() -> None:
    t = TaskSpec("t", OK_SHA, "ok.wasm", (lit("a"), out("u"), TaskInput(InputKind.FILE, "f", b"F"), lit("b"), out("v")))
    assert t.args == ("a", "b")
    assert [i.value for i in t.stdin_inputs] == ["u", "f", "v"]


def test_spec_is_frozen_and_modules_read_only() -> None:
    modules = {OK_SHA: OK}
    spec = dag(task("a"), modules=modules)
    modules.clear()  # the caller's dict is copied
    assert OK_SHA in spec.modules
    with pytest.raises(TypeError):
        spec.modules["x"] = b""  # type: ignore[index]
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


# -- validate_graph ------------------------------------------------------------------


def test_valid_fanout_passes() -> None:
    validate_graph(fanout())


def test_duplicate_id() -> None:
    with pytest.raises(DagError) as err:
        validate_graph(dag(task("a"), task("b"), task("a")))
    assert (err.value.task, err.value.field) == ("a", "id")
    assert "duplicate task id 'a'" in str(err.value)


def test_unknown_dependency_suggests_a_close_id() -> None:
    with pytest.raises(DagError) as err:
        validate_graph(dag(task("init"), task("b", "inti")))
    assert (err.value.task, err.value.field) == ("b", "depends_on")
    assert "unknown task 'inti' (did you mean 'init'?)" in str(err.value)
    assert str(err.value).startswith("t.yaml: task 'b': field 'depends_on': ")


def test_self_dependency() -> None:
    with pytest.raises(DagError, match="cannot depend on itself") as err:
        validate_graph(dag(task("a", "a")))
    assert err.value.task == "a"


def test_dependency_listed_twice() -> None:
    with pytest.raises(DagError, match="listed twice"):
        validate_graph(dag(task("a"), task("b", "a", "a")))


def test_cycle_prints_the_path() -> None:
    spec = dag(task("start"), task("a", "start", "c"), task("b", "a"), task("c", "b"))
    with pytest.raises(DagError) as err:
        validate_graph(spec)
    assert "dependency cycle: a -> c -> b -> a" in str(err.value)
    assert (err.value.task, err.value.field) == ("a", "depends_on")


def test_cycle_found_from_a_task_downstream_of_it() -> None:
    # 'down' is stuck behind the cycle but not in it; the message shows only the cycle.
    spec = dag(task("down", "y"), task("x", "y"), task("y", "x"))
    with pytest.raises(DagError) as err:
        validate_graph(spec)
    assert "dependency cycle: x -> y -> x" in str(err.value)


def test_unknown_output_target() -> None:
    with pytest.raises(DagError) as err:
        validate_graph(dag(task("init"), task("b", "init", inputs=(out("ghost"),))))
    assert (err.value.task, err.value.field) == ("b", "inputs")
    assert "unknown task 'ghost'" in str(err.value)


def test_output_not_upstream_says_to_add_the_dependency() -> None:
    with pytest.raises(DagError) as err:
        validate_graph(dag(task("init"), task("side"), task("b", "init", inputs=(out("side"),))))
    assert (err.value.task, err.value.field) == ("b", "inputs")
    assert "not upstream" in str(err.value) and "add 'side' to depends_on" in str(err.value)


def test_output_of_a_downstream_task_is_not_upstream() -> None:
    with pytest.raises(DagError, match="not upstream"):
        validate_graph(dag(task("a", inputs=(out("b"),)), task("b", "a")))


def test_transitive_upstream_output_is_fine() -> None:
    validate_graph(dag(task("a"), task("b", "a"), task("c", "b"), task("d", "c", inputs=(out("a"), out("b")))))


def test_upstream_through_a_diamond() -> None:
    spec = dag(
        task("a"),
        task("b", "a"),
        task("c", "a"),
        task("other"),
        task("d", "b", "c", inputs=(out("a"),)),
        task("e", "d", "other", inputs=(out("a"), out("b"), out("c"))),
    )
    validate_graph(spec)
    with pytest.raises(DagError, match="'output_of_c' reads task 'c', which is not upstream") as err:
        validate_graph(dag(task("a"), task("b", "a"), task("c", "a"), task("x", "b", inputs=(out("a"), out("c")))))
    assert err.value.task == "x"


def test_reading_its_own_output() -> None:
    with pytest.raises(DagError, match="cannot read its own output"):
        validate_graph(dag(task("a", inputs=(out("a"),))))


def test_module_must_be_shipped() -> None:
    with pytest.raises(DagError) as err:
        validate_graph(dag(task("a"), modules={}))
    assert (err.value.task, err.value.field) == ("a", "module")


@pytest.mark.one_python  # scale of pure graph code (the recursion limit is the same everywhere)
def test_100k_chain_is_linear_and_iterative() -> None:
    n = 100_000
    tasks = [task("t0")] + [task(f"t{i}", f"t{i - 1}", inputs=(out(f"t{i - 1}"),)) for i in range(1, n)]
    spec = dag(*tasks)
    started = time.perf_counter()
    validate_graph(spec)
    order = topological_order(spec)
    assert order[0] == "t0" and order[-1] == f"t{n - 1}" and len(order) == n
    assert time.perf_counter() - started < 10


@pytest.mark.one_python  # scale of pure graph code (the recursion limit is the same everywhere)
def test_100k_chain_with_indirect_outputs_stays_fast() -> None:
    n = 100_000
    tasks = [task("t0"), task("t1", "t0")]
    tasks += [task(f"t{i}", f"t{i - 1}", inputs=(out(f"t{i - 2}"),)) for i in range(2, n)]
    started = time.perf_counter()
    validate_graph(dag(*tasks))
    assert time.perf_counter() - started < 20


@pytest.mark.one_python  # scale of pure graph code (the recursion limit is the same everywhere)
def test_100k_cycle_is_reported_without_recursion() -> None:
    n = 100_000
    tasks = [task(f"t{i}", f"t{(i - 1) % n}") for i in range(n)]
    with pytest.raises(DagError) as err:
        validate_graph(dag(*tasks))
    assert f"{n + 1 - 16} more" in str(err.value) and "t1 -> t0 (each" in str(err.value) and len(str(err.value)) < 400


def test_topological_order_keeps_file_order_among_ready_tasks() -> None:
    spec = dag(task("z"), task("b", "z"), task("a", "z"), task("end", "a", "b"))
    assert topological_order(spec) == ["z", "b", "a", "end"]
    assert topological_order(fanout()) == ["init", "greet_1", "greet_2", "aggregate"]


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(DagError, match="cycle"):
        topological_order(dag(task("a", "b"), task("b", "a")))


# -- the wire ------------------------------------------------------------------------


def _plain(obj: object) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return obj is None or type(obj) in (str, int, float, bytes)


def test_round_trip() -> None:
    spec = fanout()
    wire = spec.to_wire()
    assert _plain(wire)
    again = DagSpec.from_wire(wire, source="peer")
    assert again.source == "peer"
    assert again.tasks == spec.tasks
    assert dict(again.modules) == dict(spec.modules)
    assert (again.name, again.description) == (spec.name, spec.description)


def test_round_trip_through_msgpack() -> None:
    msgpack = pytest.importorskip("msgpack")
    spec = fanout()
    decoded = msgpack.unpackb(msgpack.packb(spec.to_wire()), raw=False)
    assert DagSpec.from_wire(decoded).tasks == spec.tasks


def _hostile(mutate: Any) -> DagError:
    wire = fanout().to_wire()
    mutate(wire)
    with pytest.raises(DagError) as err:
        DagSpec.from_wire(wire, source="peer")
    return err.value


@pytest.mark.parametrize(
    ("mutate", "task", "field", "words"),
    [
        (lambda w: w.pop("name"), None, "name", "missing"),
        (lambda w: w.update(name=7), None, "name", "must be a string"),
        (lambda w: w.update(name="x\n"), None, "name", "printable"),
        (lambda w: w.update(tasks={}), None, "tasks", "must be a list"),
        (lambda w: w.update(tasks=[]), None, "tasks", "at least one"),
        (lambda w: w.update(modules=[]), None, "modules", "must be a map"),
        (lambda w: w.update(extra=1), None, None, "unknown top-level key"),
        (lambda w: w.update({1: 2}), None, None, "unknown top-level key"),
        (lambda w: w["tasks"].__setitem__(0, "x"), "#1", None, "must be a map"),
        (lambda w: w["tasks"][0].pop("id"), "#1", "id", "missing"),
        (lambda w: w["tasks"][0].update(id=b"init"), "#1", "id", "must be a string"),
        (lambda w: w["tasks"][0].update(id="../etc"), "#1", "id", "invalid task id"),
        (lambda w: w["tasks"][0].update(id="x" * 200), "#1", "id", "over the limit"),
        (lambda w: w["tasks"][1].update(bogus=1), "greet_1", None, "unknown task key"),
        (lambda w: w["tasks"][1].update(module="ab" * 32), "greet_1", "module", "not among"),
        (lambda w: w["tasks"][1].update(module="XYZ"), "greet_1", "module", "sha256"),
        (lambda w: w["tasks"][1].update(module=None), "greet_1", "module", "must be a string"),
        (lambda w: w["tasks"][1].pop("module_name"), "greet_1", "module_name", "missing"),
        (lambda w: w["tasks"][1].update(inputs="x"), "greet_1", "inputs", "must be a list"),
        (lambda w: w["tasks"][1].update(inputs=[[1]]), "greet_1", "inputs", "must be a map"),
        (lambda w: w["tasks"][1].update(inputs=[{"kind": "rpc", "value": "x"}]), "greet_1", "inputs", "kind"),
        (lambda w: w["tasks"][1].update(inputs=[{"kind": ["x"], "value": "x"}]), "greet_1", "inputs", "kind"),
        (lambda w: w["tasks"][1].update(inputs=[{"kind": "literal", "value": 3}]), "greet_1", "inputs", "string"),
        (
            lambda w: w["tasks"][1].update(inputs=[{"kind": "literal", "value": "x", "data": b"smuggled"}]),
            "greet_1",
            "inputs",
            "carries data",
        ),
        (
            lambda w: w["tasks"][1].update(inputs=[{"kind": "file", "value": "f", "data": "s"}]),
            "greet_1",
            "inputs",
            "bytes",
        ),
        (lambda w: w["tasks"][1].update(inputs=[{"kind": "output", "value": "a b"}]), "greet_1", "inputs", "invalid"),
        (lambda w: w["tasks"][1].update(depends_on="init"), "greet_1", "depends_on", "must be a list"),
        (lambda w: w["tasks"][1].update(depends_on=[None]), "greet_1", "depends_on", "string"),
        (lambda w: w["tasks"][1].update(depends_on=["nope"]), "greet_1", "depends_on", "unknown task"),
        (lambda w: w["tasks"][1].update(timeout="30"), "greet_1", "timeout", "number"),
        (lambda w: w["tasks"][1].update(timeout=True), "greet_1", "timeout", "number"),
        (lambda w: w["tasks"][1].update(timeout=float("nan")), "greet_1", "timeout", "> 0"),
        (lambda w: w["tasks"][1].update(timeout=-1), "greet_1", "timeout", "> 0"),
        (lambda w: w["tasks"][1].update(retries=1.0), "greet_1", "retries", "integer"),
        (lambda w: w["tasks"][1].update(retries=-1), "greet_1", "retries", "between"),
        (lambda w: w["tasks"][1].update(retries=2**70), "greet_1", "retries", "between"),
        (lambda w: w["tasks"][3].update(depends_on=["greet_1"]), "aggregate", "inputs", "not upstream"),
        (lambda w: w["modules"].update({1: b""}), None, "modules", "not a sha256"),
        (lambda w: w["modules"].update({OK_SHA: "text"}), None, "modules", "must be bytes"),
        (lambda w: w["modules"].update({"0" * 64: b""}), None, "modules", "not used"),
        (lambda w: w["modules"].update({OK_SHA: OK + b"\x00"}), "init", "module", "does not match its sha256"),
    ],
)
def test_from_wire_rejects_hostile_fields(mutate: Any, task: str | None, field: str | None, words: str) -> None:
    error = _hostile(mutate)
    assert words in str(error)
    assert error.file == "peer"
    assert (error.task, error.field) == (task, field)


def test_from_wire_rejects_non_dict() -> None:
    for obj in (None, [], "dag", 3, b"x"):
        with pytest.raises(DagError, match="must be a map"):
            DagSpec.from_wire(obj)


def _module_with_sha(data: bytes) -> Any:
    digest = hashlib.sha256(data).hexdigest()

    def mutate(w: dict[str, Any]) -> None:
        w["modules"] = {digest: data}
        for t in w["tasks"]:
            t["module"] = digest

    return mutate


def test_from_wire_rejects_a_module_that_is_not_wasm() -> None:
    error = _hostile(_module_with_sha(b"#!/bin/sh\nrm -rf /\n"))
    assert (error.task, error.field) == ("init", "module")
    assert "not a WebAssembly module" in str(error)


def test_from_wire_rejects_unsupported_imports() -> None:
    error = _hostile(_module_with_sha((MODULES / "bad_imports.wasm").read_bytes()))
    assert "env.evil" in str(error) and error.field == "module"


def test_from_wire_rejects_a_reactor() -> None:
    error = _hostile(_module_with_sha((MODULES / "no_start.wasm").read_bytes()))
    assert "_start" in str(error)


def test_from_wire_rejects_huge_counts_before_looking_at_items() -> None:
    error = _hostile(lambda w: w.update(tasks=[0] * (MAX_TASKS_PER_DAG + 1)))
    assert error.field == "tasks" and "over the limit" in str(error)
    error = _hostile(lambda w: w["tasks"][1].update(inputs=[0] * (MAX_INPUTS_PER_TASK + 1)))
    assert error.field == "inputs" and "over the limit" in str(error)
    error = _hostile(lambda w: w["tasks"][1].update(depends_on=[0] * (MAX_INPUTS_PER_TASK + 1)))
    assert error.field == "depends_on" and "over the limit" in str(error)


def test_from_wire_rejects_an_oversized_module() -> None:
    big = OK + bytes(MAX_MODULE_BYTES)
    error = _hostile(_module_with_sha(big))
    assert "bytes" in str(error) and error.field == "modules"


def test_from_wire_rejects_oversized_file_inputs() -> None:
    blob = {"kind": "file", "value": "f", "data": bytes(20 * 1024 * 1024)}
    error = _hostile(lambda w: w["tasks"][0].update(inputs=[blob, blob, blob]))
    assert "over the limit" in str(error)


_JUNK: list[object] = [
    None,
    True,
    0,
    -1,
    2**64,
    1.5,
    float("inf"),
    "",
    "x",
    "init",
    b"",
    b"\x00asm",
    [],
    [None],
    {},
    {"k": 1},
]


def _replace_random_node(obj: Any, rng: random.Random) -> Any:
    """Swap one randomly chosen value somewhere in a wire dict for junk."""
    if isinstance(obj, dict) and obj and rng.random() < 0.8:
        key = rng.choice(list(obj))
        obj[key] = _replace_random_node(obj[key], rng)
        return obj
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        i = rng.randrange(len(obj))
        obj[i] = _replace_random_node(obj[i], rng)
        return obj
    return copy.deepcopy(rng.choice(_JUNK))


def test_random_wire_corruption_only_raises_dag_error() -> None:
    rng = random.Random(2024)
    base = fanout().to_wire()
    for _ in range(1500):
        wire = copy.deepcopy(base)
        for _ in range(rng.randrange(1, 4)):
            wire = _replace_random_node(wire, rng)
        if rng.random() < 0.2 and isinstance(wire, dict):
            wire[rng.choice(["timeout", "id", 5, ("t",)])] = rng.choice(_JUNK)
        try:
            DagSpec.from_wire(wire)
        except DagError:
            pass


def test_a_long_cycle_is_shortened_to_one_readable_line() -> None:
    from bxthre3.dag.graph import _cycle_text

    ids = [f"t{i}" for i in range(1000)] + ["t0"]
    text = _cycle_text(ids)
    assert text.startswith("t0 -> t1 -> ") and text.endswith("t998 -> t999 -> t0")
    assert "... 985 more ..." in text and len(text) < 200
    assert _cycle_text(["a", "b", "a"]) == "a -> b -> a"


def test_error_messages_escape_control_characters() -> None:
    from bxthre3.common.errors import DagError

    message = str(DagError("bad id", file="x.yaml", task="evil\u202e\x1b[2Jid\n"))
    assert "\u202e" not in message and "\x1b" not in message and "\n" not in message
    assert "\\u202e" in message and "\\x1b" in message


# -- one rule for timeout, retries and memory ----------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("timeout", 604800, None),
        ("timeout", 604800.5, "must be seconds > 0 and <= 604800"),
        ("timeout", 0, "must be seconds > 0 and <= 604800"),
        ("retries", 100, None),
        ("retries", 101, "must be between 0 and 100"),
        ("retries", -1, "must be between 0 and 100"),
        ("memory", 4096, None),
        ("memory", 4097, "must be between 1 and 4096 MB"),
        ("memory", 0, "must be between 1 and 4096 MB"),
    ],
)
def test_yaml_and_wire_form_share_one_rule_per_task_field(field: str, value: float, rule: str | None) -> None:
    """The YAML loader and the controller's wire door ask `dag.fields.<field>_problem`: same bounds, same words."""
    assert getattr(fields, f"{field}_problem")(value) == rule
    wire = dag(task("a")).to_wire()
    wire["tasks"][0][field] = value
    yaml_text = f"name: t\ntasks:\n  - id: a\n    module: ok.wasm\n    {field}: {value}\n"
    if rule is None:
        assert getattr(DagSpec.from_wire(wire).tasks[0], field) == value
        assert getattr(parse_dag(yaml_text, source="t.yaml", base_dir=MODULES).tasks[0], field) == value
        return
    for load in (lambda: DagSpec.from_wire(wire), lambda: parse_dag(yaml_text, source="t.yaml", base_dir=MODULES)):
        with pytest.raises(DagError) as err:
            load()
        assert (err.value.field, rule in str(err.value)) == (field, True)
