"""How close compiled WebAssembly comes to native code, engine by engine.

    PYTHONPATH=. python benchmarks/engines_vs_native.py [--repeat 3] [--quick] [--kernels a,b]
        [--no-wasm3] [--breakdown] [--cluster]

Builds each kernel's C source twice from the same file: natively (clang -O2, the compiler the
WebAssembly build uses; gcc -O2 too when installed) and for wasm32-wasi (clang -O2, wasi-libc),
into a temporary directory, and runs it

- natively (a process per run: ~1 ms of the time is process start),
- in plain wasmtime-py with its default configuration (what wasmtime itself can do),
- in Bxthre3's wasmtime engine through an executor child exactly as a host runs a task (the module
  memory-capped at the host's --ram-limit, the executor's address-space backstop), with the default
  task timeout (300 s) and with a short one (10 s: stopped inside the engine, so epoch checks),
- and, for reference, in Wasm3 through an executor as well (one run: it interprets).

Every run's stdout must be byte-identical to the native one. Times are medians of --repeat runs
after one warm-up (wasmtime compiles a module once per executor; compile time is not counted);
the ratio is native time / engine time, so 1.00x is native speed and higher is better. Times are
CPU time by default (--clock wall for wall time): of the native process, of the thread running
wasmtime-py, and of the executor child's main thread (receiving the job and sending the result
included, ~0.1 ms); with --clock wall, engine times are what the engine measures.

Kernels: Mandelbrot (wasm_modules/src/mandel_tile.c), matmul (matmul_tile.c, int64), password hash
(pwhash_chunk.c, iterated SHA-256) -- the project's own example modules -- and a call-heavy one
(benchmarks/kernels/calls.c: recursive fib and calls through a table of function pointers).

--breakdown also runs plain wasmtime-py in the configurations that separate what each piece of an
engine setting costs: epoch interruption, fuel, and a small memory reservation (explicit bounds
checks on every access). --cluster also runs dags/mandelbrot.yaml (and a heavier variant) on one and
two local hosts: what a second host buys end to end.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from bxthre3.dag.spec import DagSpec
    from bxthre3.executor.parent import Executor

MODULE_SRC = REPO / "wasm_modules" / "src"
KERNEL_SRC = REPO / "benchmarks" / "kernels"
DAG = REPO / "dags" / "mandelbrot.yaml"

RUN_TIMEOUT_S = 300.0
"""Longest any single run may take before the benchmark gives up (bounded: nothing waits forever)."""

TASK_TIMEOUTS_S = (300.0, 10.0)
"""The timeouts Bxthre3 runs get: the scheduler's default, and a short one (stopped inside the engine)."""

HOST_RAM_MB = 128
"""The memory limit of the host the executor stands in for (`bxthre3 host`'s default --ram-limit)."""


@dataclasses.dataclass(frozen=True)
class Kernel:
    name: str
    source: Path
    args: tuple[str, ...]
    """Arguments after argv[0] for a full run (native ~0.3-0.6 s on a 2020s x86-64 core)."""
    quick_args: tuple[str, ...]
    """Arguments for --quick (a few tens of ms natively)."""


KERNELS = (
    Kernel("mandelbrot", MODULE_SRC / "mandel_tile.c", ("512", "512", "0", "0", "512", "512", "2048"),
           ("256", "256", "0", "0", "256", "256", "256")),
    Kernel("matmul", MODULE_SRC / "matmul_tile.c", ("900", "7", "0", "900", "0", "900"),
           ("200", "7", "0", "200", "0", "200")),
    Kernel("pwhash", MODULE_SRC / "pwhash_chunk.c", ("60000", *(f"password{i}" for i in range(16))),
           ("5000", "alpha", "beta", "gamma", "delta")),
    Kernel("calls", KERNEL_SRC / "calls.c", ("38", "25000000"), ("27", "2000000")),
)  # fmt: skip


@dataclasses.dataclass
class Row:
    """One kernel's median times in seconds by column (None: not run)."""

    kernel: str
    times: dict[str, float | None] = dataclasses.field(default_factory=dict)
    mismatches: list[str] = dataclasses.field(default_factory=list)


