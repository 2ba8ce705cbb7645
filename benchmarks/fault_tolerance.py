"""Fault tolerance: how fast work moves off a dead host, how fast a killed controller resumes, what the journal costs.

    python benchmarks/fault_tolerance.py [--repeat 3] [--restart-tasks 10000] [--throughput-tasks 2000]

Every process is real (`python -m bxthre3 controller|host` on 127.0.0.1) and killed by PID at the
end. Prints machine information, then the median of --repeat runs of:

1. host death -> its task running elsewhere: a `spin` task (timeout 60) runs on host A; A gets
   SIGKILL; time until `results` shows a new attempt on host B. With the default heartbeat
   (1 s, liveness 3) and with 0.25 s / liveness 4.
2. controller kill -9 at ~30 % of a DAG of --restart-tasks independent noop tasks over 2 hosts,
   restarted on the same --state-dir and port: time from restart to the controller answering, to
   both hosts back, to the first task completed after the restart, and to the DAG's end; and a
   check that every task's result was recorded exactly once.
3. throughput of --throughput-tasks noop tasks with the journal (--state-dir DIR) and without it
   (--state-dir :memory:), and the journal's overhead.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from bxthre3.client.connection import ControllerClient  # noqa: E402
from bxthre3.common.errors import ClusterError  # noqa: E402
from bxthre3.dag.spec import DagSpec, TaskSpec  # noqa: E402
from tests.chaos_support import TEST_MODULES, WASM_MODULES, ChaosCluster, wait_until  # noqa: E402


def dag_of(name: str, path: Path, n: int, *, timeout: float | None = None, retries: int | None = None) -> DagSpec:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    tasks = tuple(
        TaskSpec(id=f"t{i}", module=sha, module_name=path.name, timeout=timeout, retries=retries) for i in range(n)
    )
    return DagSpec(name=name, tasks=tasks, modules={sha: data}, cache=False)


def median_line(label: str, values: list[float], unit: str = "s", fmt: str = "{:.2f}") -> str:
    each = ", ".join(fmt.format(v) for v in values)
    return f"  {label}: {fmt.format(statistics.median(values))} {unit} (median of {len(values)}: {each})"


def machine_info(workdir: Path) -> str:
    fs = "?"
    best = ""
    for part in psutil.disk_partitions(all=True):
        if str(workdir).startswith(part.mountpoint) and len(part.mountpoint) > len(best):
            best, fs = part.mountpoint, f"{part.fstype} on {part.mountpoint}"
    freq = psutil.cpu_freq()
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs"
        + (f" @ {freq.current:.0f} MHz" if freq else "")
        + f", {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, load {os.getloadavg()[0]:.2f}\n"
        f"software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.release()}\n"
        f"state dirs in {workdir} ({fs})"
    )


def run_dag(client: ControllerClient, spec: DagSpec, timeout: float = 300) -> dict[str, Any]:
    dag_id = client.submit(spec)
    final = client.wait(dag_id, interval=0.01, timeout=timeout)
    if final["state"] != "succeeded":
        raise SystemExit(f"{spec.name} ended {final['state']}")
    return final


def poll(call: Callable[[], Any], timeout: float, what: str) -> Any:
    """`call()` until it returns something truthy, ClusterError meaning not yet; bounded."""
    return wait_until(call, timeout, what, interval=0.01)


# ---------------------------------------------------------------------- 1. host death


def host_death_once(workdir: Path, heartbeat: float, liveness: int) -> float:
    with ChaosCluster(workdir, heartbeat=heartbeat, liveness=liveness, log_level="WARNING") as cluster:
        cluster.start_controller()
        cluster.wait_controller()
        client = cluster.client(timeout=5)
        cluster.start_host("host-a")
        cluster.wait_hosts(client, ["host-a"])
        dag_id = client.submit(dag_of("spin", TEST_MODULES / "spin.wasm", 1, timeout=60, retries=0))
        poll(lambda: f"{dag_id}/t0" in cluster.registered(client)["host-a"]["running"], 20, "spin to run on host-a")
        cluster.start_host("host-b")
        cluster.wait_hosts(client, ["host-b"])

        def on_b() -> bool:
            task = client.results(dag_id)["tasks"][0]
            return any(a["node_id"] == "host-b" for a in task["history"])

        cluster.kill_host("host-a")
        killed = time.monotonic()
        poll(on_b, 60, "the spin task to run on host-b")
        return time.monotonic() - killed


# ---------------------------------------------------------------------- 2. controller restart


def restart_once(workdir: Path, n: int) -> dict[str, float]:
    with ChaosCluster(workdir, heartbeat=1.0, liveness=3, log_level="WARNING") as cluster:
        cluster.start_controller()
        cluster.wait_controller()
        client = cluster.client(timeout=10)
        for node in ("host-a", "host-b"):
            cluster.start_host(node)
        cluster.wait_hosts(client, ["host-a", "host-b"])
        run_dag(client, dag_of("warm-up", WASM_MODULES / "noop.wasm", 50))
        dag_id = client.submit(dag_of(f"noop-{n}", WASM_MODULES / "noop.wasm", n))
        submitted = time.monotonic()
        seen = poll(lambda: (p := client.progress(dag_id))["done"] >= 0.3 * n and p, 300, "30 % done")
        cluster.kill_controller(signal.SIGKILL)
        killed = time.monotonic()
        cluster.start_controller()
        restarted = time.monotonic()
        quick = cluster.client(timeout=0.5)
        first = poll(lambda: quick.progress(dag_id), 120, "the restarted controller to answer")
        answered = time.monotonic()
        if first["done"] < seen["done"]:
            print(f"  !! done went back from {seen['done']} to {first['done']} over the restart")
        poll(lambda: quick.progress(dag_id)["done"] > first["done"], 120, "a task to complete after the restart")
        first_done = time.monotonic()
        poll(lambda: {"host-a", "host-b"} <= set(cluster.registered(quick)), 120, "both hosts back")
        hosts_back = time.monotonic()
        final = client.wait(dag_id, interval=0.01, timeout=300)
        ended = time.monotonic()
        results = client.results(dag_id)
        bad = [t["task_id"] for t in results["tasks"] if t["state"] != "succeeded" or t.get("recorded", 1) != 1]
        if final["state"] != "succeeded" or bad or len(results["tasks"]) != n:
            print(f"  !! DAG {final['state']}, {len(bad)} task(s) not succeeded-and-recorded-once: {bad[:5]}")
        if "recorded" not in results["tasks"][0]:
            print("  !! results carry no `recorded` field")
        return {
            "killed_at_done": seen["done"],
            "kill_after_s": killed - submitted,
            "answer_s": answered - restarted,
            "recovered_done": first["done"],
            "first_done_s": first_done - restarted,
            "hosts_back_s": hosts_back - restarted,
            "end_s": ended - restarted,
        }


# ---------------------------------------------------------------------- 3. journal overhead


def throughput(workdir: Path, state_dir: str | Path, n: int, repeat: int) -> list[float]:
    with ChaosCluster(workdir, heartbeat=1.0, liveness=3, state_dir=state_dir, log_level="WARNING") as cluster:
        cluster.start_controller()
        cluster.wait_controller()
        client = cluster.client(timeout=30)
        for node in ("host-a", "host-b"):
            cluster.start_host(node)
        cluster.wait_hosts(client, ["host-a", "host-b"])
        run_dag(client, dag_of("warm-up", WASM_MODULES / "noop.wasm", 50))
        return [
            float(run_dag(client, dag_of(f"noop-{n}", WASM_MODULES / "noop.wasm", n))["elapsed_s"])
            for _ in range(repeat)
        ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--restart-tasks", type=int, default=10_000)
    ap.add_argument("--throughput-tasks", type=int, default=2000)
    args = ap.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bxthre3-ft-") as tmp:
        root = Path(tmp)
        print(machine_info(root))
        run = iter(range(1_000_000))

        print("\n1. host SIGKILL -> its task running on another host")
        for heartbeat, liveness in ((1.0, 3), (0.25, 4)):
            times = [host_death_once(root / f"run{next(run)}", heartbeat, liveness) for _ in range(args.repeat)]
            print(
                median_line(f"heartbeat {heartbeat:g} s, liveness {liveness} (bound {heartbeat * liveness:g} s)", times)
            )

        n = args.restart_tasks
        print(f"\n2. controller kill -9 at ~30 % of {n:,} noop tasks (2 hosts, heartbeat 1 s, liveness 3), restart")
        runs = [restart_once(root / f"run{next(run)}", n) for _ in range(args.repeat)]
        killed_at = ", ".join(str(int(r["killed_at_done"])) for r in runs)
        after_s = ", ".join(f"{r['kill_after_s']:.2f}" for r in runs)
        recovered = ", ".join(str(int(r["recovered_done"])) for r in runs)
        print(f"  killed at {killed_at} done ({after_s} s after submission); done after restart: {recovered}")
        print(median_line("restart -> controller answers", [r["answer_s"] for r in runs]))
        print(median_line("restart -> first task completed", [r["first_done_s"] for r in runs]))
        print(median_line("restart -> both hosts registered", [r["hosts_back_s"] for r in runs]))
        print(median_line("restart -> DAG done", [r["end_s"] for r in runs]))

        n = args.throughput_tasks
        print(f"\n3. {n:,} noop tasks over 2 hosts x 1 slot, journal on vs :memory:")
        mem_dir: str | Path = ":memory:"
        memory = throughput(root / f"run{next(run)}", mem_dir, n, args.repeat)
        disk = throughput(root / f"run{next(run)}", root / "journal", n, args.repeat)
        rate = [n / t for t in memory], [n / t for t in disk]
        print(median_line("in memory (--state-dir :memory:)", rate[0], "tasks/s", "{:,.0f}"))
        print(median_line("journal   (--state-dir DIR)     ", rate[1], "tasks/s", "{:,.0f}"))
        overhead = (statistics.median(disk) / statistics.median(memory) - 1) * 100
        verdict = "OK" if overhead < 25 else "OVER the 25 % target"
        print(f"  journal overhead: {overhead:+.1f} % of wall time ({verdict})")
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ClusterError, AssertionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
