"""The same DAGs on Bxthre3's own cluster and on the Dask and Ray backends (docs/BACKENDS.md, issue 23).

    python benchmarks/backends.py [--backends default,dask:local,ray:local] [--tasks 10000] [--repeat 2]

For each backend, with the same workers (default 2 x 1: `LocalCluster(hosts=2, slots=1)`, a Dask
LocalCluster of 2 processes x 1 thread, a local Ray with 2 CPUs):

- (a) `--tasks` independent trivial tasks (wasm_modules/noop.wasm), each with its own argument and the
  DAG's `cache: false`, so no result cache answers: tasks/s from submission to the DAG's end;
- (b) Mandelbrot 1024x1024 in 8x8 tiles, 512 iterations (dags/mandelbrot.yaml, 65 tasks): makespan.

Each figure is the median of `--repeat` runs, after a 50-task warm-up (module caches, executor children,
Ray's worker processes). "elapsed" is the engine's own record of the DAG (the controller's, or the
backend driver's), "wall" the benchmark's clock around submit-and-wait.

Ray runs only inside a loopback-only network namespace (it opens many ports, and outside one it may bind
beyond loopback): as `benchmarks/compare.py` does, the `ray:*` rows re-run this script as a child under
`ip netns exec` in a namespace made for it and deleted after (root and iproute2 needed). Measures only
when the 1-minute load is below `--max-load` (default 1.5; the machine is shared); prints the load seen.

Needs Dask and Ray in the same venv for all three rows: docs/BACKENDS.md has the commands (.venv-ray).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec  # noqa: E402
from bxthre3.dag.yaml_loader import load_dag  # noqa: E402

CHILD = "--netns-child"
MANDEL_PARAMS = {"width": "1024", "height": "1024", "cols": "8", "rows": "8", "max_iter": "512"}
WARMUP_TASKS = 50


@dataclasses.dataclass
class Row:
    backend: str
    start_s: float = 0.0
    """Starting the cluster (controller and hosts, Dask LocalCluster, or Ray)."""
    tasks_per_s: list[float] = dataclasses.field(default_factory=list)
    trivial_wall_s: list[float] = dataclasses.field(default_factory=list)
    mandel_s: list[float] = dataclasses.field(default_factory=list)
    mandel_wall_s: list[float] = dataclasses.field(default_factory=list)
    mandel_sha256: str = ""
    """Of the assembled PGM: the same image on every backend."""
    error: str = ""
    """Why the row stopped (the first line of the error), if it did."""


def trivial(n: int, tag: str) -> DagSpec:
    data = (REPO / "wasm_modules" / "noop.wasm").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    tasks = tuple(
        TaskSpec(id=f"t{i}", module=sha, module_name="noop.wasm", inputs=(TaskInput(InputKind.LITERAL, f"{tag}-{i}"),))
        for i in range(n)
    )
    return DagSpec(name=f"noop-{n}", tasks=tasks, modules={sha: data}, cache=False)


def mandelbrot() -> DagSpec:
    return dataclasses.replace(load_dag(REPO / "dags" / "mandelbrot.yaml", MANDEL_PARAMS), cache=False)


Runner = Callable[[DagSpec], tuple[float, float, bytes | None]]
"""Runs one DAG to its end: (engine-recorded elapsed s, wall s, the `image` task's output or None)."""


def measure(row: Row, runner: Runner, args: argparse.Namespace) -> Row:
    runner(trivial(WARMUP_TASKS, "warm"))
    for r in range(args.repeat):
        elapsed, wall, _ = runner(trivial(args.tasks, f"r{r}"))
        row.tasks_per_s.append(args.tasks / elapsed)
        row.trivial_wall_s.append(wall)
        print(f"  {row.backend}: {args.tasks} trivial tasks in {elapsed:.2f} s (wall {wall:.2f} s)", file=sys.stderr)
    for _ in range(args.repeat):
        elapsed, wall, image = runner(mandelbrot())
        row.mandel_s.append(elapsed)
        row.mandel_wall_s.append(wall)
        row.mandel_sha256 = hashlib.sha256(image or b"").hexdigest()[:16]
        print(f"  {row.backend}: Mandelbrot in {elapsed:.2f} s (wall {wall:.2f} s)", file=sys.stderr)
    return row


def run_default(args: argparse.Namespace) -> Row:
    from bxthre3 import LocalCluster

    row = Row("default")
    t = time.monotonic()
    with LocalCluster(hosts=args.workers, slots=args.threads, engine=args.engine) as cluster:
        row.start_s = time.monotonic() - t
        client = cluster.client(timeout=60)

        def runner(spec: DagSpec) -> tuple[float, float, bytes | None]:
            t0 = time.monotonic()
            handle = client.submit(spec)
            status = handle.wait(timeout=900, interval=0.01)
            wall = time.monotonic() - t0
            if not status.ok:
                raise SystemExit(f"default: {spec.name} ended {status.state}")
            image = handle.results()["image"].stdout if spec.name == "mandelbrot" else None
            return status.elapsed_s, wall, image

        return measure(row, runner, args)


def run_backend(url_text: str, args: argparse.Namespace) -> Row:
    from bxthre3.backends.driver import Policy
    from bxthre3.backends.opening import new_run, open_backend, parse_backend

    policy = Policy(engine=args.engine)  # auto: the workers' probe decides, as for `run --backend`
    row = Row(url_text)
    t = time.monotonic()
    with open_backend(parse_backend(url_text), workers=args.workers, threads=args.threads) as backend:
        row.start_s = time.monotonic() - t

        def runner(spec: DagSpec) -> tuple[float, float, bytes | None]:
            t0 = time.monotonic()
            run = backend.run(new_run(spec, policy))
            wall = time.monotonic() - t0
            if run.state != "succeeded":
                raise SystemExit(f"{url_text}: {spec.name} ended {run.state}")
            assert run.ended_at is not None
            image = run.tasks["image"].outcome["stdout"] if "image" in run.tasks else None  # type: ignore[index]
            return run.ended_at - run.submitted_at, wall, image

        return measure(row, runner, args)


def run_in_netns(url_text: str, args: argparse.Namespace) -> Row:
    """The `ray:*` rows: this script again, inside a fresh network namespace that has only `lo`."""
    if os.geteuid() != 0:
        raise SystemExit("Ray rows run in a loopback-only network namespace: needs root (ip netns add)")
    ns = f"bx-ray-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        cmd = ["ip", "netns", "exec", ns, sys.executable, __file__, CHILD, "--backends", url_text,
               "--tasks", str(args.tasks), "--repeat", str(args.repeat), "--workers", str(args.workers),
               "--threads", str(args.threads), "--engine", args.engine]  # fmt: skip
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=1800)
        if out.returncode != 0:
            raise SystemExit(f"{url_text}: the namespace child failed ({out.returncode})")
        return Row(**json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        left = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in left:  # only processes inside the namespace made above: Ray's, if shutdown left any
            print(f"{url_text}: process {pid} outlived the run; killed", file=sys.stderr)
            subprocess.run(["kill", "-9", pid], check=False)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("bxthre3", "pywasm3", "wasmtime", "dask", "distributed", "ray"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(found)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="default,dask:local,ray:local")
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="hosts / Dask workers; Ray CPUs = workers x threads")
    ap.add_argument("--threads", type=int, default=1, help="slots per host / threads per Dask worker")
    ap.add_argument("--engine", default="wasm3", choices=("wasm3", "wasmtime"))
    ap.add_argument("--max-load", type=float, default=1.5, help="refuse to measure above this 1-minute load")
    ap.add_argument(CHILD, action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [b.strip() for b in args.backends.split(",") if b.strip()]

    if args.netns_child:  # inside the namespace: one row, as JSON on the last line of stdout
        print(json.dumps(dataclasses.asdict(run_backend(names[0], args))))
        return 0

    load = os.getloadavg()[0]
    print(f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine()}; Python "
          f"{platform.python_version()}; {versions()}; engine {args.engine}; load before: {load:.2f}")  # fmt: skip
    if load >= args.max_load:
        print(f"load {load:.2f} >= {args.max_load}: not measuring (the machine is busy)", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        t = time.monotonic()
        try:
            if name == "default":
                rows.append(run_default(args))
            elif name.startswith("ray"):
                rows.append(run_in_netns(name, args))
            else:
                rows.append(run_backend(name, args))
        except (Exception, SystemExit) as exc:  # one engine failing is a figure too: the other rows still run
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            rows.append(Row(name, error=f"{type(exc).__name__} after {time.monotonic() - t:.0f} s: {first}"))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    ms = ", ".join(f"{k}={v}" for k, v in MANDEL_PARAMS.items())
    print(f"\n{args.workers} workers x {args.threads} thread(s); median of {args.repeat} runs after a warm-up\n")
    head = (f"| backend | start s | {args.tasks:,} trivial tasks: tasks/s | wall s | Mandelbrot ({ms}) makespan s "
            "| wall s | image sha256 |")  # fmt: skip
    print(head)
    print("|" + "---|" * 7)
    for r in rows:
        if r.error:
            print(f"| {r.backend} | failed: {r.error} | | | | | |")
            continue
        print(f"| {r.backend} | {r.start_s:.1f} | {statistics.median(r.tasks_per_s):,.0f} "
              f"({', '.join(f'{x:,.0f}' for x in r.tasks_per_s)}) | {statistics.median(r.trivial_wall_s):.2f} | "
              f"{statistics.median(r.mandel_s):.2f} ({', '.join(f'{x:.2f}' for x in r.mandel_s)}) | "
              f"{statistics.median(r.mandel_wall_s):.2f} | {r.mandel_sha256} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
