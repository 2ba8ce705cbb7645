"""The benchmark DAG generators (bxthre3/dag/workloads.py): shapes, ids, coverage, CLI."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bxthre3.common.errors import DagError
from bxthre3.dag import workloads
from bxthre3.dag.spec import DagSpec
from bxthre3.dag.yaml_loader import load_dag, parse_dag

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def tasks_of(text: str) -> list[dict]:
    return yaml.safe_load(text)["tasks"]


def rectangles(tasks: list[dict], start: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of every tile task, from args `start`..`start+3` = x0 y0 w h or i0 i1 j0 j1."""
    return [tuple(int(a) for a in t["inputs"][start : start + 4]) for t in tasks]  # type: ignore[misc]


def assert_exact_cover(cells: list[set[tuple[int, int]]], width: int, height: int) -> None:
    seen: set[tuple[int, int]] = set()
    for part in cells:
        assert not seen & part, "tiles overlap"
        seen |= part
    assert seen == {(x, y) for x in range(width) for y in range(height)}


# ---------------------------------------------------------------------- helpers


@pytest.mark.parametrize(("total", "parts"), [(512, 4), (37, 5), (7, 7), (1, 1), (100, 3)])
def test_split_range_covers_exactly_with_near_equal_parts(total: int, parts: int) -> None:
    spans = workloads.split_range(total, parts)
    assert len(spans) == parts
    assert spans[0][0] == 0 and spans[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    sizes = {end - start for start, end in spans}
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_split_range_refuses_more_parts_than_items() -> None:
    with pytest.raises(ValueError):
        workloads.split_range(3, 4)


def test_blocks_last_block_is_shorter() -> None:
    assert workloads.blocks(100, 32) == [(0, 32), (32, 64), (64, 96), (96, 100)]


@pytest.mark.parametrize(("text", "grid"), [("4x4", (4, 4)), ("3X2", (3, 2)), ("1x10", (1, 10))])
def test_parse_grid(text: str, grid: tuple[int, int]) -> None:
    assert workloads.parse_grid(text) == grid


@pytest.mark.parametrize("text", ["4", "x4", "4x", "0x4", "-1x2", "axb", "4x4x4"])
def test_parse_grid_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="COLSxROWS"):
        workloads.parse_grid(text)


def test_xorshift32_matches_the_published_sequence_from_1() -> None:
    state, seen = 1, []
    for _ in range(3):
        state = workloads.xorshift32(state)
        seen.append(state)
    assert seen == [270369, 67634689, 2647435461]


def test_passwords_are_deterministic_and_plain() -> None:
    words = workloads.passwords(100, seed=7)
    assert words == workloads.passwords(100, seed=7)
    assert words != workloads.passwords(100, seed=8)
    assert all(8 <= len(w) <= 12 and set(w) <= set("abcdefghijklmnopqrstuvwxyz0123456789") for w in words)
    assert workloads.passwords(3, seed=1) == ["n79rqkgfep98", "f7eavbl3hls", "bqh4le32"]


# ---------------------------------------------------------------------- mandelbrot


@pytest.mark.parametrize(("width", "height", "cols", "rows"), [(512, 512, 4, 4), (37, 23, 5, 3), (9, 1, 9, 1)])
def test_mandelbrot_tiles_cover_the_image_exactly(width: int, height: int, cols: int, rows: int) -> None:
    tasks = tasks_of(workloads.mandelbrot_dag(width, height, cols, rows, max_iter=50))
    tiles, image = tasks[:-1], tasks[-1]
    assert len(tiles) == cols * rows
    for t in tiles:
        assert t["module"] == "mandel_tile.wasm"
        assert t["inputs"][:2] == [str(width), str(height)] and t["inputs"][-1] == "50"
    cells = [{(x, y) for x in range(x0, x0 + w) for y in range(y0, y0 + h)} for x0, y0, w, h in rectangles(tiles, 2)]
    assert_exact_cover(cells, width, height)
    assert image["id"] == "image" and image["module"] == "mandel_assemble.wasm"
    ids = [t["id"] for t in tiles]
    assert image["inputs"] == [str(width), str(height), str(len(ids))] + [f"output_of_{i}" for i in ids]
    assert image["depends_on"] == ids


def test_mandelbrot_ids_are_zero_padded_row_major() -> None:
    ids = [t["id"] for t in tasks_of(workloads.mandelbrot_dag(64, 64, 12, 2, 10))][:-1]
    assert ids[:2] == ["tile_r0_c00", "tile_r0_c01"] and ids[-1] == "tile_r1_c11"
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width"),
        ({"width": 4, "cols": 5}, "tile columns"),
        ({"max_iter": 0}, "max_iter"),
        ({"width": 8192, "height": 8192}, "output budget"),
        ({"width": 200, "height": 200, "cols": 101, "rows": 100}, "inputs per task"),
    ],
)
def test_mandelbrot_rejects_bad_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        workloads.mandelbrot_dag(**kwargs)


# ---------------------------------------------------------------------- matmul


