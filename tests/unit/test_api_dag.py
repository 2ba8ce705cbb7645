"""The `Dag` builder of the Python API: references become dependencies, `to_yaml` loads back to an
equal `DagSpec`, and every mistake is the YAML loader's `DagError` with the loader's message."""

from __future__ import annotations

import dataclasses
import doctest
from pathlib import Path

import pytest

import bxthre3
from bxthre3.api import dag as api_dag
from bxthre3.api.dag import Dag
from bxthre3.common.errors import DagError
from bxthre3.dag.examples import modules_dir
from bxthre3.dag.spec import DagSpec, InputKind, TaskFile, TaskInput
from bxthre3.dag.yaml_loader import load_dag, parse_dag

NOOP = (modules_dir() / "noop.wasm").read_bytes()


def loaded(dag: Dag) -> DagSpec:
    """What the loader makes of `dag.to_yaml()`, as a file in the Dag's base_dir."""
    return parse_dag(dag.to_yaml(), source=dag.source, base_dir=dag.base_dir)


def fanout(base_dir: Path | None = None) -> Dag:
    dag = Dag("fanout", defaults={"timeout": 30, "retries": 1}, description="one to many to one", base_dir=base_dir)
    init = dag.task("init", "init.wasm", args=["Bxthre3"])
    greets = [dag.task(f"greet_{n}", f"greet_{n}.wasm", stdin=[init], retries=3) for n in (1, 2)]
    dag.task("aggregate", "aggregate.wasm", stdin=greets, memory=16, speculate=False)
    return dag


def test_the_package_exports_the_api_lazily() -> None:
    assert bxthre3.Dag is Dag
    assert {"Dag", "Client", "LocalCluster"} <= set(dir(bxthre3))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        bxthre3.Nope  # noqa: B018


def test_references_become_inputs_and_dependencies() -> None:
    spec = fanout().spec()
    agg = spec.task("aggregate")
    assert agg.depends_on == ("greet_1", "greet_2")
    assert [i.text for i in agg.inputs] == ["output_of_greet_1", "output_of_greet_2"]
    assert spec.task("init").args == ("Bxthre3",)
    assert spec.task("greet_1").retries == 3 and spec.task("greet_2").timeout == 30.0
    assert agg.retries == 1 and agg.memory == 16 and agg.speculate is False
    assert len(spec.modules) == 4


def test_to_yaml_loads_to_an_equal_spec() -> None:
    dag = fanout()
    assert loaded(dag) == dag.spec()
    assert "defaults:" in dag.to_yaml()  # defaults stay defaults, not copied into every task


def test_the_example_dag_built_in_python_equals_the_file() -> None:
    path = Path(__file__).resolve().parents[2] / "dags" / "hello_fanout.yaml"
    dag = Dag("hello_fanout", description=load_dag(path).description, base_dir=path.parent)
    init = dag.task("init", "init.wasm", args=["Bxthre3"])
    greets = [dag.task(f"greet_{n}", f"greet_{n}.wasm", stdin=[init]) for n in (1, 2)]
    dag.task("aggregate", "aggregate.wasm", stdin=greets)
    assert dataclasses.replace(load_dag(path), source=dag.source) == dag.spec()


def test_files_named_outputs_and_local_files_round_trip(tmp_path: Path) -> None:
    (tmp_path / "palette.txt").write_text("0 0 0\n")
    dag = Dag("files", base_dir=tmp_path)
    blur = dag.task("blur", "img_filter.wasm", args=["blur", 2], files={"image.pgm": Path("palette.txt")})
    edges = dag.task("edges", "img_filter.wasm", args=["edges"], files={"image.pgm": blur.file("image.pgm")})
    dag.task("report", "img_report.wasm", stdin=[edges.file("image.pgm")], files={"in/all": edges}, after=["blur"])
    spec = dag.spec()
    assert spec.task("blur").files == (TaskFile("image.pgm", TaskInput(InputKind.FILE, "palette.txt", b"0 0 0\n")),)
    assert spec.task("blur").args == ("blur", "2")
    assert spec.task("edges").files[0].source == TaskInput(InputKind.OUTPUT, "blur", output="image.pgm")
    assert spec.task("report").depends_on == ("edges", "blur")
    assert loaded(dag) == spec


