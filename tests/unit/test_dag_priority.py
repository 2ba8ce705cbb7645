"""A DAG's `priority:`: read from YAML with a one-line error, carried on the wire and in the journal
(absent means 0, so old submissions and state dirs still load), overridden by `--priority`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bxthre3.cli import build_parser
from bxthre3.common.errors import DagError
from bxthre3.controller.store import spec_blob
from bxthre3.dag.spec import DagSpec
from bxthre3.dag.yaml_loader import parse_dag

DAGS = Path(__file__).resolve().parents[1] / "data" / "dags"
TASKS = "tasks:\n  - id: a\n    module: modules/ok.wasm\n"


def parse(top: str) -> DagSpec:
    return parse_dag(f"name: t\n{top}{TASKS}", source="x.yaml", base_dir=DAGS)


def test_priority_defaults_to_zero_and_is_read_from_the_top_level() -> None:
    assert parse("").priority == 0
    assert parse("priority: 7\n").priority == 7
    assert parse("priority: -3\n").priority == -3


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1001", "between -1000 and 1000, not 1001"),
        ("-1001", "between -1000 and 1000"),
        ("1.5", "must be a whole number, not a number (1.5)"),
        ("high", "must be a whole number, not a string (high)"),
        ("true", "not a boolean"),
        ("[1]", "not a list"),
    ],
)
def test_a_bad_priority_is_one_line_naming_file_line_and_field(value: str, words: str) -> None:
    with pytest.raises(DagError) as err:
        parse(f"description: d\npriority: {value}\n")
    error = err.value
    assert words in error.message, error.message
    assert (error.file, error.line, error.task, error.field) == ("x.yaml", 3, None, "priority")
    assert "\n" not in str(error)


def test_priority_survives_the_wire_and_absent_means_zero() -> None:
    spec = parse("priority: 4\n")
    wire = spec.to_wire()
    assert wire["priority"] == 4 and DagSpec.from_wire(wire).priority == 4
    plain = parse("").to_wire()
    assert "priority" not in plain, "a default DAG's wire form is what older versions sent"
    assert DagSpec.from_wire(plain).priority == 0


@pytest.mark.parametrize("bad", [True, 1.0, "1", 5000, None])
def test_a_submission_with_a_bad_priority_is_refused(bad: object) -> None:
    wire = parse("").to_wire()
    wire["priority"] = bad
    with pytest.raises(DagError) as err:
        DagSpec.from_wire(wire)
    assert err.value.field == "priority"


def test_the_journal_copy_keeps_the_priority() -> None:
    import zlib

    import msgpack

    spec = parse("priority: -2\n")
    wire = msgpack.unpackb(zlib.decompress(spec_blob(spec)), raw=False)
    wire["modules"] = dict(spec.modules)
    assert DagSpec.from_wire(wire).priority == -2


@pytest.mark.parametrize("command", ["submit", "run"])
def test_priority_option(command: str) -> None:
    parser = build_parser()
    assert parser.parse_args([command, "x.yaml"]).priority is None
    assert parser.parse_args([command, "x.yaml", "--priority", "-5"]).priority == -5
    with pytest.raises(SystemExit):
        parser.parse_args([command, "x.yaml", "--priority", "1001"])
