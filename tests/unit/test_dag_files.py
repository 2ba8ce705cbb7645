"""Files in, files out, on the DAG side: `files:` in YAML, the path rules, the wire form of DAGs,
assignments and results, and the scheduler resolving `/in` and `output_of_T/NAME`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgpack
import pytest

from bxthre3.common.errors import DagError, ProtocolError
from bxthre3.common.failures import FailureReason
from bxthre3.common.limits import (
    MAX_NAME_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_OUTPUT_FILES,
    MAX_PATH_BYTES,
    MAX_TASK_INPUT_BYTES,
)
from bxthre3.dag.fields import output_files_problem, path_problem, paths_problem
from bxthre3.dag.spec import DagSpec, InputKind, TaskFile, TaskInput, TaskSpec
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.scheduler import Assign, DagSubmitted, HostJoined, Scheduler, SchedulerConfig, TaskFinished, TaskState
from bxthre3.wire import protocol

MODULES = Path(__file__).resolve().parents[1] / "data" / "dags" / "modules"
OK = (MODULES / "ok.wasm").read_bytes()
OK_SHA = hashlib.sha256(OK).hexdigest()


def write(tmp_path: Path, tasks: str) -> Path:
    (tmp_path / "m.wasm").write_bytes(OK)
    path = tmp_path / "d.yaml"
    path.write_text("name: files\ntasks:\n" + tasks)
    return path


def load_error(path: Path) -> DagError:
    with pytest.raises(DagError) as err:
        load_dag(path)
    assert "\n" not in str(err.value), "one line"
    return err.value


# -- YAML ------------------------------------------------------------------------------


def test_files_map_in_names_to_dag_files_upstream_stdout_and_named_outputs(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.txt").write_bytes(b"palette\x00")
    spec = load_dag(
        write(
            tmp_path,
            """  - id: a
    module: m.wasm
  - id: b
    module: m.wasm
    depends_on: [a]
    inputs: [output_of_a/sub/x.bin, output_of_a, "lit"]
    files:
      in/p.txt: file:data/p.txt
      stdout_of_a: output_of_a
      deep/dir/x: output_of_a/sub/x.bin
