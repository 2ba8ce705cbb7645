"""Bxthre3 side by side with Ray and Dask distributed, same machine, same run, medians.

    PYTHONPATH=. python benchmarks/compare.py [--repeat 3] [--tasks 10000] [--quick]

Ray and Dask are benchmark-only dependencies (`pip install "dask[distributed]" ray`); a system that is
not installed is skipped and says so. Ray runs inside a network namespace with only a loopback
interface (`ip netns`, root), because it binds 0.0.0.0 and probes an outside address at start.

Workloads (Bxthre3: WebAssembly modules on controller + 2 hosts; Ray and Dask: Python functions on
2 single-threaded workers): N independent trivial tasks (tasks/s); fan-out/fan-in 1 -> 1,000 -> 1
(wall time); a chain of 500 dependent tasks (ms per hop); idle RSS of each worker/host and of the
scheduler/controller; controller RSS holding a 100,000-task DAG and the time to submit it; time from
starting a worker/host process to it being registered. Prints machine info and a table with
Bxthre3's ratio to each.

The trivial Bxthre3 modules are hand-tuned (`wasm_modules/noop.wasm`, `inc.wasm`: raw WASI calls, no
libc). Two more rows run what a user writes instead: the `printf`/`fputs` C program of
`benchmarks/end_to_end.py`, built the same way (clang-14 --target=wasm32-wasi --sysroot=/usr -O2,
unstripped, wasi-libc's stdio), as N independent tasks and as a 500-task chain (each task gets its
upstream's stdout on stdin and prints its argument); their ratio is to Ray's and Dask's trivial Python
tasks, the same rows as above. Skipped, and said so, where clang-14 or wasi-libc is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import psutil  # noqa: E402

FANOUT = 1000
CHAIN = 500
BIG_DAG = 100_000

Figures = dict[str, float]


def median(runs: list[float]) -> float:
    return float(statistics.median(runs))


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def tree_pids(pid: int) -> list[int]:
    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def pss_mb(pids: list[int]) -> float:
    """Proportional set size: shared pages (libpython, libzmq) split among the processes sharing them,
    so the sum is what the processes take from the machine together (an RSS sum counts them each time)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as file:
                total += next(int(line.split()[1]) for line in file if line.startswith("Pss:")) / 1024
        except (OSError, StopIteration, ValueError):
            pass
    return total


def tree_rss_mb(pid: int) -> float:
    try:
        proc = psutil.Process(pid)
        return rss_mb([pid, *(c.pid for c in proc.children(recursive=True))])
    except psutil.Error:
        return 0.0


# ---------------------------------------------------------------------- Bxthre3


