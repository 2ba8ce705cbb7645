"""End to end, as a user runs it: a 20,000-task DAG of an ordinary stdio C program, each CLI step timed
as a whole process against a real cluster on 127.0.0.1.

    PYTHONPATH=. python benchmarks/end_to_end.py [--tasks 20000] [--repeat 3] [--timeout 300]

The module is `printf`/`fputs` of its arguments, built `-O2`, unstripped, for wasm32-wasi with
Debian's clang (`clang-14 --target=wasm32-wasi --sysroot=/usr`, wasi-libc from the `wasi-libc`
package). The DAG is written twice: one task with `for_each: {i: {range: N}}` (how a user writes
it) and a flat file of N tasks (what a generator writes); both are validated, the for_each one is
submitted. The cluster is `bxthre3 controller --with-node-manager` (2 hosts on this 2-core machine),
once with `--engine wasm3` and once with `--engine wasmtime` (`--engines` chooses),
with `--state-dir :memory:`, `--cache-size 0` and the DAG's `cache: false`, so every run runs
every task. Phases, each the median of --repeat runs:

- validate: `bxthre3 validate DAG` (interpreter start, imports, YAML, checks; the module read once);
- submit: from starting `bxthre3 submit --wait DAG` to its printing the DAG id (load + send);
- running: the controller's elapsed_s for the DAG (first task sent to last result);
- printing: from the id to the last line printed, less the running phase (waiting, fetching the
  results and printing 20,000 tasks' outputs);
- results: `bxthre3 results ID` (text, to /dev/null) and `--json`.

Every process this starts is ended by its PID (the node manager's hosts too), and every step has a
timeout; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
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
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from core_throughput import free_port  # noqa: E402

SOURCE = r"""
#include <stdio.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        fputs(argv[i], stdout);
        fputs(i + 1 < argc ? " " : "\n", stdout);
    }
    printf("task with %d argument(s)\n", argc - 1);
    return 0;
}
"""


def build_module(work: Path) -> Path:
    """The C program above as an unstripped -O2 wasm32-wasi command module."""
    return build_c(work, SOURCE, "echo")


def build_c(work: Path, source: str, name: str) -> Path:
    """`source` built as people build C for WASI: Debian's clang, wasi-libc, -O2, unstripped."""
    clang = shutil.which("clang-14") or shutil.which("clang")
    if clang is None:
        raise SystemExit("needs Debian's clang-14 and wasi-libc (apt-get install clang-14 lld-14 wasi-libc)")
    src, out = work / f"{name}.c", work / f"{name}.wasm"
    src.write_text(source)
    subprocess.run([clang, "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-o", str(out), str(src)],
                   check=True, timeout=120)  # fmt: skip
    return out


def write_dags(work: Path, tasks: int) -> tuple[Path, Path]:
    for_each = work / "for_each.yaml"
    for_each.write_text(
        "name: e2e\n"
        "tasks:\n"
        "  - id: t\n"
        f"    for_each: {{i: {{range: {tasks}}}}}\n"
        "    module: echo.wasm\n"
        '    inputs: ["${i}"]\n'
        "    cache: false\n"
    )
    flat = work / "flat.yaml"
    lines = ["name: e2e-flat", "defaults: {cache: false}", "tasks:"]
    for i in range(tasks):
        lines += [f"  - id: t{i}", "    module: echo.wasm", f'    inputs: ["{i}"]']
    flat.write_text("\n".join(lines) + "\n")
    return for_each, flat


class Cluster:
    """`bxthre3 controller --with-node-manager` on 127.0.0.1, its own HOME, ended by PID."""

    def __init__(self, work: Path, env: dict[str, str], engine: str = "auto") -> None:
        self.port = free_port()
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bxthre3", "controller", "--with-node-manager", "--host", "127.0.0.1",
             "--port", str(self.port), "--state-dir", ":memory:", "--cache-size", "0", "--no-beacon",
             "--engine", engine, "--log-level", "WARNING"],
            env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(work / "controller.log", "wb"),
        )  # fmt: skip
        self.pids: set[int] = {self.proc.pid}

    def wait_for_hosts(self, hosts: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"controller exited with {self.proc.returncode}")
            self._remember_children()
            done = subprocess.run(self.cli("status", "--json"), env=self.env, capture_output=True, timeout=30)
            if done.returncode == 0 and json.loads(done.stdout)["totals"]["hosts"] >= hosts:
                self._remember_children()
                return
            time.sleep(0.3)
        raise SystemExit(f"{hosts} hosts did not register in {timeout:.0f} s")

    def _remember_children(self) -> None:
        try:
            self.pids.update(c.pid for c in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            pass

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bxthre3", *args, "--controller", f"127.0.0.1:{self.port}", "--timeout", "60"]

    def stop(self) -> None:
        self._remember_children()
        for pid in sorted(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for pid in sorted(self.pids):
            try:
                psutil.Process(pid).wait(max(0.1, deadline - time.monotonic()))
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
            except psutil.Error:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def timed(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path) -> float:
    """Seconds a whole process takes, its stdout to /dev/null; a failure stops the benchmark."""
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:4])} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return took


