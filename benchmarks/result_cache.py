"""The result cache's figure: a 64-tile Mandelbrot DAG run, then resubmitted with one tile changed.

    python benchmarks/result_cache.py [--tiles 8x8] [--hosts 2] [--size 1024] [--max-iter 512]

Prints the first run's time, then what reran and how long the resubmission took with one tile's module
changed (its bytes plus a custom section: a new sha256, so that tile runs again; its pixels are the same,
so the assembling task's inputs are unchanged and it is served from the cache too), and the same DAG
resubmitted unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bxthre3.commands.local_cluster import LocalCluster
from bxthre3.dag.spec import DagSpec
from bxthre3.dag.yaml_loader import load_dag


def run(cluster: LocalCluster, spec: DagSpec) -> tuple[float, list[str]]:
    assert cluster.client is not None
    start = time.perf_counter()
    dag_id = cluster.client.submit(spec)
    state = cluster.client.wait(dag_id, interval=0.02)["state"]
    took = time.perf_counter() - start
    tasks = cluster.client.results(dag_id, with_output=False)["tasks"]
    assert state == "succeeded", [(t["task_id"], t["reason"], t["error"]) for t in tasks if t["state"] != "succeeded"]
    return took, [t["task_id"] for t in tasks if not t["cached"]]


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
    with LocalCluster(hosts=args.hosts) as cluster:
        first, ran = run(cluster, spec)
        print(f"first run: {len(spec.tasks)} tasks, {len(ran)} ran, {first:.2f} s")
        for name, edited in (("one tile's module changed", module_edit), ("unchanged", spec)):
            took, ran = run(cluster, edited)
            print(f"{name}: reran {len(ran)} ({', '.join(ran)}), {took:.3f} s = {took / first:.1%} of the first run")


if __name__ == "__main__":
    main()