# -- building ----------------------------------------------------------------------------------------


def _newest(tool: str) -> str | None:
    """`tool` or its newest Debian-versioned name (clang-19, wasm-ld-19)."""
    if shutil.which(tool):
        return tool
    names = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names.update(n for n in os.listdir(directory) if n.startswith(f"{tool}-") and n[len(tool) + 1 :].isdigit())
        except OSError:
            continue
    return max(names, key=lambda n: int(n.rsplit("-", 1)[1]), default=None)


def _compile(cmd: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, env=env)
    if done.returncode != 0:
        raise SystemExit(f"cannot build {what}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def build(kernels: Sequence[Kernel], out: Path) -> tuple[dict[str, dict[str, Path]], str]:
    """Each kernel as {"clang": binary, "gcc": binary, "wasm": module}; and the compilers' versions."""
    clang = _newest("clang")
    if clang is None:
        raise SystemExit("needs clang with the wasm32-wasi target (see wasm_modules/build.sh)")
    env = dict(os.environ)
    linker = _newest("wasm-ld")
    if linker and linker != "wasm-ld":  # clang looks for plain wasm-ld on PATH
        (out / "bin").mkdir(exist_ok=True)
        (out / "bin" / "wasm-ld").symlink_to(shutil.which(linker) or linker)
        env["PATH"] = f"{out / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    gcc = shutil.which("gcc")
    # No FMA contraction natively: wasm has no fused multiply-add, and the outputs must be identical.
    common = ["-O2", "-ffp-contract=off", "-I", str(MODULE_SRC)]
    built: dict[str, dict[str, Path]] = {}
    for kernel in kernels:
        paths = {"clang": out / f"{kernel.name}.clang", "wasm": out / f"{kernel.name}.wasm"}
        _compile([clang, *common, str(kernel.source), "-o", str(paths["clang"])], f"{kernel.name} (clang)")
        _compile([clang, "--target=wasm32-wasi", *common, str(kernel.source), "-o", str(paths["wasm"])],
                 f"{kernel.name} (wasm32-wasi)", env)  # fmt: skip
        if gcc:
            paths["gcc"] = out / f"{kernel.name}.gcc"
            _compile([gcc, *common, str(kernel.source), "-o", str(paths["gcc"])], f"{kernel.name} (gcc)")
        built[kernel.name] = paths
    versions = _first_line([clang, "--version"])
    if gcc:
        versions += "; " + _first_line([gcc, "--version"])
    return built, versions


def _first_line(cmd: Sequence[str]) -> str:
    try:
        return (subprocess.run(list(cmd), capture_output=True, text=True, timeout=30).stdout.splitlines() or ["?"])[0]
    except (OSError, subprocess.SubprocessError):
        return "?"


# -- runners: each returns (seconds, stdout) for one run -----------------------------------------------


CLOCK = {"cpu": True}
"""Which time the runners report: CPU time of the thread or process that ran the code (True), or wall time.

CPU time by default: on a shared machine (this one runs test suites) wall times swing by tens of
per cent, while the CPU time a kernel needs moves little; --clock wall measures wall time."""


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_native(binary: Path, args: Sequence[str]) -> tuple[float, bytes]:
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([str(binary), *args], capture_output=True, timeout=RUN_TIMEOUT_S)
    took = _children_cpu() - cpu if CLOCK["cpu"] else time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{binary.name} failed natively: {done.stderr.decode(errors='replace').strip()}")
    return took, done.stdout


class PlainWasmtime:
    """wasmtime-py as its own documentation uses it: one Engine per configuration, WASI from wasmtime.

    The options switch on, one at a time, what an embedder may add: epoch interruption (a check at
    every function entry and loop back-edge), fuel (a counter decremented along every block), and a
    small memory reservation (explicit bounds checks on every load and store instead of guard pages;
    Bxthre3's setting before guard pages).
    """

    def __init__(self, *, epoch: bool = False, fuel: bool = False, small_reservation: bool = False) -> None:
        import wasmtime

        self.wasmtime = wasmtime
        config = wasmtime.Config()
        config.epoch_interruption = epoch
        config.consume_fuel = fuel
        if small_reservation:
            config.memory_reservation = (HOST_RAM_MB + 1) * 1024 * 1024
            config.memory_guard_size = 64 * 1024
            config.memory_reservation_for_growth = 0
        self.engine = wasmtime.Engine(config)
        self.epoch, self.fuel = epoch, fuel
        self.modules: dict[Path, Any] = {}

    def run(self, wasm: Path, args: Sequence[str], scratch: Path) -> tuple[float, bytes]:
        wasmtime = self.wasmtime
        module = self.modules.get(wasm)
        if module is None:
            module = self.modules[wasm] = wasmtime.Module.from_file(self.engine, str(wasm))
        out = scratch / "stdout"
        wasi = wasmtime.WasiConfig()
        wasi.argv = [wasm.stem, *args]
        wasi.stdout_file = str(out)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasi)
        if self.epoch:
            store.set_epoch_deadline(1)  # never reached: nothing bumps the epoch
        if self.fuel:
            store.set_fuel(2**63 - 1)
        started, cpu = time.perf_counter(), time.thread_time()
        instance = linker.instantiate(store, module)
        try:
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                raise SystemExit(f"{wasm.name} exited {exc.code} in wasmtime-py") from None
        took = time.thread_time() - cpu if CLOCK["cpu"] else time.perf_counter() - started
        return took, out.read_bytes()


