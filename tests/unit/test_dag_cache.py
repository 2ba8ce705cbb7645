"""`cache:` per task (YAML, defaults, wire), the DAG-level `--no-cache` flag on the wire, and the modules
marked as reading time or randomness when a DAG comes through `from_wire`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bxthre3.common.errors import DagError
from bxthre3.dag.spec import DagSpec
from bxthre3.dag.yaml_loader import parse_dag
from tests.conftest import TEST_MODULES, WASM_MODULES

NOOP = WASM_MODULES / "noop.wasm"


def load(text: str) -> DagSpec:
    return parse_dag(text, source="x.yaml", base_dir=Path("."))


def test_cache_defaults_to_true_and_defaults_and_tasks_may_turn_it_off() -> None:
    spec = load(
        f"name: d\ndefaults: {{cache: false}}\ntasks:\n  - {{id: a, module: {NOOP}}}\n"
        f"  - {{id: b, module: {NOOP}, cache: true}}\n"
    )
    assert [(t.id, t.cache) for t in spec.tasks] == [("a", False), ("b", True)]
    assert load(f"name: d\ntasks:\n  - {{id: a, module: {NOOP}}}\n").tasks[0].cache is True


def test_a_bad_value_names_the_task_and_field() -> None:
    with pytest.raises(DagError) as err:
        load(f"name: d\ntasks:\n  - id: a\n    module: {NOOP}\n    cache: maybe\n")
    assert (err.value.task, err.value.field) == ("a", "cache")
    assert "must be true or false (false: always run it, never reuse a cached output)" in err.value.message


def test_the_wire_carries_task_and_dag_flags_and_refuses_bad_ones() -> None:
    spec = load(f"name: d\ntasks:\n  - {{id: a, module: {NOOP}, cache: false}}\n  - {{id: b, module: {NOOP}}}\n")
    wire = spec.to_wire()
    assert wire["tasks"][0]["cache"] is False and "cache" not in wire["tasks"][1] and "cache" not in wire
    assert DagSpec.from_wire(wire).tasks == spec.tasks
    no_cache = {**wire, "cache": False}
    assert DagSpec.from_wire(no_cache).cache is False
    for bad in ({**wire, "cache": 0}, {**wire, "tasks": [{**wire["tasks"][0], "cache": "no"}]}):
        with pytest.raises(DagError, match="must be true or false"):
            DagSpec.from_wire(bad)


def test_from_wire_marks_modules_that_import_clocks_or_random() -> None:
    """wasi_storm imports clock_time_get: its tasks are cached only when seeded; noop imports none."""
    clocky, noop = (TEST_MODULES / "wasi_storm.wasm").read_bytes(), NOOP.read_bytes()
    shas = [hashlib.sha256(m).hexdigest() for m in (clocky, noop)]
    wire = {
        "name": "d",
        "tasks": [
            {"id": "c", "module": shas[0], "module_name": "wasi_storm.wasm"},
            {"id": "n", "module": shas[1], "module_name": "noop.wasm"},
        ],
        "modules": {shas[0]: clocky, shas[1]: noop},
    }
    assert DagSpec.from_wire(wire).volatile_modules == frozenset({shas[0]})
