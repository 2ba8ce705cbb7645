"""The benchmark DAGs run for real (LocalCluster, Wasm3) and match pure-Python references bit for bit.

References follow the definitions in the module sources: mandel_tile.c (IEEE double escape
time, same operations in the same order), matmul_common.h (xorshift32 matrices, int64
product), pwhash_chunk.c (iterated SHA-256). Odd sizes and bad inputs run the modules
directly through the engine, which is quicker than a cluster.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bxthre3.commands.local_cluster import LocalCluster
from bxthre3.dag import workloads
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.wasm import choice as engines
from bxthre3.wasm.wasm3 import run_module
from tests.conftest import ENGINES

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
MODULES = REPO / "wasm_modules"

# ---------------------------------------------------------------------- references


def mandel_pixels(width: int, height: int, max_iter: int, x0: int = 0, y0: int = 0, w: int = 0, h: int = 0) -> bytes:
    """Grey pixels of the rectangle (whole image by default), as mandel_tile.c computes them."""
    w, h = w or width, h or height
    sx = 3.0 / width
    sy = 3.0 / height
    out = bytearray()
    for y in range(y0, y0 + h):
        ci = 1.5 - (y + 0.5) * sy
        for x in range(x0, x0 + w):
            cr = -2.25 + (x + 0.5) * sx
            zr = zi = 0.0
            i = 0
            while i < max_iter:
                zr2 = zr * zr
                zi2 = zi * zi
                if zr2 + zi2 > 4.0:
                    break
                zi = 2.0 * zr * zi + ci
                zr = zr2 - zi2 + cr
                i += 1
            out.append(0 if i >= max_iter else 255 - i * 255 // max_iter)
    return bytes(out)


def pgm(width: int, height: int, pixels: bytes) -> bytes:
    return f"P5\n{width} {height}\n255\n".encode() + pixels


def matrices(n: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    state = seed
    values = []
    for _ in range(2 * n * n):
        state = workloads.xorshift32(state)
        values.append((state >> 16) - 32768)
    a = [values[i * n : (i + 1) * n] for i in range(n)]
    b = [values[n * n + i * n : n * n + (i + 1) * n] for i in range(n)]
    return a, b


def matmul(n: int, seed: int) -> list[list[int]]:
    a, b = matrices(n, seed)
    columns = list(zip(*b, strict=True))
    return [[sum(x * y for x, y in zip(row, col, strict=True)) for col in columns] for row in a]


def checksum_text(c: list[list[int]], tiles: int) -> str:
    n = len(c)
    flat = [v for row in c for v in row]
    total = sum(flat) % 2**64
    signed = total - 2**64 if total >= 2**63 else total
    xor = 0
    for v in flat:
        xor ^= v % 2**64
    return (
        f"n={n} tiles={tiles} sum={signed} xor={xor:016x}\n"
        f"C[0][0]={c[0][0]}\nC[{n // 2}][{n // 3}]={c[n // 2][n // 3]}\nC[{n - 1}][{n - 1}]={c[n - 1][n - 1]}\n"
        "verified=8\n"
    )


def parse_matmul_tile(data: bytes) -> tuple[tuple[int, ...], list[int]]:
    assert data[:4] == b"MMT1"
    header = struct.unpack_from("<5I", data, 4)
    _, i0, i1, j0, j1 = header
    count = (i1 - i0) * (j1 - j0)
    assert len(data) == 24 + 8 * count
    return header, list(struct.unpack_from(f"<{count}q", data, 24))


def pw_digest(password: str, iterations: int) -> str:
    h = hashlib.sha256(password.encode()).digest()
    for _ in range(iterations):
        h = hashlib.sha256(h).digest()
    return h.hex()


# ---------------------------------------------------------------------- running


@pytest.fixture(scope="module", autouse=True, params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs on each engine: `run_module` and the cluster's hosts use it."""
    saved = globals()["run_module"]
    globals()["run_module"] = engines.runner(request.param)
    try:
        yield str(request.param)
    finally:
        globals()["run_module"] = saved


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[LocalCluster]:
    with LocalCluster(hosts=2, cache_dir=tmp_path_factory.mktemp("module-cache"), engine=engine) as c:
        yield c


def run_dag(cluster: LocalCluster, path: Path) -> dict[str, bytes]:
    assert cluster.client is not None
    dag_id = cluster.client.submit(load_dag(path))
    assert cluster.client.wait(dag_id, timeout=120)["state"] == "succeeded"
    res = cluster.client.results(dag_id)
    assert all(t["state"] == "succeeded" for t in res["tasks"])
    return {t["task_id"]: t["output"] for t in res["tasks"]}


