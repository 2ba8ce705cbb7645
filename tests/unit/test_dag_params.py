"""DAGs that scale without a generator: `params:` and `-p`, `${...}`, `for_each` with `[*]`
references, structured inputs and implied `depends_on`. Every error is asserted whole: one line
naming the file, line, task and field, and saying what fixes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bxthre3.cli import main
from bxthre3.common.errors import DagError
from bxthre3.common.limits import MAX_TASKS_PER_DAG
from bxthre3.dag.spec import InputKind, TaskInput
from bxthre3.dag.templates import TemplateError, substitute
from bxthre3.dag.yaml_loader import load_dag

OK_WASM = Path(__file__).resolve().parents[1] / "data" / "dags" / "modules" / "ok.wasm"


def write(tmp_path: Path, body: str) -> Path:
    shutil.copy(OK_WASM, tmp_path / "m.wasm")
    (tmp_path / "x.txt").write_text("x")
    path = tmp_path / "d.yaml"
    path.write_text("name: d\n" + body)
    return path


def error(tmp_path: Path, body: str, params: dict[str, str] | None = None) -> str:
    path = write(tmp_path, body)
    with pytest.raises(DagError) as err:
        load_dag(path, params=params)
    return str(err.value).replace(str(path), "d.yaml")


# -- substitution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${w}x${h}", "512x256"),
        ("${c * w / cols}", "384"),
        ("${(c + 1) * w / cols - c * w / cols}", "128"),
        ("${-w % 5}", "3"),
        ("${min(w, h) + max(1, 2, 3)}", "259"),
        ("$${w} costs $5 and ${w}", "${w} costs $5 and 512"),
        ("$$", "$$"),
        ("${ w }", "512"),
        ("${name}", "a b"),  # a bare name is its value as written, whatever it is
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, {"w": "512", "h": "256", "c": "3", "cols": "4", "name": "a b"}) == expected


def test_substitute_errors_say_what_to_write() -> None:
    with pytest.raises(TemplateError) as err:
        substitute("${w +}", {"w": "1"})
    assert str(err.value) == (
        "cannot read '${w +}': it ends too early; write a name like ${size} or whole-number arithmetic like "
        '${c * size / cols} (+ - * / % min max), or "$${" for a literal "${"'
    )
    with pytest.raises(TemplateError, match=r"'\$\{9999999999 \* 9999999999 \* 9999999999 \* 9999999999\}' is over 30"):
        substitute("${9999999999 * 9999999999 * 9999999999 * 9999999999}", {})
    with pytest.raises(TemplateError, match="nested deeper than 16 levels"):
        substitute("${" + "(" * 20 + "1" + ")" * 20 + "}", {})


# -- params ----------------------------------------------------------------------------


def test_params_defaults_overrides_and_where_they_apply(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "description: ${n} copies\n"
        'params:\n  n: 2\n  t: 30\n  word: hello\n  twice: "${n * 2}"\n'
        'defaults: {retries: "${n}"}\n'
        "tasks:\n  - id: a_${word}\n    module: ${word}.wasm\n    timeout: ${t}\n"
        '    inputs: ["${word}", "${twice}", "$${word}"]\n    files: {"${word}.txt": "file:${word}.txt"}\n',
    )
    (tmp_path / "hello.wasm").write_bytes(OK_WASM.read_bytes())
    (tmp_path / "hello.txt").write_text("hi")
    spec = load_dag(path)
    [task] = spec.tasks
    assert spec.description == "2 copies"
    assert (task.id, task.module_name, task.timeout, task.retries) == ("a_hello", "hello.wasm", 30.0, 2)
    assert task.args == ("hello", "4", "${word}")
    assert task.files[0].path == "hello.txt" and task.files[0].source.data == b"hi"
    (tmp_path / "bye.wasm").write_bytes(OK_WASM.read_bytes())
    (tmp_path / "bye.txt").write_text("bye")
    [task] = load_dag(path, params={"word": "bye", "n": "5", "t": "1.5"}).tasks
    assert (task.id, task.timeout, task.retries, task.args) == ("a_bye", 1.5, 5, ("bye", "10", "${word}"))
    assert load_dag(path, params={"twice": "$x"}).tasks[0].args[1] == "$x"  # a -p value is taken as given


@pytest.mark.parametrize(
    ("body", "params", "expected"),
    [
        (
            "params:\n  size: 4\ntasks:\n  - id: a\n    module: m.wasm\n",
            {"sise": "1"},
            "d.yaml:2: -p sise=...: the DAG has no param 'sise' (did you mean 'size'?); its params are: size",
        ),
        (
            "tasks:\n  - id: a\n    module: m.wasm\n",
            {"x": "1"},
            "d.yaml: -p x=...: the DAG has no param 'x'; it declares none: add params: {x: DEFAULT} to use ${x} in it",
        ),
        (
            'params:\n  size: 4\ntasks:\n  - id: a\n    module: m.wasm\n    inputs: ["${sise}"]\n',
            {},
            "d.yaml:7: task 'a': field 'inputs': unknown name 'sise' in '${sise}' (did you mean 'size'?): "
            "declare it under params: (known here: size), or write $${ for a literal ${",
        ),
        (
            "params:\n  n:\ntasks:\n  - id: a\n    module: m.wasm\n",
            {},
            "d.yaml:3: field 'params': param 'n' has no default and was not given: run with -p n=VALUE, "
            "or give it a default (n: VALUE)",
        ),
        (
            "params:\n  1x: 3\ntasks:\n  - id: a\n    module: m.wasm\n",
            {},
            "d.yaml:3: field 'params': param name '1x' must be letters, digits and '_', not starting with a digit",
        ),
        (
            "params:\n  x: [1]\ntasks:\n  - id: a\n    module: m.wasm\n",
            {},
            "d.yaml:3: field 'params': param 'x': the default must be one value (a string or number), not a list",
        ),
        (
            'params:\n  size: big\ntasks:\n  - id: a\n    module: m.wasm\n    inputs: ["${size + 1}"]\n',
            {},
            "d.yaml:7: task 'a': field 'inputs': 'size' is 'big', not a whole number, so '${size + 1}' cannot "
            "compute with it",
        ),
        (
            'tasks:\n  - id: a\n    module: m.wasm\n    inputs: ["${a"]\n',
            {},
            """d.yaml:5: task 'a': field 'inputs': unclosed "${" in '${a': end it with "}", or write "$${" for a """
            'literal "${"',
        ),
        (
            'params:\n  z: 0\ntasks:\n  - id: a\n    module: m.wasm\n    inputs: ["${1 / z}"]\n',
            {},
            "d.yaml:7: task 'a': field 'inputs': '${1 / z}' divides by zero",
        ),
        (
            "params:\n  t: 30\ntasks:\n  - id: a\n    module: m.wasm\n    timeout: ${t}\n",
            {"t": "soon"},
            "d.yaml:7: task 'a': field 'timeout': must be a number of seconds, not a string ('soon')",
        ),
    ],
    ids=[
        "unknown -p",
        "-p without params",
        "unknown name",
        "no default",
        "bad name",
        "list default",
        "arithmetic on text",
        "unclosed",
        "division by zero",
        "-p not a number",
    ],
)
def test_param_errors(tmp_path: Path, body: str, params: dict[str, str], expected: str) -> None:
    assert error(tmp_path, body, params) == expected


# -- for_each --------------------------------------------------------------------------


def test_for_each_expands_in_order_with_ids_and_star_references(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "params:\n  rows: 2\ntasks:\n"
        '  - id: join\n    module: m.wasm\n    inputs: ["output_of_tile[*]", "output_of_tile[r=0,c=b]/out.txt"]\n'
        '  - id: tile\n    for_each: {r: {range: "${rows}"}, c: [a, b]}\n    module: m.wasm\n'
        '    inputs: ["${r}-${c}", "${r * 10}"]\n'
        '  - id: after\n    module: m.wasm\n    depends_on: ["tile[*]", join]\n',
    )
    spec = load_dag(path)
    tiles = ["tile[r=0,c=a]", "tile[r=0,c=b]", "tile[r=1,c=a]", "tile[r=1,c=b]"]
    assert [t.id for t in spec.tasks] == ["join", *tiles, "after"]
    assert [t.args for t in spec.tasks[1:5]] == [("0-a", "0"), ("0-b", "0"), ("1-a", "10"), ("1-b", "10")]
    join = spec.task("join")
    assert join.inputs == (
        *(TaskInput(InputKind.OUTPUT, t) for t in tiles),
        TaskInput(InputKind.OUTPUT, "tile[r=0,c=b]", output="out.txt"),
    )
    assert join.depends_on == tuple(tiles)  # implied by the references
    assert spec.task("after").depends_on == (*tiles, "join")
    assert [t.id for t in load_dag(path, params={"rows": "1"}).tasks] == ["join", *tiles[:2], "after"]
    # the wire form carries the expanded DAG as it is
    assert type(spec).from_wire(spec.to_wire()).tasks == spec.tasks


def test_for_each_ranges(tmp_path: Path) -> None:
    body = 'params:\n  n: 9\ntasks:\n  - id: t\n    for_each: {i: {range: [1, "${n}", 3]}}\n    module: m.wasm\n'
    assert [t.id for t in load_dag(write(tmp_path, body)).tasks] == ["t[i=1]", "t[i=4]", "t[i=7]"]
    body = "tasks:\n  - id: t\n    for_each: {i: {range: [3, 0, -2]}}\n    module: m.wasm\n"
    assert [t.id for t in load_dag(write(tmp_path, body)).tasks] == ["t[i=3]", "t[i=1]"]


def test_for_each_up_to_the_task_limit(tmp_path: Path) -> None:
    half = MAX_TASKS_PER_DAG // 2
    body = f"tasks:\n  - id: t\n    for_each: {{a: {{range: 2}}, b: {{range: {half}}}}}\n    module: m.wasm\n"
    assert len(load_dag(write(tmp_path, body)).tasks) == MAX_TASKS_PER_DAG


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'tasks:\n  - id: tile\n    for_each: {w: [ok, "a b"]}\n    module: m.wasm\n',
            "d.yaml:4: task 'tile': field 'for_each': 'w': value 'a b' cannot be part of a task id (tile[w=...]): "
            "use letters, digits, '_', '.' and '-'",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: {a: {range: 1000}, b: {range: 1000}}\n    module: m.wasm\n",
            "d.yaml:4: task 'tile': field 'for_each': 1000 x 1000 = 1000000 tasks, over the limit of 100000 in a DAG",
        ),
        (
            "tasks:\n  - id: t\n    for_each: {a: {range: 60000}}\n    module: m.wasm\n"
            "  - id: u\n    for_each: {a: {range: 60000}}\n    module: m.wasm\n",
            "d.yaml:7: task 'u': field 'for_each': makes 60000 tasks, which takes the DAG to 120000, over the limit "
            "of 100000 tasks",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: {r: [0, 1]}\n    module: m.wasm\n"
            "  - id: j\n    module: m.wasm\n    inputs: [output_of_tile]\n",
            "d.yaml:8: task 'j': field 'inputs': input #1 'output_of_tile': 'tile' is a for_each task (2 tasks): "
            "write output_of_tile[*] for all of them, or one of them like output_of_tile[r=0]",
        ),
        (
            "tasks:\n  - id: tile\n    module: m.wasm\n  - id: j\n    module: m.wasm\n"
            '    inputs: ["output_of_tile[*]"]\n',
            "d.yaml:7: task 'j': field 'inputs': input #1 'output_of_tile[*]': 'tile' is not a for_each task, "
            "so it has no [*]",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: {r: [0, 1]}\n    module: m.wasm\n"
            "  - id: j\n    module: m.wasm\n    depends_on: [tile]\n",
            "d.yaml:8: task 'j': field 'depends_on': dependency 'tile': 'tile' is a for_each task (2 tasks): "
            "write tile[*] for all of them, or one of them like tile[r=0]",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: {r: [0, 1]}\n    module: m.wasm\n"
            '  - id: j\n    module: m.wasm\n    files: {x: "output_of_tile[*]"}\n',
            "d.yaml:8: task 'j': field 'files': file 'x': 'output_of_tile[*]' names many tasks, and a file holds "
            "one: name one, like output_of_tile[r=0]",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: {r: {range: [0, 4, 0]}}\n    module: m.wasm\n",
            "d.yaml:4: task 'tile': field 'for_each': 'r': a range step must not be 0",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: {r: {range: [0, 1, 2, 3]}}\n    module: m.wasm\n",
            "d.yaml:4: task 'tile': field 'for_each': 'r': write {range: STOP}, {range: [START, STOP]} or "
            "{range: [START, STOP, STEP]}",
        ),
        (
            'params:\n  n: four\ntasks:\n  - id: tile\n    for_each: {r: {range: "${n}"}}\n    module: m.wasm\n',
            "d.yaml:6: task 'tile': field 'for_each': 'r': a range bound must be a whole number, not 'four'",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: {r: []}\n    module: m.wasm\n",
            "d.yaml:4: task 'tile': field 'for_each': 'r' has no values, so the task would vanish",
        ),
        (
            "params:\n  r: 1\ntasks:\n  - id: tile\n    for_each: {r: [1]}\n    module: m.wasm\n",
            "d.yaml:6: task 'tile': field 'for_each': 'r' is also a param: rename one of them",
        ),
        (
            "tasks:\n  - id: tile\n    for_each: [1, 2]\n    module: m.wasm\n",
            "d.yaml:4: task 'tile': field 'for_each': must map names to lists of values (r: [0, 1]) or ranges "
            "(r: {range: 4}), not a list",
        ),
        (
            'tasks:\n  - id: "t[x=1]"\n    for_each: {r: [1]}\n    module: m.wasm\n',
            "d.yaml:3: task 't[x=1]': field 'id': a for_each task's id must not hold '[': ids get [name=value,...] "
            "added",
        ),
        (
            'tasks:\n  - id: t\n    for_each: {r: [1, 2]}\n    module: m.wasm\n    inputs: ["${q}"]\n',
            "d.yaml:6: task 't[r=1]': field 'inputs': unknown name 'q' in '${q}': declare it under params: "
            "(known here: r), or write $${ for a literal ${",
        ),
    ],
    ids=[
        "bad value",
        "product over limit",
        "total over limit",
        "bare group in inputs",
        "[*] of a plain task",
        "bare group in depends_on",
        "[*] in files",
        "range step 0",
        "range shape",
        "range bound",
        "no values",
        "name is a param",
        "not a mapping",
        "bracket in id",
        "unknown name in an expanded task",
    ],
)
def test_for_each_errors(tmp_path: Path, body: str, expected: str) -> None:
    assert error(tmp_path, body) == expected


def test_the_tasks_of_one_for_each_share_fields_written_without_templates(tmp_path: Path) -> None:
    """Read once for all of them (20,000 tasks), yet each task has its value, a templated field still
    varies, and a bad shared field is reported at the first task as before."""
    body = (
        "tasks:\n  - id: t\n    for_each: {i: {range: 3}}\n    module: m.wasm\n    timeout: 30\n"
        '    retries: "${i}"\n    cache: false\n    verify: 2\n'
    )
    spec = load_dag(write(tmp_path, body))
    assert [(t.timeout, t.retries, t.cache, t.verify) for t in spec.tasks] == [(30, i, False, 2) for i in range(3)]
    body = "tasks:\n  - id: t\n    for_each: {i: {range: 3}}\n    module: m.wasm\n    cache: maybe\n"
    assert error(tmp_path, body) == (
        "d.yaml:6: task 't[i=0]': field 'cache': must be true or false (false: always run it, never reuse a "
        "cached output), not a string (maybe)"
    )
    body = "tasks:\n  - id: t\n    for_each: {i: {range: 3}}\n    module: m.wasm\n    colour: red\n"
    assert error(tmp_path, body).startswith("d.yaml:6: task 't[i=0]': field 'colour': unknown field 'colour'")


# -- structured inputs and implied edges -----------------------------------------------------


def test_structured_inputs(tmp_path: Path) -> None:
    body = (
        "tasks:\n  - id: a\n    module: m.wasm\n  - id: b\n    module: m.wasm\n"
        '    inputs: [{literal: output_of_a}, {literal: "file:x.txt"}, {file: x.txt}, {output: a},'
        " {output: a, file: out/n.txt}]\n"
        "    files: {one: {output: a, file: r.bin}, two: {file: x.txt}}\n"
    )
    b = load_dag(write(tmp_path, body)).task("b")
    assert b.inputs == (
        TaskInput(InputKind.LITERAL, "output_of_a"),
        TaskInput(InputKind.LITERAL, "file:x.txt"),
        TaskInput(InputKind.FILE, "x.txt", b"x"),
        TaskInput(InputKind.OUTPUT, "a"),
        TaskInput(InputKind.OUTPUT, "a", output="out/n.txt"),
    )
    assert [(f.path, f.source) for f in b.files] == [
        ("one", TaskInput(InputKind.OUTPUT, "a", output="r.bin")),
        ("two", TaskInput(InputKind.FILE, "x.txt", b"x")),
    ]
    assert b.depends_on == ("a",)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "inputs: [{text: hi}]",
            "d.yaml:5: task 'a': field 'inputs': input #1: unknown key 'text'; write {output: TASK}, "
            "{output: TASK, file: NAME}, {file: PATH} or {literal: TEXT}",
        ),
        (
            "inputs: [{literal: hi, file: x.txt}]",
            "d.yaml:5: task 'a': field 'inputs': input #1: write {output: TASK}, {output: TASK, file: NAME}, "
            "{file: PATH} or {literal: TEXT}, not a mapping with literal, file",
        ),
        (
            "files: {x: {literal: hi}}",
            "d.yaml:5: task 'a': field 'files': file 'x': write {output: TASK}, {output: TASK, file: NAME} or "
            "{file: PATH}, not a mapping with literal",
        ),
        (
            "inputs: [{literal: 3}]",
            "d.yaml:5: task 'a': field 'inputs': must be a string, not a number; quote it: \"3\"",
        ),
        (
            "inputs: [{output: a}]",
            "d.yaml:5: task 'a': field 'inputs': input 'output_of_a': a task cannot read its own output",
        ),
    ],
)
def test_structured_input_errors(tmp_path: Path, entry: str, expected: str) -> None:
    assert error(tmp_path, f"tasks:\n  - id: a\n    module: m.wasm\n    {entry}\n") == expected


def test_implied_edges_still_find_cycles(tmp_path: Path) -> None:
    body = (
        "tasks:\n  - id: a\n    module: m.wasm\n    inputs: [output_of_b]\n"
        "  - id: b\n    module: m.wasm\n    inputs: [output_of_a]\n"
    )
    assert error(tmp_path, body) == (
        "d.yaml:3: task 'a': field 'depends_on': dependency cycle: a -> b -> a (each task depends on the next)"
    )


# -- the command line ------------------------------------------------------------------


def test_validate_takes_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'params:\n  n:\ntasks:\n  - id: t\n    for_each: {i: {range: "${n}"}}\n    module: m.wasm\n')
    assert main(["validate", str(path), "-p", "n=3", "--param", "n=5"]) == 0  # the last one wins
    assert "5 tasks" in capsys.readouterr().out
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bxthre3: error: {path}:3: field 'params': param 'n' has no default and was not given: "
        "run with -p n=VALUE, or give it a default (n: VALUE)"
    )
    with pytest.raises(SystemExit):
        main(["validate", str(path), "-p", "n"])
    assert "argument -p/--param: expected NAME=VALUE (a name of letters, digits and '_'), not 'n'" in (
        capsys.readouterr().err
    )