def submit_wait(cluster: Cluster, dag: Path, timeout: float, cwd: Path) -> tuple[str, float, float, int]:
    """`submit --wait`: (DAG id, seconds until the id was printed, seconds in all, lines printed)."""
    started = time.monotonic()
    proc = subprocess.Popen(cluster.cli("submit", "--wait", str(dag)), env=cluster.env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    first: list[tuple[str, float]] = []
    lines = 0

    def read() -> None:
        nonlocal lines
        assert proc.stdout is not None
        for line in proc.stdout:
            if not first:
                first.append((line.decode().strip(), time.monotonic() - started))
            lines += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit(f"submit --wait did not end in {timeout:.0f} s") from None
    total = time.monotonic() - started
    reader.join(10)
    if proc.returncode != 0 or not first:
        raise SystemExit(f"submit --wait exited {proc.returncode}")
    dag_id, to_id = first[0]
    return dag_id, to_id, total, lines


def elapsed_s(cluster: Cluster, dag_id: str, cwd: Path) -> float:
    done = subprocess.run(cluster.cli("results", dag_id, "--json"), env=cluster.env, cwd=cwd, capture_output=True,
                          timeout=120, check=True)  # fmt: skip
    results = json.loads(done.stdout)
    if results["state"] != "succeeded":
        raise SystemExit(f"DAG {dag_id} ended {results['state']}")
    return float(results["elapsed_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds any one step may take")
    ap.add_argument("--engines", default="wasm3,wasmtime",
                    help="the hosts' engines, a cluster each (wasmtime skipped where not installed)")  # fmt: skip
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e != "wasmtime" or importlib.util.find_spec("wasmtime")]

    from bxthre3.wire.security import new_token

    tmp = tempfile.TemporaryDirectory(prefix="bxthre3-e2e-")
    work = Path(tmp.name)
    env = dict(os.environ, PYTHONPATH=str(REPO), BXTHRE3_TOKEN=new_token(), HOME=str(work / "home"))
    env.pop("BXTHRE3_CONTROLLER", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # time the commands as installed: compiled once, not per run
    (work / "home").mkdir()
    module = build_module(work)
    for_each, flat = write_dags(work, args.tasks)
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}; "
          f"module {module.stat().st_size:,} bytes")  # fmt: skip

    py = [sys.executable, "-m", "bxthre3"]
    shared: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        shared.setdefault("validate (for_each)", []).append(
            timed([*py, "validate", str(for_each)], env, args.timeout, work)
        )
        shared.setdefault("validate (flat file)", []).append(
            timed([*py, "validate", str(flat)], env, args.timeout, work)
        )
    per_engine: dict[str, dict[str, list[float]]] = {}
    try:
        for engine in engines:
            figures = per_engine[engine] = {}
            run_cluster(engine, figures.setdefault, args, env, work, for_each)
    finally:
        tmp.cleanup()

    print(f"{args.tasks:,}-task DAG, median of {args.repeat} (each run in parentheses):")
    rows = list(shared) + [name for name in next(iter(per_engine.values()), {}) if name not in shared]
    width = max(len(k) for k in rows)
    print(f"  {'':<{width}}  " + "  ".join(f"{'hosts on ' + e:>28}" for e in per_engine))
    for name in rows:
        unit = "" if name.startswith("tasks/s") else " s"
        fmt = "{:,.0f}" if not unit else "{:.2f}"
        cells = []
        for engine in per_engine:
            runs = shared.get(name) or per_engine[engine].get(name, [])
            each = ", ".join(fmt.format(r) for r in runs)
            cells.append(f"{fmt.format(statistics.median(runs)) + unit:>9} ({each})" if runs else "–")
        print(f"  {name:<{width}}  " + "  ".join(f"{c:>28}" for c in cells))
    return 0


def run_cluster(
    engine: str,
    figure: Callable[[str, list[float]], list[float]],
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
    for_each: Path,
) -> None:
    """Start a cluster whose hosts run `engine`, submit the DAG --repeat times, note each phase."""
    cluster = Cluster(work, env, engine)
    try:
        cluster.wait_for_hosts(2, timeout=60)
        subprocess.run(cluster.cli("submit", "--wait", str(write_small(work))),
                       env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.timeout,
                       check=True)  # fmt: skip
        for _ in range(args.repeat):
            dag_id, to_id, total, lines = submit_wait(cluster, for_each, args.timeout, work)
            running = elapsed_s(cluster, dag_id, work)
            figure("submit --wait: submission (to the id)", []).append(to_id)
            figure("submit --wait: running (controller)", []).append(running)
            figure("submit --wait: waiting + printing", []).append(total - to_id - running)
            figure("submit --wait: in all", []).append(total)
            figure("tasks/s end to end", []).append(args.tasks / total)
            figure("results ID (text)", []).append(timed(cluster.cli("results", dag_id), env, args.timeout, work))
            figure("results ID --json", []).append(
                timed(cluster.cli("results", dag_id, "--json"), env, args.timeout, work)
            )
            if lines < args.tasks:
                raise SystemExit(f"submit --wait printed {lines} lines for {args.tasks} tasks")
    finally:
        cluster.stop()


def write_small(work: Path) -> Path:
    """A 10-task warm-up DAG of the same module: hosts load it once before the timed runs."""
    small = work / "warm.yaml"
    small.write_text(
        "name: warm\ntasks:\n  - id: w\n    for_each: {i: {range: 10}}\n    module: echo.wasm\n"
        '    inputs: ["${i}"]\n    cache: false\n'
    )
    return small


if __name__ == "__main__":
    sys.exit(main())