def test_map_fans_out_with_ids_that_sort() -> None:
    dag = Dag("tiles")
    tiles = dag.map("tile", "mandel_tile.wasm", over=range(12), args=lambda n: [64, 64, 0, 0, 8, 8, n], retries=2)
    assert [t.id for t in tiles][:3] == ["tile-00", "tile-01", "tile-02"]
    assert dag["tile-11"].spec.args == ("64", "64", "0", "0", "8", "8", "11")
    named = dag.map("m", "noop.wasm", over=["a", "b"], ids=lambda n, item: f"m_{item}", stdin=tiles[:1])
    assert [t.spec.depends_on for t in named] == [("tile-00",), ("tile-00",)]
    assert len(dag) == 14 and loaded(dag) == dag.spec()


def test_a_module_given_as_bytes_is_saved_beside_the_file(tmp_path: Path) -> None:
    dag = Dag("bytes", base_dir=tmp_path)
    task = dag.task("t", NOOP)
    assert task.spec.module_name.endswith(".wasm") and task.spec.module in dag.spec().modules
    path = dag.save(tmp_path / "bytes.yaml")
    assert dataclasses.replace(load_dag(path), source=dag.source) == dag.spec()


# -- the same errors as the YAML loader ------------------------------------------------------------------


def yaml_error(tmp_path: Path, task_fields: str, extra: str = "") -> DagError:
    text = f"name: x\ntasks:\n  - id: a\n    module: noop.wasm\n{task_fields}{extra}"
    with pytest.raises(DagError) as err:
        parse_dag(text, source="x.yaml", base_dir=tmp_path)
    return err.value


def api_error(tmp_path: Path, **kw: object) -> DagError:
    dag = Dag("x", base_dir=tmp_path)
    with pytest.raises(DagError) as err:
        dag.task("a", "noop.wasm", **kw)  # type: ignore[arg-type]
        dag.spec()
    return err.value


@pytest.mark.parametrize(
    ("yaml_field", "kw"),
    [
        ("    timeout: 0\n", {"timeout": 0}),
        ("    timeout: 700000\n", {"timeout": 700000}),
        ("    retries: 101\n", {"retries": 101}),
        ("    memory: 0\n", {"memory": 0}),
        ("    verify: 10\n", {"verify": 10}),
        ("    verify: 0\n", {"verify": 0}),
    ],
)
def test_option_errors_are_the_loaders(tmp_path: Path, yaml_field: str, kw: dict[str, object]) -> None:
    from_yaml, from_api = yaml_error(tmp_path, yaml_field), api_error(tmp_path, **kw)
    assert (from_api.message, from_api.task, from_api.field) == (from_yaml.message, from_yaml.task, from_yaml.field)


def test_graph_and_name_errors_are_the_loaders(tmp_path: Path) -> None:
    from_yaml = yaml_error(tmp_path, "    depends_on: [b]\n", "  - id: b\n    module: noop.wasm\n    depends_on: [a]\n")
    dag = Dag("x", base_dir=tmp_path)
    dag.task("a", "noop.wasm", after=["b"])
    dag.task("b", "noop.wasm", after=["a"])
    with pytest.raises(DagError) as err:
        dag.spec()
    assert err.value.message == from_yaml.message and "a -> b -> a" in err.value.message
    from_yaml = yaml_error(tmp_path, "    depends_on: [ghost]\n")
    assert api_error(tmp_path, after=["ghost"]).message == from_yaml.message
    from_yaml = yaml_error(tmp_path, "    files: {../x: file:y}\n")
    assert api_error(tmp_path, files={"../x": Path("y")}).message == from_yaml.message
    from_yaml = yaml_error(tmp_path, "    files: {a.txt: file:missing}\n")
    assert api_error(tmp_path, files={"a.txt": Path("missing")}).message == from_yaml.message
    with pytest.raises(DagError) as err:
        parse_dag("name: x\ntasks:\n  - id: a\n    module: nope.wasm\n", source="x.yaml", base_dir=tmp_path)
    with pytest.raises(DagError) as err2:
        Dag("x", base_dir=tmp_path).task("a", "nope.wasm")
    assert err2.value.message == err.value.message and err2.value.field == "module"
    with pytest.raises(DagError, match="invalid task id 'a b'"):
        Dag("x").task("a b", "noop.wasm")


