"""Throughput and chain latency of a controller and 2 hosts, all real processes on loopback.

    python benchmarks/core_throughput.py [--tasks 2000] [--chain 200] [--repeat 3] [--slots 1]

Prints tasks/s for N independent trivial tasks (wasm_modules/noop.wasm) and the per-hop
latency of a chain of dependent tasks (wasm_modules/inc.wasm), each the median of --repeat runs,
measured from submission to the DAG's end as the controller records it.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bxthre3.client.connection import ControllerClient  # noqa: E402
from bxthre3.common.errors import ClusterError  # noqa: E402
from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec  # noqa: E402
from bxthre3.wasm.inspect import check_wasi_command  # noqa: E402
from bxthre3.wire.addresses import Address  # noqa: E402
from bxthre3.wire.security import CurveKeys, new_token  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 5.0) -> None:
    """SIGTERM every process still running, give each `timeout` seconds, then SIGKILL and reap."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def module(name: str) -> tuple[str, bytes]:
    import hashlib

    data = (REPO / "wasm_modules" / f"{name}.wasm").read_bytes()
    check_wasi_command(data, name=name)
    return hashlib.sha256(data).hexdigest(), data


def independent(n: int) -> DagSpec:
    sha, data = module("noop")
    tasks = tuple(TaskSpec(id=f"t{i}", module=sha, module_name="noop.wasm") for i in range(n))
    return DagSpec(name=f"noop-{n}", tasks=tasks, modules={sha: data}, cache=False)


def chain(n: int) -> DagSpec:
    sha, data = module("inc")
    tasks = [TaskSpec(id="c0", module=sha, module_name="inc.wasm")]
    for i in range(1, n):
        tasks.append(
            TaskSpec(
                id=f"c{i}",
                module=sha,
                module_name="inc.wasm",
                inputs=(TaskInput(InputKind.OUTPUT, f"c{i - 1}"),),
                depends_on=(f"c{i - 1}",),
            )
        )
    return DagSpec(name=f"chain-{n}", tasks=tuple(tasks), modules={sha: data}, cache=False)


def run_once(client: ControllerClient, spec: DagSpec) -> float:
    dag_id = client.submit(spec)
    final = client.wait(dag_id, interval=0.01, timeout=600)
    if final["state"] != "succeeded":
        raise SystemExit(f"{spec.name} ended {final['state']}")
    return float(final["elapsed_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slots", type=int, default=1)
    args = ap.parse_args()

    token = new_token()  # CURVE on, as in every default cluster
    env = dict(os.environ, PYTHONPATH=str(REPO), BXTHRE3_TOKEN=token)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.TemporaryDirectory()

    def start(*cmd: str) -> None:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bxthre3", *cmd, "--log-level", "WARNING"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")  # fmt: skip
    try:
        start("controller", "--host", "127.0.0.1", "--port", str(port), "--state-dir", f"{tmp.name}/state")
        for i in range(2):
            start("host", "--controller", f"127.0.0.1:{port}", "--node-id", f"bench-{i}",
                  "--slots", str(args.slots), "--cache-dir", f"{tmp.name}/cache")  # fmt: skip
        with ControllerClient(Address("127.0.0.1", port), keys=CurveKeys.from_token(token)) as client:
            deadline = time.monotonic() + 30
            while True:
                try:  # the controller may not be listening yet: a refused connect is told at once
                    if client.status()["totals"]["hosts"] >= 2:
                        break
                except ClusterError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("hosts did not register")
                time.sleep(0.05)
            run_once(client, independent(50))  # warm-up: module caches, executors
            rates = [args.tasks / run_once(client, independent(args.tasks)) for _ in range(args.repeat)]
            hops = [run_once(client, chain(args.chain)) / args.chain for _ in range(args.repeat)]
        print(f"{args.tasks} trivial tasks over 2 hosts x {args.slots} slot(s): "
              f"{statistics.median(rates):,.0f} tasks/s (median of {args.repeat}: "
              f"{', '.join(f'{r:,.0f}' for r in rates)})")  # fmt: skip
        print(f"chain of {args.chain} dependent tasks: {statistics.median(hops) * 1000:.2f} ms per hop "
              f"(median of {args.repeat}: {', '.join(f'{h * 1000:.2f}' for h in hops)})")  # fmt: skip
    finally:
        stop_processes(procs)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
