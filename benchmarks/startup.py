"""How fast `bxthre3 run` gets its embedded cluster ready, and a whole small run end to end.

    python benchmarks/startup.py [--repeat 5] [--engine wasm3]

Prints, as medians of --repeat: the embedded cluster's start (controller bound, 2 host
processes started and registered over CURVE) measured in-process around LocalCluster;
the CLI's own start (interpreter and imports, `bxthre3 --version`); and the wall time of
`bxthre3 run dags/hello_fanout.yaml`, from process start to exit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bxthre3.commands.local_cluster import LocalCluster  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--engine", default="wasm3")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO))

    ready = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        with LocalCluster(hosts=2, engine=args.engine):
            ready.append(time.perf_counter() - started)

    def wall(*cmd: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bxthre3", *cmd], env=env, check=True, capture_output=True, timeout=60)
        return time.perf_counter() - started

    cli = [wall("--version") for _ in range(args.repeat)]
    run = [wall("run", str(REPO / "dags" / "hello_fanout.yaml"), "--engine", args.engine) for _ in range(args.repeat)]

    def show(label: str, values: list[float]) -> None:
        print(f"{label}: {statistics.median(values) * 1000:.0f} ms (median of {len(values)}: "
              f"{', '.join(f'{v * 1000:.0f}' for v in values)})")  # fmt: skip

    print(f"engine {args.engine}, {os.cpu_count()} CPUs")
    show("embedded cluster ready (controller + 2 hosts registered)", ready)
    show("CLI start (python -m bxthre3 --version)", cli)
    show("bxthre3 run dags/hello_fanout.yaml, start to exit", run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