def bxthre3_figures(args: argparse.Namespace, engine: str, big_dag: bool) -> Figures:
    from core_throughput import chain, free_port, independent, module, stop_processes

    from bxthre3.client.connection import ControllerClient
    from bxthre3.dag.spec import DagSpec, TaskSpec
    from bxthre3.wire.addresses import Address
    from bxthre3.wire.security import CurveKeys, new_token

    token = new_token()
    env = dict(os.environ, PYTHONPATH=str(REPO), BXTHRE3_TOKEN=token)
    port = free_port()
    tmp = tempfile.TemporaryDirectory()
    procs: list[subprocess.Popen[bytes]] = []

    def start(*cmd: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bxthre3", *cmd, "--log-level", "WARNING"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(proc)
        return proc

    def fanout() -> DagSpec:
        sha, data = module("noop")
        tasks = [TaskSpec(id="root", module=sha, module_name="noop.wasm")]
        tasks += [
            TaskSpec(id=f"m{i}", module=sha, module_name="noop.wasm", depends_on=("root",)) for i in range(FANOUT)
        ]
        tasks.append(TaskSpec(id="sink", module=sha, module_name="noop.wasm",
                              depends_on=tuple(f"m{i}" for i in range(FANOUT))))  # fmt: skip
        return DagSpec(name="fanout", tasks=tuple(tasks), modules={sha: data}, cache=False)

    def run(client: ControllerClient, spec: DagSpec) -> float:
        started = time.monotonic()
        dag_id = client.submit(spec)
        final = client.wait(dag_id, interval=0.005, timeout=600)
        if final["state"] != "succeeded":
            raise SystemExit(f"{spec.name} ended {final['state']}")
        return time.monotonic() - started

    keys = CurveKeys.from_token(token)
    figures: Figures = {}
    try:
        controller = start("controller", "--host", "127.0.0.1", "--port", str(port), "--state-dir", f"{tmp.name}/s")
        hosts = [start("host", "--controller", f"127.0.0.1:{port}", "--node-id", f"bench-{i}",
                       "--cache-dir", f"{tmp.name}/cache", "--engine", engine) for i in range(2)]  # fmt: skip
        with ControllerClient(Address("127.0.0.1", port), keys=keys, timeout=30) as client:
            first_status(client)
            deadline = time.monotonic() + 60
            while client.status()["totals"]["hosts"] < 2:
                if time.monotonic() > deadline:
                    raise SystemExit("hosts did not register")
                time.sleep(0.05)
            run(client, independent(50))
            time.sleep(1.0)
            figures["idle_worker_rss_mb"] = median([tree_rss_mb(h.pid) for h in hosts])
            figures["idle_host_process_rss_mb"] = median([rss_mb([h.pid]) for h in hosts])
            figures["idle_scheduler_rss_mb"] = rss_mb([controller.pid])
            everything = [controller.pid, *(p for h in hosts for p in tree_pids(h.pid))]
            figures["cluster_rss_mb"] = rss_mb(everything)
            figures["cluster_pss_mb"] = pss_mb(everything)
            figures["tasks_per_s"] = median([args.tasks / run(client, independent(args.tasks))
                                             for _ in range(args.repeat)])  # fmt: skip
            figures["fanout_s"] = median([run(client, fanout()) for _ in range(args.repeat)])
            figures["chain_ms_per_hop"] = median([run(client, chain(CHAIN)) / CHAIN * 1000 for _ in range(args.repeat)])
            stdio = stdio_module(tmp.name)
            if stdio is not None:
                figures["stdio_tasks_per_s"] = median([args.tasks / run(client, stdio_independent(stdio, args.tasks))
                                                       for _ in range(args.repeat)])  # fmt: skip
                figures["stdio_chain_ms_per_hop"] = median([run(client, stdio_chain(stdio, CHAIN)) / CHAIN * 1000
                                                            for _ in range(args.repeat)])  # fmt: skip
            # time from starting a host process to its registration
            starts = []
            for i in range(args.repeat):
                t = time.monotonic()
                extra = start("host", "--controller", f"127.0.0.1:{port}", "--node-id", f"late-{i}",
                              "--cache-dir", f"{tmp.name}/cache", "--engine", engine)  # fmt: skip
                while not any(h["node_id"] == f"late-{i}" for h in client.status()["hosts"]):
                    time.sleep(0.005)
                starts.append(time.monotonic() - t)
                extra.send_signal(signal.SIGTERM)
                extra.wait(10)
            figures["worker_start_s"] = median(starts)
        if big_dag and not args.quick:
            figures.update(bxthre3_big_dag(start, port, keys, tmp.name))
    finally:
        stop_processes(procs, timeout=10)
        tmp.cleanup()
    return figures


def first_status(client: Any, wait_s: float = 30.0) -> None:
    """Wait (bounded) for a just-started controller to answer: on a busy machine its start takes a while."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.status()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stdio_module(work: str) -> tuple[str, bytes] | None:
    """The ordinary stdio C program of end_to_end.py, built as it builds it; None without clang-14/wasi-libc."""
    import hashlib

    from end_to_end import build_module

    try:
        data = build_module(Path(work)).read_bytes()
    except (SystemExit, subprocess.SubprocessError, OSError) as exc:
        print(f"ordinary stdio module: not built ({exc}); its rows are skipped", file=sys.stderr)
        return None
    return hashlib.sha256(data).hexdigest(), data


def stdio_independent(module: tuple[str, bytes], n: int) -> Any:
    """N independent runs of the stdio module, each with one argument."""
    from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec

    sha, data = module
    tasks = tuple(TaskSpec(id=f"t{i}", module=sha, module_name="echo.wasm",
                           inputs=(TaskInput(InputKind.LITERAL, str(i)),)) for i in range(n))  # fmt: skip
    return DagSpec(name=f"stdio-{n}", tasks=tasks, modules={sha: data}, cache=False)


def stdio_chain(module: tuple[str, bytes], n: int) -> Any:
    """A chain of N runs of the stdio module: each gets its upstream's stdout on stdin and one argument."""
    from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec

    sha, data = module
    tasks = [TaskSpec(id="c0", module=sha, module_name="echo.wasm", inputs=(TaskInput(InputKind.LITERAL, "0"),))]
    for i in range(1, n):
        inputs = (TaskInput(InputKind.LITERAL, str(i)), TaskInput(InputKind.OUTPUT, f"c{i - 1}"))
        tasks.append(TaskSpec(id=f"c{i}", module=sha, module_name="echo.wasm", inputs=inputs,
                              depends_on=(f"c{i - 1}",)))  # fmt: skip
    return DagSpec(name=f"stdio-chain-{n}", tasks=tuple(tasks), modules={sha: data}, cache=False)


def bxthre3_big_dag(start: Callable[..., subprocess.Popen[bytes]], port: int, keys: Any, tmp: str) -> Figures:
    """A second controller with no hosts: submit a 100,000-task DAG, measure RSS with it queued."""
    from core_throughput import free_port, independent

    from bxthre3.client.connection import ControllerClient
    from bxthre3.wire.addresses import Address

    big_port = free_port()
    controller = start("controller", "--host", "127.0.0.1", "--port", str(big_port), "--state-dir", f"{tmp}/big")
    spec = independent(BIG_DAG)
    with ControllerClient(Address("127.0.0.1", big_port), keys=keys, timeout=120) as client:
        first_status(client)
        t = time.monotonic()
        client.submit(spec)
        submit_s = time.monotonic() - t
        time.sleep(1.0)
        return {"submit_100k_s": submit_s, "scheduler_rss_100k_mb": rss_mb([controller.pid])}


# ---------------------------------------------------------------------- Dask


def noop(*_: object) -> None:
    return None


def inc(x: int) -> int:
    return x + 1


def dask_figures(args: argparse.Namespace, saturation_inf: bool) -> Figures:
    import dask
    from dask.distributed import Client, LocalCluster

    config = {"distributed.scheduler.worker-saturation": "inf"} if saturation_inf else {}
    figures: Figures = {}
    with dask.config.set(config):
        t = time.monotonic()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)  # fmt: skip
        client = Client(cluster)
        client.wait_for_workers(2)
        figures["worker_start_s"] = time.monotonic() - t
        try:
            client.gather(client.map(noop, range(50), pure=False))
            time.sleep(1.0)
            pids = list(client.run(os.getpid).values())
            figures["idle_worker_rss_mb"] = median([rss_mb([p]) for p in pids])
            figures["idle_scheduler_rss_mb"] = rss_mb([os.getpid()])  # the scheduler runs in this process

            def independent() -> float:
                t = time.monotonic()
                client.gather(client.map(noop, range(args.tasks), pure=False))
                return args.tasks / (time.monotonic() - t)

            def fanout() -> float:
                t = time.monotonic()
                root = client.submit(noop, pure=False)
                mids = [client.submit(noop, root, i, pure=False) for i in range(FANOUT)]
                client.submit(noop, *mids, pure=False).result()
                return time.monotonic() - t

            def chain() -> float:
                t = time.monotonic()
                x = client.submit(inc, 0, pure=False)
                for _ in range(CHAIN - 1):
                    x = client.submit(inc, x, pure=False)
                x.result()
                return (time.monotonic() - t) / CHAIN * 1000

            figures["tasks_per_s"] = median([independent() for _ in range(args.repeat)])
            figures["fanout_s"] = median([fanout() for _ in range(args.repeat)])
            figures["chain_ms_per_hop"] = median([chain() for _ in range(args.repeat)])
        finally:
            client.close()
            cluster.close()
    return figures


