"""Bundled examples and where a DAG's modules are found: beside it, ../wasm_modules, $BXTHRE3_MODULE_PATH,
then the modules shipped in the package -- so a DAG written anywhere runs from anywhere."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from bxthre3.common.errors import DagError
from bxthre3.dag import examples
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import REPO

MODULES = REPO / "wasm_modules"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dag(path: Path, module: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: d\ntasks:\n  - id: a\n    module: {module}\n")
    return path


def _module_dir(path: Path, source: str) -> Path:
    """A directory holding `m.wasm`, a copy of the repository module `source`."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODULES / source, path / "m.wasm")
    return path


def test_module_path_directories_are_searched_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _module_dir(tmp_path / "one", "noop.wasm"), _module_dir(tmp_path / "two", "inc.wasm")
    monkeypatch.setenv(examples.MODULE_PATH_ENV, os.pathsep.join([str(tmp_path / "missing"), str(second), str(first)]))
    dag = _dag(tmp_path / "elsewhere" / "d.yaml", "m.wasm")
    assert load_dag(dag).tasks[0].module == _sha(MODULES / "inc.wasm")
    shutil.copy(MODULES / "noop.wasm", dag.parent / "m.wasm")  # beside the DAG wins over the path
    assert load_dag(dag).tasks[0].module == _sha(MODULES / "noop.wasm")


def test_bundled_modules_come_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(examples.MODULE_PATH_ENV, raising=False)
    dag = _dag(tmp_path / "anywhere" / "d.yaml", "init.wasm")
    assert load_dag(dag).tasks[0].module == _sha(examples.modules_dir() / "init.wasm")
    shutil.copy(MODULES / "noop.wasm", _module_dir(tmp_path / "mine", "noop.wasm") / "init.wasm")
    monkeypatch.setenv(examples.MODULE_PATH_ENV, str(tmp_path / "mine"))
    assert load_dag(dag).tasks[0].module == _sha(MODULES / "noop.wasm"), "$BXTHRE3_MODULE_PATH before the bundle"


def test_a_module_found_nowhere_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(examples.MODULE_PATH_ENV, str(tmp_path / "lib"))
    with pytest.raises(DagError) as caught:
        load_dag(_dag(tmp_path / "x" / "d.yaml", "nowhere.wasm"))
    message = str(caught.value)
    assert "\n" not in message
    for place in (tmp_path / "x", tmp_path / "wasm_modules", tmp_path / "lib", examples.modules_dir()):
        assert str(place / "nowhere.wasm") in message
    assert "$BXTHRE3_MODULE_PATH" in message


def test_the_bundle_is_the_repository_copy() -> None:
    """In a checkout the package data are links to dags/ and wasm_modules/: one copy to edit."""
    assert examples.dags_dir().resolve() == (REPO / "dags").resolve()
    assert examples.modules_dir().resolve() == (REPO / "wasm_modules").resolve()


def test_every_bundled_dag_is_listed_with_a_description_and_loads() -> None:
    listed = examples.examples()
    assert [e.name for e in listed] == sorted(p.stem for p in (REPO / "dags").glob("*.yaml"))
    for e in listed:
        assert e.description and "\n" not in e.description, e.name
    assert load_dag(examples.find("hello_fanout") or Path("missing")).name == "hello_fanout"


def test_a_name_means_a_bundled_dag_only_when_no_such_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert examples.dag_file(Path("hello_fanout")) == examples.dags_dir() / "hello_fanout.yaml"
    assert examples.dag_file(Path("hello_fanout.yaml")) == examples.dags_dir() / "hello_fanout.yaml"
    (tmp_path / "hello_fanout").write_text("mine")
    assert examples.dag_file(Path("hello_fanout")) == Path("hello_fanout")
    assert examples.dag_file(Path("sub/mandelbrot")) == Path("sub/mandelbrot"), "a path is meant literally"
    with pytest.raises(DagError, match=r"no bundled example has that name \(`bxthre3 examples` lists them\)"):
        examples.dag_file(Path("hello_fanot"))


def test_cli_lists_examples_and_takes_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bxthre3.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["examples"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()] == [e.name for e in examples.examples()]
    assert "bxthre3 run NAME" in err
    assert main(["validate", "mandelbrot"]) == 0
    assert "OK — DAG 'mandelbrot', 17 tasks" in capsys.readouterr().out
    assert main(["validate", "mandelbrt"]) == 2
    assert capsys.readouterr().err.strip() == (
        "bxthre3: error: mandelbrt: DAG file not found, and no bundled example has that name "
        "(`bxthre3 examples` lists them)"
    )