BREAKDOWN: tuple[tuple[str, dict[str, bool]], ...] = (
    ("default", {}),
    ("+ epoch", {"epoch": True}),
    ("+ fuel", {"fuel": True}),
    ("128 MiB reservation", {"small_reservation": True}),
    ("128 MiB + epoch", {"small_reservation": True, "epoch": True}),
)
"""wasmtime-py configurations that isolate each cost: (column, PlainWasmtime options)."""


class ExecutorRunner:
    """Runs modules through an executor child the way a host does (`bxthre3.host.session`)."""

    def __init__(self, engine: str) -> None:
        from bxthre3.common import limits
        from bxthre3.executor.parent import Executor
        from bxthre3.host.session import EXECUTOR_OVERHEAD_MB

        self.memory_limit = HOST_RAM_MB * limits.MiB
        self.executor: Executor = Executor(address_space_mb=HOST_RAM_MB + EXECUTOR_OVERHEAD_MB, engine=engine)
        self.executor.start()
        self.job_id = 0

    def run(self, wasm: Path, args: Sequence[str], timeout_s: float = 0.0) -> tuple[float, bytes]:
        import hashlib

        from bxthre3.executor.parent import ExecJob

        self.job_id += 1
        sha = hashlib.sha256(wasm.read_bytes()).hexdigest()
        job = ExecJob(self.job_id, sha, str(wasm), tuple(args), b"", {}, program_name=wasm.stem,
                      memory_limit_bytes=self.memory_limit, timeout_s=timeout_s)  # fmt: skip
        cpu = self._cpu()
        self.executor.submit(job)
        result = self.executor.read_result(timeout=RUN_TIMEOUT_S)
        if result.reason is not None:
            raise SystemExit(f"{wasm.name} failed in {self.executor.engine}: {result.reason.value} {result.error}")
        return (self._cpu() - cpu if CLOCK["cpu"] else result.duration), result.stdout

    def _cpu(self) -> float:
        """CPU time of the child's main thread (the one running modules), in ns-precise seconds."""
        with open(f"/proc/{self.executor.pid}/schedstat") as file:
            return int(file.read().split()[0]) / 1e9

    def close(self) -> None:
        self.executor.kill()
        self.executor.close()


def median_of(
    run: Callable[..., tuple[float, bytes]], call: Sequence[Any], repeat: int, expected: bytes, row: Row, column: str
) -> None:
    """Time `run(*call)` `repeat` times into `row`'s `column`, noting an output that differs from `expected`."""
    times = []
    for _ in range(repeat):
        took, out = run(*call)
        times.append(took)
        if out != expected and column not in row.mismatches:
            row.mismatches.append(column)
    row.times[column] = statistics.median(times)


# -- report ------------------------------------------------------------------------------------------


