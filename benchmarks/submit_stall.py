"""How long a 100,000-task submission stalls the controller's loop (heartbeats, every other frame).

    PYTHONPATH=. python benchmarks/submit_stall.py [--tasks 100000] [--shape independent chain]
        [--hosts 0] [--controller-repo PATH]

A real controller (subprocess, journal in a temporary state dir, heartbeat 0.25 s, liveness 4)
and `tests/heartbeat_probe.py` in a process of its own: its pings are answered at once by the
loop, so the longest round trip is the loop's worst stall; its registered (paused) host records
the longest gap between the controller's heartbeats and any `reregister`. Each shape is submitted
once by a client, and the figures cover the submission and the second after its reply.

--controller-repo runs the controller from another checkout (e.g. `git archive main | tar -x -C
/tmp/base`), so the same script measures before and after a change.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bxthre3.client.connection import ControllerClient  # noqa: E402
from bxthre3.wire.addresses import Address  # noqa: E402
from bxthre3.wire.security import CurveKeys, new_token  # noqa: E402

HEARTBEAT_S = 0.25
LIVENESS = 4


def ask(probe: subprocess.Popen[str], command: str) -> dict[str, float]:
    assert probe.stdin is not None and probe.stdout is not None
    probe.stdin.write(command + "\n")
    probe.stdin.flush()
    return json.loads(probe.stdout.readline()) if command == "report" else {}


def main() -> int:
    from core_throughput import chain, free_port, independent, stop_processes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--shape", nargs="+", choices=["independent", "chain"], default=["independent", "chain"])
    ap.add_argument("--hosts", type=int, default=0, help="real hosts running the DAG meanwhile (default none)")
    ap.add_argument("--controller-repo", type=Path, default=REPO, help="checkout the controller runs from")
    args = ap.parse_args()
    token = new_token()
    keys = CurveKeys.from_token(token)
    port = free_port()
    env = dict(os.environ, BXTHRE3_TOKEN=token)
    tmp = tempfile.TemporaryDirectory()
    procs: list[subprocess.Popen[bytes]] = []
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"controller from {args.controller_repo}")  # fmt: skip
    controller = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", str(port),
         "--state-dir", f"{tmp.name}/state", "--heartbeat", str(HEARTBEAT_S), "--liveness", str(LIVENESS),
         "--log-level", "WARNING"],
        env=dict(env, PYTHONPATH=str(args.controller_repo)), cwd=args.controller_repo,  # -m puts the cwd first
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    procs.append(controller)
    for i in range(args.hosts):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "bxthre3", "host", "--controller", f"127.0.0.1:{port}", "--node-id", f"bench-{i}",
             "--heartbeat", str(HEARTBEAT_S), "--cache-dir", f"{tmp.name}/cache", "--log-level", "WARNING"],
            env=dict(env, PYTHONPATH=str(REPO)),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
    probe = subprocess.Popen(
        [sys.executable, "-m", "tests.heartbeat_probe", "--port", str(port), "--interval", str(HEARTBEAT_S)],
        env=dict(env, PYTHONPATH=str(REPO)), cwd=REPO, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with ControllerClient(Address("127.0.0.1", port), keys=keys, timeout=300) as client:
            deadline = time.monotonic() + 30
            while client.status()["totals"]["hosts"] < args.hosts + 1:
                if time.monotonic() > deadline:
                    raise SystemExit("the probe and hosts did not register")
                time.sleep(0.05)
            for shape in args.shape:
                spec = (independent if shape == "independent" else chain)(args.tasks)
                time.sleep(1.0)
                ask(probe, "reset")
                started = time.monotonic()
                client.submit(spec)
                accepted = time.monotonic() - started
                time.sleep(1.0)
                seen = ask(probe, "report")
                print(f"{shape} DAG of {args.tasks:,} tasks: accepted in {accepted:.2f} s; loop's worst stall "
                      f"{seen['max_rtt'] * 1000:,.0f} ms ({seen['pings']:.0f} pings); longest gap between heartbeats "
                      f"{seen['max_gap']:.2f} s (interval {HEARTBEAT_S} s, dead after {HEARTBEAT_S * LIVENESS:g} s); "
                      f"{seen['reregisters']:.0f} re-registrations")  # fmt: skip
    finally:
        if probe.stdin is not None:
            probe.stdin.close()
        try:
            probe.wait(5)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.wait()
        stop_processes(procs)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