# ---------------------------------------------------------------------- Ray (inside a loopback-only netns)


RAY_CHILD = "--ray-child"


def ray_figures_here(args: argparse.Namespace) -> Figures:
    import ray

    figures: Figures = {}
    t = time.monotonic()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    figures["worker_start_s"] = time.monotonic() - t

    @ray.remote
    def rnoop(*_: object) -> None:
        return None

    @ray.remote
    def rinc(x: int) -> int:
        return x + 1

    try:
        ray.get([rnoop.remote() for _ in range(50)])
        time.sleep(2.0)

        def cmdline(p: psutil.Process) -> str:
            return " ".join(p.info["cmdline"] or [])

        marks = ("ray::", "default_worker")
        workers = [p for p in psutil.process_iter(["cmdline"]) if any(m in cmdline(p) for m in marks)]
        figures["idle_worker_rss_mb"] = median([rss_mb([w.pid]) for w in workers]) if workers else float("nan")
        every = [p.pid for p in psutil.process_iter(["cmdline"]) if "ray" in " ".join(p.info["cmdline"] or [])]
        figures["idle_scheduler_rss_mb"] = rss_mb(every) - rss_mb([w.pid for w in workers])

        def independent() -> float:
            t = time.monotonic()
            ray.get([rnoop.remote() for _ in range(args.tasks)])
            return args.tasks / (time.monotonic() - t)

        def fanout() -> float:
            t = time.monotonic()
            root = rnoop.remote()
            mids = [rnoop.remote(root, i) for i in range(FANOUT)]
            ray.get(rnoop.remote(*mids))
            return time.monotonic() - t

        def chain() -> float:
            t = time.monotonic()
            x = rinc.remote(0)
            for _ in range(CHAIN - 1):
                x = rinc.remote(x)
            ray.get(x)
            return (time.monotonic() - t) / CHAIN * 1000

        figures["tasks_per_s"] = median([independent() for _ in range(args.repeat)])
        figures["fanout_s"] = median([fanout() for _ in range(args.repeat)])
        figures["chain_ms_per_hop"] = median([chain() for _ in range(args.repeat)])
    finally:
        ray.shutdown()
    return figures


