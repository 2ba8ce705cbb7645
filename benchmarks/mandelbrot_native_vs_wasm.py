"""How much Wasm3 costs on a compute kernel, and what a second host buys end to end.

    python benchmarks/mandelbrot_native_vs_wasm.py [--repeat 3] [--no-cluster]

1. Compiles wasm_modules/src/mandel_tile.c natively (gcc -O2 -ffp-contract=off, the same
   source the module is built from) into a temporary directory, renders the whole image
   of dags/mandelbrot.yaml as one tile natively and in Wasm3 (bxthre3.wasm.wasm3.run_module),
   checks both give the same bytes, and prints the slowdown. The native time includes
   starting a process (~1 ms); the Wasm3 time includes loading the module.
2. Runs dags/mandelbrot.yaml on LocalCluster(hosts=1) and LocalCluster(hosts=2): one
   warm-up run (modules shipped to the hosts), then --repeat timed runs; prints the
   median time from submission to the DAG's end as the controller records it, the sum
   of the tasks' own run times, and the speed-up. The default DAG holds only ~0.4 s of
   Wasm3 work, so per-task overhead weighs heavily; the same DAG generated with
   --heavy-max-iter (default 2048, 0 to skip) shows the speed-up on real work.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from bxthre3.dag.spec import DagSpec

DAG = REPO / "dags" / "mandelbrot.yaml"
SRC = REPO / "wasm_modules" / "src"
WASM = REPO / "wasm_modules" / "mandel_tile.wasm"
# The whole default image as one tile: width height x0 y0 w h max_iter.
WHOLE_IMAGE = ["512", "512", "0", "0", "512", "512", "256"]


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()
    return (
        f"machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}\n"
        f"python {platform.python_version()}, {gcc[0] if gcc else 'gcc ?'}"
    )


def time_native(binary: Path, repeat: int) -> tuple[float, bytes]:
    times, out = [], b""
    for _ in range(repeat):
        started = time.perf_counter()
        out = subprocess.run([str(binary), *WHOLE_IMAGE], capture_output=True, check=True).stdout
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def time_wasm(repeat: int) -> tuple[float, bytes]:
    from bxthre3.wasm.wasm3 import run_module

    wasm = WASM.read_bytes()
    times, out = [], b""
    for _ in range(repeat):
        started = time.perf_counter()
        result = run_module(wasm, args=WHOLE_IMAGE, stdin=b"", env={})
        times.append(time.perf_counter() - started)
        if result.exit_code != 0:
            raise SystemExit(f"mandel_tile.wasm failed: {result.error} {result.stderr!r}")
        out = result.stdout
    return statistics.median(times), out


def native_vs_wasm(repeat: int) -> None:
    if shutil.which("gcc") is None:
        print("native: skipped (no gcc)")
        return
    with tempfile.TemporaryDirectory(prefix="bxthre3-bench-") as tmp:
        binary = Path(tmp) / "mandel_tile"
        cmd = ["gcc", "-O2", "-ffp-contract=off", "-I", str(SRC), str(SRC / "mandel_tile.c"), "-o", str(binary)]
        subprocess.run(cmd, check=True)
        native, native_out = time_native(binary, max(repeat, 5))
    wasm, wasm_out = time_wasm(repeat)
    same = "identical" if native_out == wasm_out else "DIFFERENT"
    print(f"one 512x512 tile, max_iter 256 (outputs {same}):")
    print(f"  native gcc -O2   {native * 1000:9.1f} ms")
    print(f"  Wasm3 (-Os)      {wasm * 1000:9.1f} ms")
    print(f"  Wasm3 / native   {wasm / native:9.1f} x")


def load_spec(max_iter: int | None) -> DagSpec:
    from bxthre3.dag import workloads
    from bxthre3.dag.yaml_loader import load_dag, parse_dag

    if max_iter is None:
        return dataclasses.replace(load_dag(DAG), cache=False)  # every run computes
    text = workloads.mandelbrot_dag(max_iter=max_iter)
    return parse_dag(text, source=f"mandelbrot max_iter={max_iter}", base_dir=DAG.parent)


def run_cluster(spec: DagSpec, hosts: int, repeat: int) -> tuple[float, float, float]:
    from bxthre3.commands.local_cluster import LocalCluster

    elapsed, wall, work = [], [], []
    with (
        tempfile.TemporaryDirectory(prefix="bxthre3-bench-cache-") as cache,
        LocalCluster(hosts=hosts, cache_dir=Path(cache), engine=os.environ.get("BXTHRE3_ENGINE", "auto")) as cluster,
    ):
        client = cluster.client
        assert client is not None
        for attempt in range(repeat + 1):
            started = time.perf_counter()
            dag_id = client.submit(spec)
            state = client.wait(dag_id, interval=0.02, timeout=300)["state"]
            took = time.perf_counter() - started
            if state != "succeeded":
                raise SystemExit(f"{spec.name} ended {state} on {hosts} host(s)")
            results = client.results(dag_id)
            if attempt == 0:
                continue  # warm-up: ships the modules to every host
            elapsed.append(float(results["elapsed_s"]))
            wall.append(took)
            work.append(sum(float(t["duration_s"] or 0.0) for t in results["tasks"]))
    return statistics.median(elapsed), statistics.median(wall), statistics.median(work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (default 3)")
    parser.add_argument("--no-cluster", action="store_true", help="only native vs Wasm3")
    parser.add_argument(
        "--heavy-max-iter", type=int, default=2048, help="also run the DAG with this max_iter (default 2048; 0 skips)"
    )
    args = parser.parse_args()
    print(machine_info())
    native_vs_wasm(args.repeat)
    if args.no_cluster:
        return 0
    variants: list[tuple[str, int | None]] = [(str(DAG.relative_to(REPO)), None)]
    if args.heavy_max_iter > 0:
        variants.append((f"the same DAG with max_iter {args.heavy_max_iter}", args.heavy_max_iter))
    for title, max_iter in variants:
        spec = load_spec(max_iter)
        print(f"{title}, {len(spec.tasks)} tasks, end to end (median of {args.repeat} after one warm-up run):")
        medians = {}
        for hosts in (1, 2):
            elapsed, wall, work = run_cluster(spec, hosts, args.repeat)
            medians[hosts] = elapsed
            print(
                f"  {hosts} host{'s' if hosts > 1 else ' '}  {elapsed:6.2f} s controller-recorded, "
                f"{wall:6.2f} s submit-to-done at the client, {work:5.2f} s of task run time"
            )
        print(f"  speed-up 2 hosts vs 1: {medians[1] / medians[2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
