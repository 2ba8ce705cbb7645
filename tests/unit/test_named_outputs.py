"""Named outputs after the run: journalled (and restored) by the store, listed by the views,
written by `--out` without ever leaving the directory, re-checked by the controller."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from bxthre3.client.outputs import (
    named_output_path,
    prepare_output_directory,
    stdout_file_name,
    write_final_outputs,
    write_named_outputs,
)
from bxthre3.common.errors import Bxthre3Error
from bxthre3.common.failures import FailureReason
from bxthre3.controller import views
from bxthre3.controller.server import _check_files
from bxthre3.controller.store import INLINE_OUTPUT_BYTES, PrunePolicy, Store
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.scheduler import DagSubmitted, HostJoined, Scheduler, SchedulerConfig, TaskFinished, TaskState
from tests.conftest import WASM_MODULES

MODULE = (WASM_MODULES / "noop.wasm").read_bytes()
SHA = hashlib.sha256(MODULE).hexdigest()
BIG = bytes(range(256)) * (INLINE_OUTPUT_BYTES // 256 + 1)
FILES = {"image.pgm": b"P5\n1 1\n255\n\x00", "thumbs/small.ppm": BIG, "empty": b""}


def finished_dag() -> tuple[Scheduler, DagSpec]:
    spec = DagSpec("j", (TaskSpec("a", SHA, "noop.wasm"), TaskSpec("b", SHA, "noop.wasm")), {SHA: MODULE})
    s = Scheduler(SchedulerConfig())
    s.handle(DagSubmitted("d1", spec, 1000.0))
    s.handle(HostJoined("h", "node", 2, 128, 1000.0))
    s.handle(TaskFinished("h", "d1", "a", 1, 1001.0, output=b"out", files=FILES))
    s.handle(TaskFinished("h", "d1", "b", 1, 1001.0, output=b"no files"))
    return s, spec


def test_named_outputs_survive_a_restart_and_large_ones_live_in_files(tmp_path: Path) -> None:
    s, spec = finished_dag()
    store = Store(tmp_path)
    store.add_dag("d1", spec, 1000.0)
    store.flush(s)
    store.close()
    on_disk = list((tmp_path / "outputs" / "d1" / "+files" / "a").iterdir())
    assert [p.read_bytes() for p in on_disk] == [BIG], "only the large one is a file, named by a digest"
    assert on_disk[0].name == hashlib.sha256(b"thumbs/small.ppm").hexdigest()

    fresh = Scheduler(SchedulerConfig())
    store2 = Store(tmp_path)
    assert store2.load(fresh, now=2000.0) == 1
    tasks = fresh.dags["d1"].tasks
    assert tasks["a"].files == FILES and tasks["a"].state is TaskState.SUCCEEDED
    assert tasks["b"].files is None and tasks["b"].output == b"no files"

    fresh.dags["d1"].finished_at = 0.0
    assert store2.prune(fresh, 2000.0, PrunePolicy(keep=0)) == ["d1"]
    assert store2.db.execute("SELECT COUNT(*) FROM task_files").fetchone() == (0,)
    assert not (tmp_path / "outputs" / "d1").exists()
    store2.close()


def test_in_memory_journal_keeps_files_inline() -> None:
    s, spec = finished_dag()
    store = Store(":memory:")
    store.add_dag("d1", spec, 1000.0)
    store.flush(s)
    rows = store.db.execute("SELECT name, length(data), data_file FROM task_files ORDER BY name").fetchall()
    assert rows == [("empty", 0, None), ("image.pgm", 12, None), ("thumbs/small.ppm", len(BIG), None)]


def test_results_list_named_outputs_by_name_with_size_and_sha256() -> None:
    s, _ = finished_dag()
    dag = s.dags["d1"]
    view = views.results_view(dag, s, 2000.0)
    listed = view["tasks"][0]["files"]
    assert listed == [
        {"name": n, "size": len(FILES[n]), "sha256": hashlib.sha256(FILES[n]).hexdigest()} for n in sorted(FILES)
    ]
    assert view["tasks"][1]["files"] == []
    assert "files" not in views.results_view(dag, s, 2000.0, with_output=False)["tasks"][0]
    full = views.results_view(dag, s, 2000.0, task_id="a", with_files=True)["tasks"][0]["files"]
    assert {f["name"]: f["data"] for f in full} == FILES


def test_out_writes_dir_task_name(tmp_path: Path) -> None:
    entries = [{"name": n, "data": d} for n, d in FILES.items()]
    written = write_named_outputs(tmp_path / "out", "a", entries)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(f"a/{n}" for n in FILES)
    assert (tmp_path / "out" / "a" / "thumbs" / "small.ppm").read_bytes() == BIG


@pytest.mark.parametrize(
    ("task_id", "name"),
    [("a", "../escape"), ("a", "/etc/passwd"), ("a", "x/../../y"), ("..", "x"), ("a/b", "x"), ("a", "x\0y"), ("a", "")],
)
def test_out_never_leaves_the_directory(tmp_path: Path, task_id: str, name: str) -> None:
    with pytest.raises(Bxthre3Error, match="not writing output"):
        named_output_path(tmp_path, task_id, name)
    with pytest.raises(Bxthre3Error):
        write_named_outputs(tmp_path / "out", task_id, [{"name": name, "data": b"x"}])
    assert not (tmp_path / "escape").exists() and not (tmp_path / "y").exists()


def test_out_does_not_follow_a_symlink_left_in_the_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    os.symlink(outside, out / "a" / "sub")
    os.symlink(outside / "target", out / "a" / "file")
    with pytest.raises(Bxthre3Error, match="leads outside"):
        write_named_outputs(out, "a", [{"name": "sub/x", "data": b"x"}])
    with pytest.raises(Bxthre3Error, match="cannot write"):
        write_named_outputs(out, "a", [{"name": "file", "data": b"x"}])
    assert list(outside.iterdir()) == []


def test_the_controller_rechecks_reported_files() -> None:
    assert _check_files(None, "", {"a/b": b"1"}, 3) == (None, "", {"a/b": b"1"})
    reason, error, files = _check_files(None, "", {"../../x": b"1"}, 0)
    assert (reason, files) == (FailureReason.INTERNAL, None)
    assert error.startswith("the host reported an impossible output: output file name '../../x' has a '..'")
    reason, _, files = _check_files(None, "", {f"{i}": b"" for i in range(1001)}, 0)
    assert (reason, files) == (FailureReason.OUTPUT_LIMIT, None)
    assert _check_files(FailureReason.TRAP, "boom", {"x": b"1"}, 0) == (FailureReason.TRAP, "boom", None)


def test_a_stdout_file_named_like_another_tasks_directory_gets_a_name_of_its_own(tmp_path: Path) -> None:
    """Tasks `a` (stdout text) and `a.txt` (named outputs, so `DIR/a.txt/`): both are written; before, the
    second write failed with "Is a directory" and the run lost the rest."""
    spec = DagSpec("c", (TaskSpec("a", SHA, "noop.wasm"), TaskSpec("a.txt", SHA, "noop.wasm")), {SHA: MODULE})
    results: Any = {"tasks": [
        {"task_id": "a", "state": "succeeded", "output": b"hello\n"},
        {"task_id": "a.txt", "state": "succeeded", "output": b"P5\n1 1\n255\n\x00"},
    ]}  # fmt: skip
    written = write_named_outputs(tmp_path, "a.txt", [{"name": "data", "data": b"x"}])
    written += write_final_outputs(spec, results, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == ["a.stdout.txt", "a.txt.pgm", "a.txt/data"]
    assert (tmp_path / "a.stdout.txt").read_bytes() == b"hello\n"
    assert stdout_file_name("a", ".txt", {"a", "b"}) == "a.txt"
    assert stdout_file_name("a", ".txt", {"a", "a.txt", "a.stdout.txt"}) == "a.stdout-2.txt"


def test_an_output_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(Bxthre3Error, match=r"^cannot create output directory .*/file/out: Not a directory$"):
        prepare_output_directory(tmp_path / "file" / "out")
