"""The result cache's figure: a 64-tile Mandelbrot DAG run, then resubmitted with one tile changed.

    python benchmarks/result_cache.py [--tiles 8x8] [--hosts 2] [--size 1024] [--max-iter 512]

Prints the first run's time, then what reran and how long the resubmission took with one tile's module
changed (its bytes plus a custom section: a new sha256, so that tile runs again; its pixels are the same,
so the assembling task's inputs are unchanged and it is served from the cache too), then with that tile's C
source edited and rebuilt (one grey level darker: its pixels change, so it and the assembling task rerun;
needs clang for wasm32-wasi, else skipped), and the same DAG resubmitted unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bxthre3.commands.local_cluster import LocalCluster
from bxthre3.dag.spec import DagSpec
from bxthre3.dag.yaml_loader import load_dag

REPO = Path(__file__).resolve().parents[1]


def run(cluster: LocalCluster, spec: DagSpec) -> tuple[float, list[str]]:
    assert cluster.client is not None
    start = time.perf_counter()
    dag_id = cluster.client.submit(spec)
    state = cluster.client.wait(dag_id, interval=0.02)["state"]
    took = time.perf_counter() - start
    tasks = cluster.client.results(dag_id, with_output=False)["tasks"]
    assert state == "succeeded", [(t["task_id"], t["reason"], t["error"]) for t in tasks if t["state"] != "succeeded"]
    return took, [f"{t['task_id']} {t['duration_s']:.3f} s" for t in tasks if not t["cached"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiles", default="8x8")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--max-iter", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mandel.yaml"
        subprocess.run(
            [sys.executable, "-m", "bxthre3", "dag", "mandelbrot", "--width", str(args.size), "--height",
             str(args.size), "--tiles", args.tiles, "--max-iter", str(args.max_iter), "-o", str(path)],
            check=True, capture_output=True,
        )  # fmt: skip
        spec = load_dag(path)
    tile = spec.tasks[len(spec.tasks) // 2]  # a tile in the middle of the image: a costly one
    data = spec.modules[tile.module] + b"\x00\x06\x04edit\x01"  # a custom section: new sha256, same code
    sha = hashlib.sha256(data).hexdigest()
    new_module = dataclasses.replace(tile, module=sha, module_name="mandel_tile_v2.wasm")
    module_edit = dataclasses.replace(
        spec, tasks=tuple(new_module if t.id == tile.id else t for t in spec.tasks), modules={**spec.modules, sha: data}
    )
    variants = [("one tile's module changed, same pixels", module_edit)]
    shaded = shading_edit()
    if shaded is not None:  # a real edit: the tile's C source changed and rebuilt, so its pixels differ
        sha = hashlib.sha256(shaded).hexdigest()
        edited_tile = dataclasses.replace(tile, module=sha, module_name="mandel_tile_shaded.wasm")
        variants.append((
            "one tile's source edited and rebuilt (other pixels)",
            dataclasses.replace(spec, tasks=tuple(edited_tile if t.id == tile.id else t for t in spec.tasks),
                                modules={**spec.modules, sha: shaded}),
        ))  # fmt: skip
    else:
        print("(no clang for wasm32-wasi: the rebuilt-module variant is skipped)")
    variants.append(("unchanged", spec))
    with LocalCluster(hosts=args.hosts) as cluster:
        first, ran = run(cluster, spec)
        print(f"first run: {len(spec.tasks)} tasks, {len(ran)} ran, {first:.2f} s")
        for name, edited in variants:
            took, ran = run(cluster, edited)
            print(f"{name}: reran {len(ran)} ({', '.join(ran)}), {took:.3f} s = {took / first:.1%} of the first run")


def shading_edit() -> bytes | None:
    """mandel_tile.wasm rebuilt from its source with the grey scale shifted by one level (254 for 255), as
    a user editing the tile program would; None when no clang can build for wasm32-wasi here."""
    src = REPO / "wasm_modules" / "src"
    text = (src / "mandel_tile.c").read_text()
    edited = text.replace("(unsigned char)(255u - ", "(unsigned char)(254u - ")
    if edited == text:
        raise SystemExit("mandel_tile.c no longer has the shading line this benchmark edits")
    cc = shutil.which("clang") or shutil.which("clang-19") or shutil.which("clang-14")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mandel_tile.c").write_text(edited)
        out = Path(tmp) / "mandel_tile.wasm"
        build = subprocess.run(
            [cc, "--target=wasm32-wasi", "-Os", "-Wl,--strip-all", f"-I{src}", str(Path(tmp) / "mandel_tile.c"),
             "-o", str(out)],
            capture_output=True, text=True,
        )  # fmt: skip
        return out.read_bytes() if build.returncode == 0 else None


if __name__ == "__main__":
    main()