def module(name: str) -> bytes:
    return (MODULES / name).read_bytes()


def run_locally(text: str) -> dict[str, bytes]:
    """Run a generated DAG's tasks in order in this process (they are listed topologically)."""
    outputs: dict[str, bytes] = {}
    for task in yaml.safe_load(text)["tasks"]:
        args = [i for i in task["inputs"] if not i.startswith("output_of_")]
        parts = [outputs[i.removeprefix("output_of_")] for i in task["inputs"] if i.startswith("output_of_")]
        env = {"BXTHRE3_INPUT_SIZES": ",".join(str(len(p)) for p in parts), "BXTHRE3_TASK_ID": task["id"]}
        result = run_module(module(task["module"]), args=args, stdin=b"".join(parts), env=env, program_name=task["id"])
        assert result.exit_code == 0, (task["id"], result.error, result.stderr)
        outputs[task["id"]] = result.stdout
    return outputs


# ---------------------------------------------------------------------- the shipped DAGs on a cluster


def test_mandelbrot_dag_image_is_pixel_exact(cluster: LocalCluster) -> None:
    out = run_dag(cluster, DAGS / "mandelbrot.yaml")
    assert out["image"] == pgm(512, 512, mandel_pixels(512, 512, 256))
    # One tile checked on its own too: header then its rectangle.
    tile = out["tile[r=1,c=2]"]
    assert struct.unpack_from("<7I", tile, 4) == (512, 512, 256, 128, 128, 128, 256)
    assert tile[32:] == mandel_pixels(512, 512, 256, 256, 128, 128, 128)


def test_matrix_mul_dag_checksum_and_tiles_match_python(cluster: LocalCluster) -> None:
    out = run_dag(cluster, DAGS / "matrix_mul.yaml")
    c = matmul(128, seed=1)
    assert out["checksum"].decode() == checksum_text(c, tiles=16)
    for task_id in ("tile[r=0,c=0]", "tile[r=1,c=3]", "tile[r=3,c=3]"):
        (n, i0, i1, j0, j1), values = parse_matmul_tile(out[task_id])
        assert n == 128 and i1 - i0 == 32 and j1 - j0 == 32
        assert values == [c[i][j] for i in range(i0, i1) for j in range(j0, j1)]


def test_password_hash_dag_digests_match_hashlib(cluster: LocalCluster) -> None:
    out = run_dag(cluster, DAGS / "password_hash.yaml")
    expected = "".join(f"{pw}\t{pw_digest(pw, 1000)}\n" for pw in workloads.passwords(64, seed=1))
    assert out["digests"].decode() == expected
    first = workloads.passwords(1, seed=1)[0]
    assert out[f"hash[pw={first}]"].decode() == expected.splitlines(keepends=True)[0]


# ---------------------------------------------------------------------- odd sizes, in-process


def test_mandelbrot_uneven_tiles_assemble_exactly() -> None:
    out = run_locally(workloads.mandelbrot_dag(37, 23, 5, 3, max_iter=40))
    assert out["image"] == pgm(37, 23, mandel_pixels(37, 23, 40))


def test_matmul_uneven_tiles_and_other_seed() -> None:
    out = run_locally(workloads.matmul_dag(n=10, tile=4, seed=12345))
    assert out["checksum"].decode() == checksum_text(matmul(10, seed=12345), tiles=9)


def test_pwhash_zero_iterations_is_plain_sha256() -> None:
    out = run_locally(workloads.pwhash_dag(5, 2, iterations=0, seed=3))
    words = workloads.passwords(5, seed=3)
    assert out["digests"].decode() == "".join(f"{w}\t{hashlib.sha256(w.encode()).hexdigest()}\n" for w in words)


def test_sha256_of_long_passwords_crosses_blocks() -> None:
    words = ["a" * 55, "b" * 56, "c" * 64, "d" * 119, "é-ü"]
    result = run_module(module("pwhash_chunk.wasm"), args=["2", *words], stdin=b"", env={})
    assert result.exit_code == 0
    assert result.stdout.decode() == "".join(f"{w}\t{pw_digest(w, 2)}\n" for w in words)


# ---------------------------------------------------------------------- bad inputs