def machine_info(versions: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import wasmtime

        wasmtime_version = getattr(wasmtime, "__version__", "") or _dist_version("wasmtime")
    except ImportError:
        wasmtime_version = "not installed"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{now}; {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}\n"
        f"Python {platform.python_version()}, wasmtime-py {wasmtime_version}, pywasm3 {_dist_version('pywasm3')}; "
        f"{versions}"
    )


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def print_table(title: str, rows: Sequence[Row], columns: Sequence[str]) -> None:
    """Markdown: native ms, then each engine's ms and its speed as a fraction of native."""
    print(f"\n{title}")
    print("| kernel | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in rows:
        native = row.times.get("native (clang -O2)")
        cells = []
        for column in columns:
            took = row.times.get(column)
            if took is None:
                cells.append("–")
            elif column.startswith("native") or native is None:
                cells.append(f"{took * 1000:,.0f} ms")
            else:
                cells.append(f"{took * 1000:,.0f} ms ({native / took:.2f}x)")
        print(f"| {row.kernel} | " + " | ".join(cells) + " |")
    for row in rows:
        if row.mismatches:
            print(f"OUTPUT DIFFERS from native: {row.kernel} in {', '.join(row.mismatches)}")


# -- cluster (the former mandelbrot_native_vs_wasm.py's second half) --------------------------------


def load_spec(max_iter: int | None) -> DagSpec:
    from bxthre3.dag import workloads
    from bxthre3.dag.yaml_loader import load_dag, parse_dag

    if max_iter is None:
        return dataclasses.replace(load_dag(DAG), cache=False)  # every run computes
    text = workloads.mandelbrot_dag(max_iter=max_iter)
    return dataclasses.replace(
        parse_dag(text, source=f"mandelbrot max_iter={max_iter}", base_dir=DAG.parent), cache=False
    )


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


def cluster(repeat: int, heavy_max_iter: int) -> None:
    variants: list[tuple[str, int | None]] = [(str(DAG.relative_to(REPO)), None)]
    if heavy_max_iter > 0:
        variants.append((f"the same DAG with max_iter {heavy_max_iter}", heavy_max_iter))
    for title, max_iter in variants:
        spec = load_spec(max_iter)
        print(f"\n{title}, {len(spec.tasks)} tasks, end to end (median of {repeat} after one warm-up run):")
        medians = {}
        for hosts in (1, 2):
            elapsed, wall, work = run_cluster(spec, hosts, repeat)
            medians[hosts] = elapsed
            print(
                f"  {hosts} host{'s' if hosts > 1 else ' '}  {elapsed:6.2f} s controller-recorded, "
                f"{wall:6.2f} s submit-to-done at the client, {work:5.2f} s of task run time"
            )
        print(f"  speed-up 2 hosts vs 1: {medians[1] / medians[2]:.2f}x")


# -- main --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="small inputs (a smoke run, not figures)")
    names = ", ".join(k.name for k in KERNELS)
    parser.add_argument("--kernels", default="", help=f"comma-separated subset of: {names}")
    parser.add_argument("--no-wasm3", action="store_true", help="skip Wasm3 (the slowest column)")
    parser.add_argument("--wasm3-repeat", type=int, default=1, help="timed Wasm3 runs (default 1)")
    parser.add_argument("--breakdown", action="store_true", help="also plain wasmtime-py per configuration")
    parser.add_argument("--cluster", action="store_true", help="also the Mandelbrot DAG on 1 and 2 local hosts")
    parser.add_argument("--heavy-max-iter", type=int, default=2048, help="--cluster's heavy variant (0 skips)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="time measured (default cpu)")
    args = parser.parse_args(argv)
    CLOCK["cpu"] = args.clock == "cpu"
    if not 1 <= args.repeat <= 50 or not 1 <= args.wasm3_repeat <= 50:
        parser.error("--repeat and --wasm3-repeat take 1 to 50")
    wanted = {k.strip() for k in args.kernels.split(",") if k.strip()}
    unknown = wanted - {k.name for k in KERNELS}
    if unknown:
        parser.error(f"unknown kernel(s): {', '.join(sorted(unknown))}")
    kernels = [k for k in KERNELS if not wanted or k.name in wanted]

    from bxthre3.wasm.choice import wasmtime_installed

    with tempfile.TemporaryDirectory(prefix="bxthre3-engines-") as tmp:
        scratch = Path(tmp)
        built, versions = build(kernels, scratch)
        print(machine_info(versions))
        print(
            f"{args.clock} time, medians of {args.repeat} after a warm-up; "
            "ratio = native time / engine time (1.00x = native speed)"
        )
        has_wasmtime = wasmtime_installed()
        columns = ["native (clang -O2)", "native (gcc -O2)"]
        if has_wasmtime:
            columns += ["wasmtime-py default", *(f"Bxthre3 wasmtime, {t:g} s timeout" for t in TASK_TIMEOUTS_S)]
        if not args.no_wasm3:
            columns.append("Bxthre3 Wasm3")
        runners: dict[str, Any] = {}
        try:
            if has_wasmtime:
                runners["plain"] = PlainWasmtime()
                runners["bx"] = ExecutorRunner("wasmtime")
            if not args.no_wasm3:
                runners["wasm3"] = ExecutorRunner("wasm3")
            rows = []
            for kernel in kernels:
                paths, kargs = built[kernel.name], kernel.quick_args if args.quick else kernel.args
                row = Row(kernel.name)
                _, expected = run_native(paths["clang"], kargs)  # warm-up and the reference output
                median_of(run_native, (paths["clang"], kargs), max(args.repeat, 5), expected, row, columns[0])
                if "gcc" in paths:
                    median_of(run_native, (paths["gcc"], kargs), max(args.repeat, 5), expected, row, columns[1])
                if has_wasmtime:
                    plain, bx = runners["plain"], runners["bx"]
                    plain.run(paths["wasm"], kargs, scratch)
                    median_of(plain.run, (paths["wasm"], kargs, scratch), args.repeat, expected, row, columns[2])
                    for timeout_s, column in zip(TASK_TIMEOUTS_S, columns[3:5], strict=True):
                        bx.run(paths["wasm"], kargs, timeout_s)  # warm-up: compiles (once per kind of run)
                        median_of(bx.run, (paths["wasm"], kargs, timeout_s), args.repeat, expected, row, column)
                if "wasm3" in runners:
                    w3 = runners["wasm3"]
                    median_of(w3.run, (paths["wasm"], kargs), args.wasm3_repeat, expected, row, columns[-1])
                rows.append(row)
                print(f"  {kernel.name}: done", file=sys.stderr)
        finally:
            for name in ("bx", "wasm3"):
                if name in runners:
                    runners[name].close()
        print_table("engines vs native (the same C source, -O2):", rows, columns)
        if args.breakdown and has_wasmtime:
            breakdown(kernels, built, args, scratch, rows)
    if args.cluster:
        cluster(args.repeat, args.heavy_max_iter)
    return 0


def breakdown(kernels: Sequence[Kernel], built: dict[str, dict[str, Path]], args: Any, scratch: Path,
              rows: Sequence[Row]) -> None:  # fmt: skip
    """Plain wasmtime-py per configuration: what epoch interruption, fuel and bounds checks each cost."""
    columns = ["native (clang -O2)", *(f"wasmtime-py {name}" for name, _ in BREAKDOWN)]
    table = []
    for kernel, first in zip(kernels, rows, strict=True):
        paths, kargs = built[kernel.name], kernel.quick_args if args.quick else kernel.args
        row = Row(kernel.name, {columns[0]: first.times.get("native (clang -O2)")})
        _, expected = run_native(paths["clang"], kargs)
        for (_, options), column in zip(BREAKDOWN, columns[1:], strict=True):
            plain = PlainWasmtime(**options)
            plain.run(paths["wasm"], kargs, scratch)
            median_of(plain.run, (paths["wasm"], kargs, scratch), args.repeat, expected, row, column)
        table.append(row)
        print(f"  {kernel.name}: breakdown done", file=sys.stderr)
    print_table("what each wasmtime setting costs (plain wasmtime-py):", table, columns)


if __name__ == "__main__":
    raise SystemExit(main())
