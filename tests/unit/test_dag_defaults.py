"""DAG-level `defaults:` for timeout, retries and memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from bxthre3.common.errors import DagError
from bxthre3.dag.yaml_loader import parse_dag
from tests.conftest import WASM_MODULES

NOOP = WASM_MODULES / "noop.wasm"


def load(text: str) -> dict:
    spec = parse_dag(text, source="d.yaml", base_dir=Path("."))
    return {t.id: (t.timeout, t.retries, t.memory) for t in spec.tasks}


def test_defaults_fill_what_tasks_leave_out() -> None:
    tasks = load(
        f"name: d\ndefaults: {{timeout: 5, retries: 0, memory: 64}}\ntasks:\n"
        f"  - {{id: a, module: {NOOP}}}\n"
        f"  - {{id: b, module: {NOOP}, timeout: 9, retries: 2, memory: 256}}\n"
    )
    assert tasks == {"a": (5.0, 0, 64), "b": (9.0, 2, 256)}


def test_no_defaults_leaves_the_cluster_defaults() -> None:
    assert load(f"name: d\ntasks:\n  - {{id: a, module: {NOOP}}}\n") == {"a": (None, None, None)}


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ("{timeout: -1}", "field 'timeout': must be seconds > 0"),
        ("{retries: many}", "field 'retries': must be a whole number"),
        ("{memory: 99999}", "field 'memory': must be between 1 and 4096"),
        ("{timout: 5}", "unknown field 'timout' (did you mean 'timeout'?)"),
        ("[5]", "defaults must be a mapping"),
    ],
)
def test_bad_defaults_are_named(defaults: str, message: str) -> None:
    with pytest.raises(DagError) as err:
        load(f"name: d\ndefaults: {defaults}\ntasks:\n  - {{id: a, module: {NOOP}}}\n")
    assert message in str(err.value) and str(err.value).startswith("d.yaml:2")
