"""Loading DAG YAML files: one fixture per problem in tests/data/dags/, each error
naming the file, the line, the task and the field."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import pytest

from bxthre3.common.errors import DagError
from bxthre3.dag import yaml_loader as dag_loader
from bxthre3.dag.graph import topological_order
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput
from bxthre3.dag.yaml_loader import load_dag, parse_dag

DAGS = Path(__file__).resolve().parents[1] / "data" / "dags"
OK = (DAGS / "modules" / "ok.wasm").read_bytes()
OK_SHA = hashlib.sha256(OK).hexdigest()


def load_error(fixture: str) -> DagError:
    path = DAGS / fixture
    with pytest.raises(DagError) as err:
        load_dag(path)
    error = err.value
    assert error.file == str(path)
    assert str(error).startswith(f"{path}:{error.line}: " if error.line else f"{path}: ")
    return error


# -- the valid DAG ---------------------------------------------------------------------


def test_valid_fanout() -> None:
    spec = load_dag(DAGS / "valid_fanout.yaml")
    assert spec.name == "valid_fanout"
    assert spec.description == "a fan-out and fan-in over one module"
    assert spec.source == str(DAGS / "valid_fanout.yaml")
    assert [t.id for t in spec.tasks] == ["init", "greet_1", "greet_2", "aggregate"]
    assert dict(spec.modules) == {OK_SHA: OK}  # four tasks, one module, read once
    init, greet_1, greet_2, aggregate = spec.tasks
    assert init.module == OK_SHA and init.module_name == "modules/ok.wasm"
    assert init.args == ("Bxthre3",)
    assert init.stdin_inputs == (TaskInput(InputKind.FILE, "inputs/names.txt", b"Ada\nGrace\n"),)
    assert greet_1.inputs == (TaskInput(InputKind.OUTPUT, "init"), TaskInput(InputKind.LITERAL, "hello"))
    assert (greet_1.timeout, greet_1.retries) == (30.0, 2)
    assert (greet_2.timeout, greet_2.retries) == (1.5, None)
    assert aggregate.depends_on == ("greet_1", "greet_2", "init")  # init: implied by output_of_init
    assert [i.value for i in aggregate.stdin_inputs] == ["greet_1", "greet_2", "init"]
    assert topological_order(spec) == ["init", "greet_1", "greet_2", "aggregate"]


def test_a_reference_implies_its_dependency() -> None:
    spec = load_dag(DAGS / "valid_implied_dependency.yaml")  # b reads output_of_side without depends_on: [side]
    assert spec.task("b").depends_on == ("init", "side")


def test_loaded_dag_survives_the_wire() -> None:
    spec = load_dag(DAGS / "valid_fanout.yaml")
    again = DagSpec.from_wire(spec.to_wire())
    assert again.tasks == spec.tasks and dict(again.modules) == dict(spec.modules)


# -- one fixture per problem ---------------------------------------------------------

CASES = [
    # fixture, line, task, field, words the message must contain
    ("yaml_syntax.yaml", 5, None, None, "invalid YAML"),
    ("missing_name.yaml", 1, None, "name", "missing required field 'name'"),
    ("missing_tasks.yaml", 1, None, "tasks", "missing required field 'tasks'"),
    ("empty_tasks.yaml", 2, None, "tasks", "at least one task"),
    ("missing_id.yaml", 5, "#2", "id", "missing required field 'id'"),
    ("bad_id.yaml", 3, "has space", "id", "invalid task id 'has space'"),
    ("missing_module.yaml", 5, "b", "module", "missing required field 'module'"),
    ("module_not_found.yaml", 6, "b", "module", "module file 'nowhere.wasm' not found; looked in:"),
    ("duplicate_id.yaml", 7, "a", "id", "duplicate task id 'a' (first defined on line 3)"),
    ("unknown_dependency.yaml", 7, "b", "depends_on", "unknown task 'inti' (did you mean 'init'?)"),
    ("depends_not_list.yaml", 7, "b", "depends_on", "must be a list"),
    ("cycle.yaml", 7, "a", "depends_on", "dependency cycle: a -> c -> b -> a"),
    ("self_dependency.yaml", 7, "loop", "depends_on", "cannot depend on itself"),
    ("unknown_output_target.yaml", 7, "b", "inputs", "'output_of_ghost' reads unknown task 'ghost'"),
    ("not_wasm.yaml", 4, "a", "module", "not a WebAssembly module (starts with 'This is '"),
    ("bad_imports.yaml", 6, "evil_task", "module", "unsupported imports: env.evil;"),
    ("no_start.yaml", 4, "lib", "module", "no '_start' export"),
    ("unknown_field.yaml", 5, "a", "depend_on", "unknown field 'depend_on' (did you mean 'depends_on'?)"),
    ("unknown_top_field.yaml", 2, None, "taks", "unknown field 'taks' (did you mean 'tasks'?)"),
    ("non_string_input.yaml", 5, "a", "inputs", "input #2 is a number (42), not a string; quote it"),
    (
        "bool_input.yaml",
        5,
        "a",
        "inputs",
        'input #1 is a boolean (yes), not a string; quote it to pass it as text: "yes"',
    ),
    ("file_input_missing.yaml", 5, "a", "inputs", "input file 'inputs/absent.txt' not found"),
    ("bad_timeout.yaml", 5, "a", "timeout", "must be seconds > 0"),
    ("bad_retries.yaml", 5, "a", "retries", "must be a whole number, not a number (1.5)"),
    ("bad_memory.yaml", 5, "a", "memory", "must be between 1 and 4096 MB (wasm32 addresses at most 4 GiB), not 8192"),
    ("duplicate_key.yaml", 6, None, None, "duplicate key 'inputs' (first on line 5)"),
    ("alias_bomb.yaml", 3, None, None, "YAML aliases (*a) are not supported"),
    ("deep_nesting.yaml", 5, None, None, "nested deeper than"),
    ("two_documents.yaml", 5, None, None, "only one YAML document"),
    ("empty.yaml", None, None, None, "the file is empty"),
]


@pytest.mark.parametrize(("fixture", "line", "task", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_error_fixture(fixture: str, line: int | None, task: str | None, field: str | None, words: str) -> None:
    error = load_error(fixture)
    assert words in error.message
    assert (error.line, error.task, error.field) == (line, task, field)
    if task is not None:
        assert f"task '{task}'" in str(error)
    if field is not None:
        assert f"field '{field}'" in str(error)


def test_every_fixture_is_covered() -> None:
    fixtures = {p.name for p in DAGS.glob("*.yaml")} - {"valid_fanout.yaml", "valid_implied_dependency.yaml"}
    assert fixtures == {c[0] for c in CASES}


def test_module_not_found_lists_where_it_looked() -> None:
    error = load_error("module_not_found.yaml")
    assert str(DAGS / "nowhere.wasm") in error.message
    assert str(DAGS.parent / "wasm_modules" / "nowhere.wasm") in error.message


def test_file_input_missing_names_the_resolved_path() -> None:
    assert str(DAGS / "inputs" / "absent.txt") in load_error("file_input_missing.yaml").message


# -- module resolution -----------------------------------------------------------------


def write_dag(path: Path, module: str, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: t\ntasks:\n  - id: a\n    module: {module}\n{extra}")
    return path


def test_module_found_in_sibling_wasm_modules(tmp_path: Path) -> None:
    (tmp_path / "wasm_modules").mkdir()
    (tmp_path / "wasm_modules" / "m.wasm").write_bytes(OK)
    spec = load_dag(write_dag(tmp_path / "dags" / "d.yaml", "m.wasm"))
    assert spec.tasks[0].module == OK_SHA


def test_module_next_to_the_dag_wins(tmp_path: Path) -> None:
    (tmp_path / "wasm_modules").mkdir()
    (tmp_path / "wasm_modules" / "m.wasm").write_bytes(b"not used")
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "m.wasm").write_bytes(OK)
    assert load_dag(write_dag(tmp_path / "dags" / "d.yaml", "m.wasm")).tasks[0].module == OK_SHA


def test_absolute_module_path(tmp_path: Path) -> None:
    module = tmp_path / "elsewhere" / "m.wasm"
    module.parent.mkdir()
    module.write_bytes(OK)
    assert load_dag(write_dag(tmp_path / "d.yaml", str(module))).tasks[0].module == OK_SHA


def test_module_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "m.wasm").mkdir()
    with pytest.raises(DagError, match="not found"):
        load_dag(write_dag(tmp_path / "d.yaml", "m.wasm"))


# -- files and text ------------------------------------------------------------------


def test_missing_dag_file(tmp_path: Path) -> None:
    with pytest.raises(DagError, match="DAG file not found") as err:
        load_dag(tmp_path / "nope.yaml")
    assert err.value.file == str(tmp_path / "nope.yaml")


def test_oversized_yaml_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dag_loader, "MAX_YAML_BYTES", 50)
    path = write_dag(tmp_path / "d.yaml", "m.wasm", "    inputs: [" + "'x', " * 20 + "]\n")
    with pytest.raises(DagError, match="over the limit"):
        load_dag(path)
    with pytest.raises(DagError, match="over the limit"):
        parse_dag(path.read_text(), source="s", base_dir=tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_bytes(b"name: t\ntasks: \xff\n")
    with pytest.raises(DagError, match="not UTF-8") as err:
        load_dag(path)
    assert err.value.line == 2


def test_parse_dag_uses_source_and_base_dir() -> None:
    text = "name: t\ntasks:\n  - id: a\n    module: modules/ok.wasm\n    inputs: [file:inputs/names.txt]\n"
    spec = parse_dag(text, source="<stdin>", base_dir=DAGS)
    assert spec.source == "<stdin>"
    assert spec.tasks[0].inputs[0].data == b"Ada\nGrace\n"
    with pytest.raises(DagError) as err:
        parse_dag(text.replace("names", "gone"), source="<stdin>", base_dir=DAGS)
    assert str(err.value).startswith("<stdin>:5: task 'a': field 'inputs': ")


def parse_error(text: str) -> DagError:
    with pytest.raises(DagError) as err:
        parse_dag(text, source="x.yaml", base_dir=DAGS)
    return err.value


TASK = "name: t\ntasks:\n  - id: a\n    module: modules/ok.wasm\n"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("    timeout: '30'\n", "timeout", "must be a number of seconds, not a string ('30')"),
        ("    timeout: 0\n", "timeout", "> 0"),
        ("    timeout: .inf\n", "timeout", "> 0"),
        ("    timeout: [1]\n", "timeout", "not a list"),
        ("    retries: true\n", "retries", "not a boolean"),
        ("    retries: -1\n", "retries", "between 0 and"),
        ("    retries: " + "9" * 5000 + "\n", "retries", "cannot read value"),
        ("    inputs: [~]\n", "inputs", 'write "" for an empty string'),
        ("    inputs: [[x]]\n", "inputs", "is a list"),
        ("    inputs: [2024-01-01]\n", "inputs", "a date"),
        ("    inputs: ['file:']\n", "inputs", "needs a path"),
        ("    inputs: x\n", "inputs", "must be a list"),
        ("    depends_on: [1]\n", "depends_on", "must be a string"),
        ("    depends_on: ['a b']\n", "depends_on", "invalid task id"),
        ("    inputs: [output_of_a]\n", "inputs", "cannot read its own output"),
    ],
)
def test_field_errors(extra: str, field: str, words: str) -> None:
    error = parse_error(TASK + extra)
    assert words in error.message
    assert (error.file, error.line, error.task, error.field) == ("x.yaml", 5, "a", field)


def test_null_optional_fields_mean_absent() -> None:
    spec = parse_dag(TASK + "    inputs:\n    depends_on:\n    timeout:\n    retries: ~\n", source="x", base_dir=DAGS)
    task = spec.tasks[0]
    assert (task.inputs, task.depends_on, task.timeout, task.retries) == ((), (), None, None)


def test_quoted_numbers_and_empty_strings_are_inputs() -> None:
    spec = parse_dag(TASK + "    inputs: ['42', \"\", 'true']\n", source="x", base_dir=DAGS)
    assert spec.tasks[0].args == ("42", "", "true")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- a\n- b\n", "the top level must be a mapping"),
        ("name: 5\ntasks: []\n", 'must be a string, not a number; quote it: "5"'),
        ("name: ''\ntasks: []\n", "printable"),
        ("name: t\ntasks: {}\n", "must be a list"),
        ("name: t\ntasks: [5]\n", "task #1 must be a mapping"),
        ("name: t\n[a]: 1\n", "mapping key must be a plain value"),
        ("name: !!python/object:os.system x\n", "unsupported YAML tag"),
        ("name: !custom x\n", "unsupported YAML tag"),
        ("name: t\ntasks:\n  - id: a\n\tmodule: x\n", "invalid YAML"),
        ("name: t\x00\n", "invalid YAML"),
        ("name: t\ndescription: [x]\ntasks: []\n", "must be a string"),
    ],
)
def test_structure_errors(text: str, words: str) -> None:
    assert words in parse_error(text).message


def test_yaml_error_reports_the_line() -> None:
    error = parse_error("name: t\ntasks:\n  - id: a\n    module: x\n   bad: indentation\n")
    assert error.line == 5 and "invalid YAML" in error.message


def test_billion_laughs_in_text_is_refused_fast() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    started = time.perf_counter()
    error = parse_error("\n".join(lines) + "\n")
    assert "aliases" in error.message and error.line == 2
    assert time.perf_counter() - started < 1


def test_a_million_open_brackets_do_not_crash_the_process() -> None:
    # libyaml's C composer recurses per level and segfaults on this; we never compose. Whether our
    # depth check or PyYAML's own (6.0.4 added one to its scanner) stops it first is PyYAML's business:
    # either way it is a one-line error on line 1 about nesting.
    error = parse_error("a: " + "[" * 1_000_000 + "]" * 1_000_000)
    assert error.line == 1 and "nest" in error.message.lower() and "\n" not in error.message


def test_many_tasks_load_reasonably_fast(tmp_path: Path) -> None:
    (tmp_path / "ok.wasm").write_bytes(OK)
    n = 5_000
    body = "".join(
        f"  - id: t{i}\n    module: ok.wasm\n    inputs: [output_of_t{i - 1}]\n    depends_on: [t{i - 1}]\n"
        for i in range(1, n)
    )
    path = tmp_path / "big.yaml"
    path.write_text("name: big\ntasks:\n  - id: t0\n    module: ok.wasm\n" + body)
    started = time.perf_counter()
    spec = load_dag(path)
    assert len(spec.tasks) == n and len(spec.modules) == 1
    assert time.perf_counter() - started < 10


def test_random_edits_of_a_valid_file_only_raise_dag_error() -> None:
    text = (DAGS / "valid_fanout.yaml").read_text()
    alphabet = list(":-[]{}&*!|>'\"#\n \t,?%@`0123456789abcxyz~.") + ["\x00", "\ufeff", "\u2028"]
    rng = random.Random(5)
    for _ in range(1000):
        chars = list(text)
        for _ in range(rng.randrange(1, 5)):
            op, position = rng.random(), rng.randrange(len(chars))
            if op < 0.4:
                chars[position] = rng.choice(alphabet)
            elif op < 0.7:
                chars.insert(position, rng.choice(alphabet))
            else:
                del chars[position]
        try:
            parse_dag("".join(chars), source="fuzz.yaml", base_dir=DAGS)
        except DagError:
            pass