def tile_of(name: str, args: list[str]) -> bytes:
    result = run_module(module(name), args=args, stdin=b"", env={})
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("mandel_tile.wasm", ["512", "512", "0", "0", "128"], "expected 7 arguments"),
        ("mandel_tile.wasm", ["512", "512", "500", "0", "128", "128", "256"], "w must be in [1, 12]"),
        ("mandel_tile.wasm", ["512", "x", "0", "0", "1", "1", "256"], "height must be an integer"),
        ("mandel_tile.wasm", ["512", "512", "0", "0", "1", "1", "0"], "max_iter must be in"),
        ("matmul_tile.wasm", ["128", "0", "0", "32", "0", "32"], "seed must be in"),
        ("matmul_tile.wasm", ["128", "1", "32", "32", "0", "32"], "i1 must be in [33, 128]"),
        ("matmul_check.wasm", ["8", "1", "1"], "expected 1 tiles on stdin, got 0"),
        ("pwhash_chunk.wasm", ["1000"], "expected arguments: iterations password"),
        ("pwhash_chunk.wasm", ["-5", "pw"], "iterations must be an integer"),
        ("pwhash_chunk.wasm", ["1", "a\tb"], "password #1"),
        ("pwhash_collect.wasm", ["2"], "expected 2 chunks on stdin, got 0"),
        ("mandel_assemble.wasm", ["4", "4"], "expected 3 arguments"),
    ],
)
def test_bad_arguments_fail_with_one_line(name: str, args: list[str], message: str) -> None:
    result = run_module(module(name), args=args, stdin=b"", env={"BXTHRE3_INPUT_SIZES": ""})
    assert result.exit_code not in (0, None)
    err = result.stderr.decode()
    assert err.count("\n") == 1 and err.startswith(name.removesuffix(".wasm") + ": ")
    assert message in err


def assemble(tiles: list[bytes], args: list[str]) -> tuple[int | None, str]:
    env = {"BXTHRE3_INPUT_SIZES": ",".join(str(len(t)) for t in tiles)}
    result = run_module(module("mandel_assemble.wasm"), args=args, stdin=b"".join(tiles), env=env)
    return result.exit_code, result.stderr.decode()


def test_mandel_assemble_rejects_gaps_overlaps_and_foreign_tiles() -> None:
    left = tile_of("mandel_tile.wasm", ["8", "4", "0", "0", "4", "4", "20"])
    right = tile_of("mandel_tile.wasm", ["8", "4", "4", "0", "4", "4", "20"])
    assert assemble([left, right], ["8", "4", "2"])[0] == 0
    code, err = assemble([left, left], ["8", "4", "2"])
    assert code == 2 and "overlaps" in err
    code, err = assemble([left], ["8", "4", "1"])
    assert code == 2 and "no tile covers pixel (4,0)" in err
    code, err = assemble([left, right], ["8", "5", "2"])
    assert code == 2 and "8x4 image, not 8x5" in err
    code, err = assemble([left, right[:-1]], ["8", "4", "2"])
    assert code == 2 and "bytes, expected" in err


def test_matmul_check_rejects_missing_and_foreign_tiles() -> None:
    full = tile_of("matmul_tile.wasm", ["4", "1", "0", "4", "0", "4"])
    half = tile_of("matmul_tile.wasm", ["4", "1", "0", "2", "0", "4"])
    other_n = tile_of("matmul_tile.wasm", ["5", "1", "0", "5", "0", "5"])
    for tiles, message in [([half], "no tile covers C[2][0]"), ([other_n], "tile of n=5, not n=4")]:
        env = {"BXTHRE3_INPUT_SIZES": ",".join(str(len(t)) for t in tiles)}
        result = run_module(module("matmul_check.wasm"), args=["4", "1", "1"], stdin=b"".join(tiles), env=env)
        assert result.exit_code == 2 and message in result.stderr.decode()
    # A tile computed from another seed passes the layout checks but not the spot checks.
    env = {"BXTHRE3_INPUT_SIZES": str(len(full))}
    result = run_module(module("matmul_check.wasm"), args=["4", "2", "1"], stdin=full, env=env)
    assert result.exit_code == 1 and "recomputed" in result.stderr.decode()


def test_bxthre3_run_out_writes_the_verified_image(tmp_path: Path, engine: str) -> None:
    """The user-facing path: `bxthre3 run dags/mandelbrot.yaml --out DIR` writes DIR/image.pgm."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", "run", str(DAGS / "mandelbrot.yaml"), "--out", str(tmp_path),
         "--engine", engine],
        capture_output=True, timeout=120, env=subprocess_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"wrote {tmp_path / 'image.pgm'}" in proc.stderr.decode()
    assert (tmp_path / "image.pgm").read_bytes() == pgm(512, 512, mandel_pixels(512, 512, 256))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.pgm"]
