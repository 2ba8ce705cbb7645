"""A task's `verify:` (replicas on distinct devices) and `speculate:` (backup attempts): YAML, defaults, wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from bxthre3.common.errors import DagError
from bxthre3.dag.fields import MAX_VERIFY, speculate_problem, verify_problem
from bxthre3.dag.spec import DagSpec
from bxthre3.dag.yaml_loader import parse_dag
from tests.conftest import WASM_MODULES

NOOP = WASM_MODULES / "noop.wasm"
TASK = f"name: t\ntasks:\n  - id: a\n    module: {NOOP}\n"


def load(text: str) -> DagSpec:
    return parse_dag(text, source="x.yaml", base_dir=Path("."))


def parse_error(text: str) -> DagError:
    with pytest.raises(DagError) as err:
        load(text)
    return err.value


def test_absent_means_trusted_as_is_and_speculative() -> None:
    task = load(TASK).tasks[0]
    assert (task.verify, task.speculate) == (1, True)


def test_task_fields_are_read() -> None:
    task = load(TASK + "    verify: 3\n    speculate: false\n").tasks[0]
    assert (task.verify, task.speculate) == (3, False)


def test_dag_defaults_fill_what_tasks_leave_out() -> None:
    spec = load(
        f"name: d\ndefaults: {{verify: 2, speculate: false}}\ntasks:\n"
        f"  - {{id: a, module: {NOOP}}}\n"
        f"  - {{id: b, module: {NOOP}, verify: 1, speculate: true}}\n"
        f"  - {{id: c, module: {NOOP}, verify: ~, speculate: ~}}\n"
    )
    assert [(t.id, t.verify, t.speculate) for t in spec.tasks] == [
        ("a", 2, False),
        ("b", 1, True),
        ("c", 2, False),
    ]


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("    verify: 0\n", "verify", "must be a whole number from 1 (off) to 9"),
        ("    verify: -2\n", "verify", "from 1 (off) to 9"),
        ("    verify: two\n", "verify", "must be a whole number of devices (1: off, 2 to 9: run on that many and "),
        ("    verify: two\n", "verify", "not a string (two)"),
        ("    verify: 2.0\n", "verify", "not a number (2.0)"),
        ("    verify: true\n", "verify", "not a boolean"),
        ("    verify: 10\n", "verify", "must be at most 9 (each replica repeats the whole task on another device"),
        ("    verify: [2]\n", "verify", "not a list"),
        ("    speculate: maybe\n", "speculate", "must be true or false"),
        ("    speculate: maybe\n", "speculate", "not a string (maybe)"),
        ("    speculate: 1\n", "speculate", "not a number (1)"),
        ("    verfy: 2\n", "verfy", "unknown field 'verfy' (did you mean 'verify'?)"),
    ],
)
def test_bad_values_name_the_line_task_and_field(extra: str, field: str, words: str) -> None:
    error = parse_error(TASK + extra)
    assert words in error.message, error.message
    assert (error.file, error.line, error.task, error.field) == ("x.yaml", 5, "a", field)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ("{verify: 0}", "field 'verify': must be a whole number from 1 (off) to 9"),
        ("{verify: 12}", "field 'verify': must be at most 9"),
        ("{speculate: maybe}", "field 'speculate': must be true or false"),
    ],
)
def test_bad_defaults_are_named(defaults: str, message: str) -> None:
    error = parse_error(f"name: d\ndefaults: {defaults}\ntasks:\n  - {{id: a, module: {NOOP}}}\n")
    assert message in str(error) and str(error).startswith("x.yaml:2")


def test_the_rules_themselves() -> None:
    assert all(verify_problem(n) is None for n in range(1, MAX_VERIFY + 1))
    assert all(verify_problem(v) for v in (0, MAX_VERIFY + 1, True, 2.0, "2", None))
    assert speculate_problem(True) is None and speculate_problem(False) is None
    assert all(speculate_problem(v) for v in (0, 1, "true", None))


def test_they_survive_the_wire_and_stay_absent_when_default() -> None:
    spec = load(
        f"name: d\ntasks:\n  - {{id: a, module: {NOOP}, verify: 3, speculate: false}}\n  - {{id: b, module: {NOOP}}}\n"
    )
    wire = spec.to_wire()
    assert (wire["tasks"][0]["verify"], wire["tasks"][0]["speculate"]) == (3, False)
    assert "verify" not in wire["tasks"][1] and "speculate" not in wire["tasks"][1]  # as older journals hold them
    again = DagSpec.from_wire(wire)
    assert again.tasks == spec.tasks


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("verify", 0, "from 1 (off) to 9 (N >= 2 runs the task on N distinct devices), not 0"),
        ("verify", 10, "must be at most 9"),
        ("verify", "two", "not 'two'"),
        ("verify", True, "not True"),
        ("verify", None, "not None"),
        ("speculate", "maybe", "must be true or false, not 'maybe'"),
        ("speculate", 1, "must be true or false, not 1"),
    ],
)
def test_the_wire_refuses_what_the_loader_refuses(field: str, value: object, words: str) -> None:
    wire = load(TASK).to_wire()
    wire["tasks"][0][field] = value
    with pytest.raises(DagError) as err:
        DagSpec.from_wire(wire)
    assert words in str(err.value)
    assert (err.value.task, err.value.field) == ("a", field)