""",
        )
    )
    b = spec.task("b")
    assert b.files == (
        TaskFile("in/p.txt", TaskInput(InputKind.FILE, "data/p.txt", b"palette\x00")),
        TaskFile("stdout_of_a", TaskInput(InputKind.OUTPUT, "a")),
        TaskFile("deep/dir/x", TaskInput(InputKind.OUTPUT, "a", output="sub/x.bin")),
    )
    assert b.inputs[0] == TaskInput(InputKind.OUTPUT, "a", output="sub/x.bin")
    assert [i.text for i in b.stdin_inputs] == ["output_of_a/sub/x.bin", "output_of_a"]
    assert b.args == ("lit",)
    assert spec.task("a").files == ()
    # The wire door takes back exactly what the loader made.
    again = DagSpec.from_wire(msgpack.unpackb(msgpack.packb(spec.to_wire()), raw=False))
    assert again.task("b").files == b.files and again.task("b").inputs == b.inputs


def test_a_dag_without_files_keeps_its_wire_form() -> None:
    spec = DagSpec("t", (TaskSpec("a", OK_SHA, "ok.wasm"),), {OK_SHA: OK})
    assert "files" not in spec.to_wire()["tasks"][0], "older controllers read it as before"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ("      /etc/passwd: file:x.txt", "must be relative (no leading '/')"),
        ("      ../up: file:x.txt", "has a '..' component"),
        ("      a/./b: file:x.txt", "has a '.' component"),
        ("      a//b: file:x.txt", "has an empty component"),
        ("      a/: file:x.txt", "has an empty component"),
        ('      "a\\0b": file:x.txt', "contains a NUL character"),
        (f"      {'n' * (MAX_NAME_BYTES + 1)}: file:x.txt", f"has a component over {MAX_NAME_BYTES} bytes"),
        (f"      x: output_of_a/{'/'.join(['d' * 200] * 6)}", f"over the limit of {MAX_PATH_BYTES}"),
        ("      12: file:x.txt", "is a number; quote it"),
        ("      x: hello", "is neither file:PATH, output_of_TASK nor output_of_TASK/NAME"),
        ("      x: [file:x.txt]", "the source is a list"),
        ("      x: output_of_a/", "'output_of_a/': a file name must not be empty"),
        ("      x: output_of_a/../../etc", "has a '..' component"),
        ("      x: file:missing.txt", "input file 'missing.txt' not found"),
        ("      a: file:x.txt\n      a/b: file:x.txt", "'a' cannot be both a file and the directory of 'a/b'"),
    ],
)
def test_bad_files_are_refused_with_file_line_task_and_field(tmp_path: Path, files: str, expected: str) -> None:
    (tmp_path / "x.txt").write_text("x")
    path = write(tmp_path, f"  - id: a\n    module: m.wasm\n  - id: b\n    module: m.wasm\n    depends_on: [a]\n"
                           f"    files:\n{files}\n")  # fmt: skip
    error = load_error(path)
    assert expected in error.message
    assert (error.task, error.field) == ("b", "files")
    assert error.line is not None and 9 <= error.line <= 10
    assert str(error).startswith(f"{path}:{error.line}: task 'b': field 'files': ")


def test_files_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "  - id: a\n    module: m.wasm\n    files: [file:x]\n"))
    assert "must be a mapping of names under /in" in error.message and error.line == 5


@pytest.mark.parametrize("task_b", ["    files: {x: output_of_a/out.txt}\n", "    inputs: [output_of_a/out.txt]\n"])
def test_a_named_output_reference_implies_the_dependency(tmp_path: Path, task_b: str) -> None:
    spec = load_dag(write(tmp_path, "  - id: a\n    module: m.wasm\n  - id: b\n    module: m.wasm\n" + task_b))
    assert spec.tasks[1].depends_on == ("a",)


@pytest.mark.parametrize(
    ("task_b", "field", "expected"),
    [
        ("    files: {x: output_of_nope/out.txt}\n", "files", "reads unknown task 'nope'"),
        ("    files: {x: output_of_b/out.txt}\n", "files", "a task cannot read its own output"),
        ("    inputs: [output_of_a/../x]\n", "inputs", "has a '..' component"),
    ],
)
def test_named_output_references_follow_the_upstream_rule(
    tmp_path: Path, task_b: str, field: str, expected: str
) -> None:
    path = write(tmp_path, "  - id: a\n    module: m.wasm\n  - id: b\n    module: m.wasm\n" + task_b)
    error = load_error(path)
    assert expected in error.message
    assert (error.task, error.field, error.line) == ("b", field, 7)


def test_named_output_of_an_indirect_upstream_task_is_allowed(tmp_path: Path) -> None:
    spec = load_dag(
        write(
            tmp_path,
            "  - id: a\n    module: m.wasm\n  - id: b\n    module: m.wasm\n    depends_on: [a]\n"
            "  - id: c\n    module: m.wasm\n    depends_on: [b]\n    files: {x: output_of_a/f}\n",
        )
    )
    assert spec.task("c").files[0].source == TaskInput(InputKind.OUTPUT, "a", output="f")


# -- path rules ------------------------------------------------------------------------


def test_path_rules() -> None:
    assert path_problem("a/b.c/..d/ü") is None
    assert path_problem("x" * MAX_NAME_BYTES) is None
    assert "over the limit" in (path_problem("ü" * (MAX_PATH_BYTES // 2 + 1)) or "")
    assert paths_problem(["a", "b/c", "b/d"]) is None
    assert "listed twice" in (paths_problem(["a", "a"]) or "")
    assert "both a file and the directory" in (paths_problem(["a/b/c", "a"]) or "")


def test_output_files_problem_tells_limits_from_bad_names() -> None:
    assert output_files_problem({"a/b": b"1", "c": b""}, 10) is None
    message = "output file name '../x' has a '..' component; write a plain relative path like 'dir/name'"
    assert output_files_problem({"../x": b""}, 0) == (message, False)
    assert output_files_problem({"a": b"", "a/b": b""}, 0) is not None
    many = {f"f{i}": b"" for i in range(MAX_OUTPUT_FILES + 1)}
    assert output_files_problem(many, 0) == (f"{MAX_OUTPUT_FILES + 1} files under /out, over the limit of "
                                             f"{MAX_OUTPUT_FILES}", True)  # fmt: skip
    problem = output_files_problem({"a": b"x" * 10}, MAX_OUTPUT_BYTES - 9)
    assert problem is not None and problem[1] and "over the" in problem[0]


# -- the wire door ---------------------------------------------------------------------


def wire_with_files(files: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "tasks": [{"id": "a", "module": OK_SHA, "module_name": "ok.wasm"},
                  {"id": "b", "module": OK_SHA, "module_name": "ok.wasm", "depends_on": ["a"], "files": files}],
        "modules": {OK_SHA: OK},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ("x", "must be a list, not str"),
        (["x"], "file #1 must be a map, not str"),
        ([{"path": 1, "kind": "file", "value": "v"}], "file #1 path must be a string"),
        ([{"path": "../x", "kind": "file", "value": "v"}], "has a '..' component"),
        ([{"path": "x", "kind": "literal", "value": "v"}], "must be a file or an upstream output"),
        ([{"path": "x", "kind": "file", "value": "v", "output": "o"}], "is file but names an output"),
        ([{"path": "x", "kind": "output", "value": "a", "data": b"d"}], "is output but carries data"),
        ([{"path": "x", "kind": "output", "value": "a", "output": "/etc/passwd"}], "must be relative"),
        ([{"path": "x", "kind": "output", "value": "a", "output": 7}], "output must be a string"),
        ([{"path": "x", "kind": "file", "value": "v", "mode": 7}], "unknown file #1 key(s): 'mode'"),
        ([{"path": "x", "kind": "file", "value": "v"}] * 2, "'x' is listed twice"),
        ([{"path": "x", "kind": "output", "value": "c", "output": "o"}], "reads unknown task 'c'"),
    ],
)
def test_hostile_wire_files_are_refused(files: Any, expected: str) -> None:
    with pytest.raises(DagError) as err:
        DagSpec.from_wire(wire_with_files(files))
    assert expected in str(err.value)
    assert (err.value.task, err.value.field) == ("b", "files")


def test_wire_files_count_against_the_submission_size() -> None:
    from bxthre3.common.limits import MAX_DAG_BYTES

    half = b"x" * (MAX_DAG_BYTES // 2)
    files = [{"path": "x", "kind": "file", "value": "v", "data": half},
             {"path": "y", "kind": "file", "value": "v", "data": half}]  # fmt: skip
    with pytest.raises(DagError, match="over the limit of"):
        DagSpec.from_wire(wire_with_files(files))


# -- protocol --------------------------------------------------------------------------


def test_assign_and_result_carry_files_and_old_frames_still_decode() -> None:
    assign = protocol.Assign("d", "t", 1, "ab" * 32, b"", [], b"", [], 5.0, {"a/b.pgm": b"P5\x00"})
    assert protocol.decode(protocol.encode(assign)) == assign
    result = protocol.Result("d", "t", 1, 0, b"out", b"", None, "", 0.5, {"x/y": b"\xff"})
    assert protocol.decode(protocol.encode(result)) == result
    old = msgpack.packb([2, "result", "d", "t", 1, 0, b"out", b"", None, "", 0.5], use_bin_type=True)
    assert protocol.decode(old).files == {}  # type: ignore[attr-defined]
    old_results = msgpack.packb([2, "results", 7, "dag-1"], use_bin_type=True)
    assert protocol.decode(old_results).with_files is False  # type: ignore[attr-defined]


@pytest.mark.parametrize("files", [["a"], {"a": "text, not bytes"}, {"a": None}])
def test_files_of_the_wrong_type_make_the_frame_malformed(files: Any) -> None:
    frame = msgpack.packb([2, "result", "d", "t", 1, 0, b"", b"", None, "", 0.5, files], use_bin_type=True)
    with pytest.raises(ProtocolError, match="field 'files' has the wrong type"):
        protocol.decode(frame)


# -- scheduler -------------------------------------------------------------------------


def pipeline(*tasks: TaskSpec) -> DagSpec:
    return DagSpec("p", tasks, {OK_SHA: OK})


def started(spec: DagSpec) -> tuple[Scheduler, list[Any]]:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0))
    s.handle(DagSubmitted("d", spec, 0.0))
    return s, s.handle(HostJoined("h", "node", 4, 128, 0.0))


def assigns(out: list[Any]) -> dict[str, Assign]:
    return {a.task_id: a for a in out if isinstance(a, Assign)}


def test_in_files_are_resolved_from_the_dag_upstream_stdout_and_named_outputs() -> None:
    spec = pipeline(
        TaskSpec("a", OK_SHA, "ok.wasm", files=(TaskFile("img.pgm", TaskInput(InputKind.FILE, "f", b"P5 data")),)),
        TaskSpec(
            "b", OK_SHA, "ok.wasm",
            inputs=(TaskInput(InputKind.OUTPUT, "a", output="manifest.txt"), TaskInput(InputKind.OUTPUT, "a")),
            depends_on=("a",),
            files=(TaskFile("in/x.pgm", TaskInput(InputKind.OUTPUT, "a", output="sub/x.pgm")),
                   TaskFile("stdout", TaskInput(InputKind.OUTPUT, "a"))),
        ),
    )  # fmt: skip
    s, out = started(spec)
    assert dict(assigns(out)["a"].files or {}) == {"img.pgm": b"P5 data"}
    files = {"sub/x.pgm": b"X", "manifest.txt": b"M\n"}
    out = s.handle(TaskFinished("h", "d", "a", 1, 1.0, output=b"stdout!", files=files))
    b = assigns(out)["b"]
    assert dict(b.files or {}) == {"in/x.pgm": b"X", "stdout": b"stdout!"}
    assert (b.stdin, b.input_sizes) == (b"M\nstdout!", (2, 7))
    assert s.dags["d"].tasks["a"].files == files


def test_tasks_without_files_get_no_files() -> None:
    s, out = started(pipeline(TaskSpec("a", OK_SHA, "ok.wasm")))
    assert assigns(out)["a"].files is None


@pytest.mark.parametrize("where", ["files", "inputs"])
def test_a_named_output_never_written_fails_the_reader_for_good(where: str) -> None:
    ref = TaskInput(InputKind.OUTPUT, "a", output="nope.txt")
    reader = (
        TaskSpec("b", OK_SHA, "ok.wasm", depends_on=("a",), files=(TaskFile("x", ref),))
        if where == "files"
        else TaskSpec("b", OK_SHA, "ok.wasm", depends_on=("a",), inputs=(ref,))
    )
    spec = pipeline(TaskSpec("a", OK_SHA, "ok.wasm"), reader, TaskSpec("c", OK_SHA, "ok.wasm", depends_on=("b",)),
                    TaskSpec("side", OK_SHA, "ok.wasm", depends_on=("a",), retries=3))  # fmt: skip
    s, _ = started(spec)
    out = s.handle(TaskFinished("h", "d", "a", 1, 1.0, output=b"", files={"yes.txt": b"1", "z": b""}))
    assert set(assigns(out)) == {"side"}, "the reader is never sent; its sibling runs"
    dag = s.dags["d"]
    b = dag.tasks["b"]
    assert (b.state, b.reason, b.attempt) == (TaskState.FAILED, FailureReason.MISSING_INPUT, 0)
    assert b.error == (
        "input 'output_of_a/nope.txt': task 'a' wrote no file 'nope.txt' under /out (it wrote 'yes.txt', 'z')"
    )
    assert not FailureReason.MISSING_INPUT.retryable
    assert dag.tasks["c"].state is TaskState.UPSTREAM_FAILED
    s.handle(TaskFinished("h", "d", "side", 1, 2.0))
    assert dag.state.value == "failed" and dict(dag.failures) == {"missing_input": 1}


def test_a_named_output_of_a_task_that_wrote_no_files_says_so() -> None:
    ref = TaskInput(InputKind.OUTPUT, "a", output="out.pgm")
    reader = TaskSpec("b", OK_SHA, "ok.wasm", depends_on=("a",), files=(TaskFile("x", ref),))
    s, _ = started(pipeline(TaskSpec("a", OK_SHA, "ok.wasm"), reader))
    s.handle(TaskFinished("h", "d", "a", 1, 1.0, output=b"text"))
    assert s.dags["d"].tasks["b"].error.endswith("wrote no file 'out.pgm' under /out (it wrote no files)")


def test_the_input_cap_counts_in_files_and_stdin_together() -> None:
    half = MAX_TASK_INPUT_BYTES // 2
    spec = pipeline(
        TaskSpec("a", OK_SHA, "ok.wasm"),
        TaskSpec("b", OK_SHA, "ok.wasm", inputs=(TaskInput(InputKind.OUTPUT, "a"),), depends_on=("a",),
                 files=(TaskFile("x", TaskInput(InputKind.OUTPUT, "a", output="big")),)),
    )  # fmt: skip
    s, _ = started(spec)
    out = s.handle(TaskFinished("h", "d", "a", 1, 1.0, output=b"s" * half, files={"big": b"f" * (half + 1)}))
    assert not assigns(out)
    b = s.dags["d"].tasks["b"]
    assert (b.state, b.reason) == (TaskState.FAILED, FailureReason.INPUT_LIMIT)
    assert b.error.startswith(f"stdin and /in files add up to {2 * half + 1:,} bytes")


def test_a_failed_attempt_keeps_no_files() -> None:
    s, _ = started(pipeline(TaskSpec("a", OK_SHA, "ok.wasm", retries=1)))
    s.handle(TaskFinished("h", "d", "a", 1, 1.0, reason=FailureReason.TRAP, error="boom", files={"x": b"1"}))
    assert s.dags["d"].tasks["a"].files is None


def test_a_file_read_by_many_tasks_over_the_limit_says_each_carries_a_copy_and_what_to_do(tmp_path: Path) -> None:
    """Each task that names a `file:` input carries its own copy in the submission (48 MiB in all): the
    third 20 MiB copy is refused with the way around it; one file too big alone is refused plainly."""
    from bxthre3.common.limits import MAX_DAG_BYTES, MiB

    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(20 * MiB)  # sparse: quick to make and to read
    tasks = "".join(f"  - id: t{i}\n    module: m.wasm\n    inputs: ['file:big.bin']\n" for i in range(3))
    error = load_error(write(tmp_path, tasks))
    assert error.task == "t2" and str(error).endswith(
        f"input file {str(tmp_path / 'big.bin')!r} ({20 * MiB} bytes) takes the DAG over the limit of "
        f"{MAX_DAG_BYTES} bytes; each task that names it carries its own copy (this is use 3): let one task "
        "read it and the others take that task's output (output_of_ID)"
    )
    with open(tmp_path / "huge.bin", "wb") as f:
        f.truncate(MAX_DAG_BYTES + 1)
    alone = load_error(write(tmp_path, "  - id: t\n    module: m.wasm\n    inputs: ['file:huge.bin']\n"))
    assert str(alone).endswith(f"takes the DAG over the limit of {MAX_DAG_BYTES} bytes")