def ray_figures(args: argparse.Namespace) -> Figures:
    """Run the Ray part in a fresh network namespace that has only `lo` (root needed)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise RuntimeError("Ray runs in a loopback-only network namespace: needs root and iproute2")
    ns = f"bxbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        cmd = ["ip", "netns", "exec", ns, sys.executable, __file__, RAY_CHILD,
               "--tasks", str(args.tasks), "--repeat", str(args.repeat)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"ray child failed: {out.stderr[-800:]}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


# ---------------------------------------------------------------------- table


ROWS: list[tuple[str, str, str, bool, str]] = [
    # (figure, label, unit, higher is better, the other systems' figure it is compared with)
    ("tasks_per_s", "independent trivial tasks (hand-tuned inc/noop module)", "tasks/s", True, "tasks_per_s"),
    ("stdio_tasks_per_s", "independent tasks, ordinary stdio C module", "tasks/s", True, "tasks_per_s"),
    ("fanout_s", f"fan-out/fan-in 1 -> {FANOUT:,} -> 1", "s", False, "fanout_s"),
    ("chain_ms_per_hop", f"chain of {CHAIN} tasks (hand-tuned)", "ms/hop", False, "chain_ms_per_hop"),
    ("stdio_chain_ms_per_hop", f"chain of {CHAIN} tasks, ordinary stdio C module", "ms/hop", False, "chain_ms_per_hop"),
    ("idle_worker_rss_mb", "idle worker/host RSS (with executor)", "MB", False, "idle_worker_rss_mb"),
    ("idle_host_process_rss_mb", "idle host process RSS (executors stopped)", "MB", False, "idle_host_process_rss_mb"),
    ("idle_scheduler_rss_mb", "idle scheduler/controller RSS", "MB", False, "idle_scheduler_rss_mb"),
    ("cluster_rss_mb", "controller + 2 hosts + executors, RSS summed", "MB", False, "cluster_rss_mb"),
    ("cluster_pss_mb", "controller + 2 hosts + executors, PSS summed", "MB", False, "cluster_pss_mb"),
    ("scheduler_rss_100k_mb", f"controller RSS, {BIG_DAG:,}-task DAG queued", "MB", False, "scheduler_rss_100k_mb"),
    ("submit_100k_s", f"submit a {BIG_DAG:,}-task DAG", "s", False, "submit_100k_s"),
    ("worker_start_s", "process start to worker registered", "s", False, "worker_start_s"),
]


def table(results: dict[str, Figures | str]) -> str:
    """One row per figure: every system's value, then the better Bxthre3 engine's ratio to each other system."""
    systems = list(results)
    ours_names = [s for s in systems if s.startswith("Bxthre3")]
    others = [s for s in systems if s not in ours_names]
    head = f"| figure | {' | '.join(systems)} | " + " | ".join(f"Bxthre3 vs {s}" for s in others) + " |"
    lines = [head, "|" + "---|" * (1 + len(systems) + len(others))]
    for key, label, unit, higher_better, theirs in ROWS:
        cells, ratios = [], []
        mine = [f[key] for s in ours_names if isinstance(f := results[s], dict) and f.get(key) is not None]
        a = (max(mine) if higher_better else min(mine)) if mine else None
        for system in systems:
            figs = results[system]
            value = figs.get(key if system in ours_names else theirs) if isinstance(figs, dict) else None
            cells.append("–" if value is None else f"{value:,.2f} {unit}" if value < 100 else f"{value:,.0f} {unit}")
        for system in others:
            figs = results[system]
            b = figs.get(theirs) if isinstance(figs, dict) else None
            if a and b:
                ratio = a / b if higher_better else b / a
                ratios.append(f"{ratio:.2f}x {'better' if ratio >= 1 else 'worse'}")
            else:
                ratios.append("–")
        lines.append(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the 100,000-task DAG")
    ap.add_argument("--only", choices=["bxthre3", "dask", "ray"], action="append")
    ap.add_argument(
        "--engines", default="wasm3,wasmtime" if importlib.util.find_spec("wasmtime") else "wasm3",
        help="Bxthre3 host engines to measure, comma-separated (default: wasm3, and wasmtime when installed)",
    )  # fmt: skip
    ap.add_argument(RAY_CHILD, action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ray_child:
        print(json.dumps(ray_figures_here(args)))
        return 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
          f"{time.strftime('%Y-%m-%d')}; medians of {args.repeat}")  # fmt: skip
    wanted = set(args.only or ["bxthre3", "dask", "ray"])
    results: dict[str, Figures | str] = {}
    engines = [e for e in args.engines.split(",") if e]
    runs: list[tuple[str, str, Callable[[], Figures]]] = [
        ("bxthre3", f"Bxthre3 ({e})", lambda e=e, first=(i == 0): bxthre3_figures(args, e, first))  # type: ignore[misc]
        for i, e in enumerate(engines)
    ]
    runs += [
        ("dask", "Dask", lambda: dask_figures(args, saturation_inf=False)),
        ("dask", "Dask (saturation inf)", lambda: dask_figures(args, saturation_inf=True)),
        ("ray", "Ray", lambda: ray_figures(args)),
    ]
    for key, name, run in runs:
        if key not in wanted:
            continue
        started = time.monotonic()
        try:
            results[name] = run()
            print(f"{name}: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
        except ImportError as exc:
            results[name] = f"not installed ({exc.name})"
            print(f"{name}: skipped, not installed: {exc}", file=sys.stderr)
        except Exception as exc:  # one system failing must not hide the others' figures
            results[name] = f"failed: {exc}"
            print(f"{name}: failed: {exc}", file=sys.stderr)
    if not any(isinstance(f, dict) for s, f in results.items() if s.startswith("Bxthre3")):
        print(json.dumps(results, indent=2, default=str))
        return 1
    print(table(results))
    for name, figs in results.items():
        if not isinstance(figs, dict):
            print(f"{name}: {figs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