def test_mistakes_only_python_can_make(tmp_path: Path) -> None:
    dag = Dag("x", base_dir=tmp_path)
    a = dag.task("a", "noop.wasm")
    with pytest.raises(DagError, match="duplicate task id 'a'"):
        dag.task("a", "noop.wasm")
    with pytest.raises(DagError, match="reads as a reference"):
        dag.task("b", "noop.wasm", args=["output_of_a"])
    with pytest.raises(DagError, match="not a string or number"):
        dag.task("b", "noop.wasm", args=[None])  # type: ignore[list-item]
    with pytest.raises(DagError, match="args must be a list"):
        dag.task("b", "noop.wasm", args="abc")
    with pytest.raises(DagError, match=r"give a task, task.file\(name\) or a pathlib.Path"):
        dag.task("b", "noop.wasm", stdin=["a"])  # type: ignore[list-item]
    with pytest.raises(DagError, match="belongs to another Dag"):
        Dag("y").task("b", "noop.wasm", stdin=[a])
    with pytest.raises(DagError, match="must be a number of seconds"):
        dag.task("b", "noop.wasm", timeout="5")  # type: ignore[arg-type]
    with pytest.raises(DagError, match="must be true or false, not 1"):
        dag.task("b", "noop.wasm", speculate=1)  # type: ignore[arg-type]
    with pytest.raises(DagError, match="unknown field 'timout'"):
        Dag("x", defaults={"timout": 3})
    with pytest.raises(DagError, match="not a WebAssembly|wasm"):
        dag.task("b", b"not wasm")
    with pytest.raises(DagError, match="a DAG needs at least one task"):
        Dag("empty").spec()
    with pytest.raises(DagError, match="output file name"):
        a.file("/abs")


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(api_dag, raise_on_error=False).failed == 0


def test_a_refused_task_leaves_the_dag_as_it_was(tmp_path: Path) -> None:
    dag = Dag("x", base_dir=tmp_path)
    dag.task("a", "init.wasm")
    with pytest.raises(DagError):
        dag.task("b", "noop.wasm", timeout=0)  # noop.wasm was read before the timeout was refused
    with pytest.raises(DagError):
        dag.task("b", NOOP, stdin=["x"])  # type: ignore[list-item]
    assert len(dag) == 1 and len(dag.spec().modules) == 1


def test_cache_option_and_default_round_trip_through_yaml(tmp_path: Path) -> None:
    dag = Dag("cached", defaults={"cache": False}, base_dir=tmp_path)
    (tmp_path / "m.wasm").write_bytes(NOOP)
    a = dag.task("a", "m.wasm", cache=True)
    dag.task("b", "m.wasm", stdin=[a])
    assert [t.cache for t in dag.spec().tasks] == [True, False]
    assert [t.cache for t in loaded(dag).tasks] == [True, False]
    with pytest.raises(DagError, match=r"task 'c': field 'cache': .*, not 'yes'"):
        dag.task("c", "m.wasm", cache="yes")  # type: ignore[arg-type]


def test_a_file_read_by_many_tasks_over_the_limit_says_what_to_do_and_a_refused_task_leaves_no_count(
    tmp_path: Path,
) -> None:
    from bxthre3.common.limits import MiB

    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(20 * MiB)
    dag = Dag("copies", base_dir=tmp_path)
    for i in range(2):
        dag.task(f"t{i}", "greet_1.wasm", stdin=[Path("big.bin")])
    for _ in range(2):  # refused twice alike: the refused task's use is not counted
        with pytest.raises(DagError, match=r"carries its own copy \(this is use 3\): let one task read it"):
            dag.task("t2", "greet_1.wasm", stdin=[Path("big.bin")])