@pytest.mark.parametrize(("n", "tile"), [(128, 32), (10, 4), (5, 5), (7, 1)])
def test_matmul_tiles_cover_c_exactly(n: int, tile: int) -> None:
    tasks = tasks_of(workloads.matmul_dag(n, tile, seed=3))
    tiles, check = tasks[:-1], tasks[-1]
    per_side = -(-n // tile)
    assert len(tiles) == per_side**2
    assert all(t["inputs"][:2] == [str(n), "3"] for t in tiles)
    cells = [{(i, j) for i in range(i0, i1) for j in range(j0, j1)} for i0, i1, j0, j1 in rectangles(tiles, 2)]
    assert_exact_cover(cells, n, n)
    ids = [t["id"] for t in tiles]
    assert check["id"] == "checksum" and check["module"] == "matmul_check.wasm"
    assert check["inputs"] == [str(n), "3", str(len(ids))] + [f"output_of_{i}" for i in ids]
    assert check["depends_on"] == ids


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 0}, "n must"), ({"n": 2000}, "n must"), ({"tile": 200}, "tile"), ({"seed": 0}, "seed")],
)
def test_matmul_rejects_bad_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        workloads.matmul_dag(**kwargs)


# ---------------------------------------------------------------------- pwhash


@pytest.mark.parametrize(("count", "chunk"), [(64, 8), (10, 3), (1, 1), (5, 5)])
def test_pwhash_chunks_hold_every_password_once_in_order(count: int, chunk: int) -> None:
    tasks = tasks_of(workloads.pwhash_dag(count, chunk, iterations=7, seed=9))
    chunks, collect = tasks[:-1], tasks[-1]
    assert len(chunks) == -(-count // chunk)
    assert all(t["inputs"][0] == "7" and 1 <= len(t["inputs"]) - 1 <= chunk for t in chunks)
    assert [w for t in chunks for w in t["inputs"][1:]] == workloads.passwords(count, seed=9)
    ids = [t["id"] for t in chunks]
    assert collect["id"] == "digests" and collect["module"] == "pwhash_collect.wasm"
    assert collect["inputs"] == [str(len(ids))] + [f"output_of_{i}" for i in ids]


def test_pwhash_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="chunk"):
        workloads.pwhash_dag(4, 5)
    with pytest.raises(ValueError, match="iterations"):
        workloads.pwhash_dag(iterations=-1)


# ---------------------------------------------------------------------- shipped DAGs and CLI


def shape(spec: DagSpec) -> list[tuple[str, tuple[str, ...], tuple[int, ...], frozenset[int]]]:
    """What a DAG runs, ids aside: per task its module, argv and the positions of the tasks it reads
    and waits for -- equal shapes run the same modules on the same bytes, so give the same outputs."""
    where = {t.id: n for n, t in enumerate(spec.tasks)}
    return [
        (
            t.module_name,
            t.args,
            tuple(where[i.value] for i in t.stdin_inputs),
            frozenset(where[d] for d in t.depends_on),
        )
        for t in spec.tasks
    ]


@pytest.mark.parametrize(
    ("name", "params", "text"),
    [
        ("mandelbrot.yaml", {}, workloads.mandelbrot_dag()),
        ("mandelbrot.yaml", {"width": "37", "height": "23", "cols": "5", "rows": "3", "max_iter": "40"},
         workloads.mandelbrot_dag(37, 23, 5, 3, 40)),
        ("mandelbrot.yaml", {"width": "64", "height": "64", "cols": "12", "rows": "2"},
         workloads.mandelbrot_dag(64, 64, 12, 2)),
        ("matrix_mul.yaml", {}, workloads.matmul_dag()),
        ("matrix_mul.yaml", {"n": "10", "tile": "4", "seed": "12345"}, workloads.matmul_dag(10, 4, 12345)),
        ("matrix_mul.yaml", {"n": "100", "tile": "32", "seed": "3"}, workloads.matmul_dag(100, 32, 3)),
    ],
)  # fmt: skip
def test_shipped_param_dags_run_what_the_generators_write(name: str, params: dict[str, str], text: str) -> None:
    shipped = load_dag(DAGS / name, params=params)
    generated = parse_dag(text, source=name, base_dir=DAGS)
    assert shape(shipped) == shape(generated)
    assert shipped.description == generated.description


def test_shipped_password_dag_hashes_what_the_generator_writes() -> None:
    shipped = load_dag(DAGS / "password_hash.yaml")
    generated = parse_dag(workloads.pwhash_dag(), source="g", base_dir=DAGS)
    *hashes, digests = shipped.tasks
    assert [t.args for t in hashes] == [("1000", pw) for pw in workloads.passwords(64, seed=1)]
    assert [t.args[1:] for t in generated.tasks[:-1]] == [
        tuple(workloads.passwords(64, seed=1)[k : k + 8]) for k in range(0, 64, 8)
    ]
    assert digests.args == ("64",) and [i.value for i in digests.stdin_inputs] == [t.id for t in hashes]
    assert hashes[0].id == "hash[pw=n79rqkgfep98]"
    assert load_dag(DAGS / "password_hash.yaml", params={"iterations": "0"}).tasks[0].args == ("0", "n79rqkgfep98")


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bxthre3")
    workloads.register_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_prints_yaml_with_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["dag", "matmul"]) == 0
    assert capsys.readouterr().out == workloads.matmul_dag()


def test_cli_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.yaml"
    assert run_cli(["dag", "mandelbrot", "--width", "30", "--height", "20", "--tiles", "3x2", "-o", str(out)]) == 0
    assert out.read_text() == workloads.mandelbrot_dag(30, 20, 3, 2, 256)
    assert "7 tasks" in capsys.readouterr().err


def test_cli_bad_size_is_a_dag_error() -> None:
    with pytest.raises(DagError, match="pwhash: chunk"):
        run_cli(["dag", "pwhash", "--passwords", "2", "--chunk", "3"])


def test_importing_workloads_is_cheap() -> None:
    heavy = ("yaml", "zmq", "wasm3", "msgpack")
    code = f"import sys, bxthre3.dag.workloads; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
