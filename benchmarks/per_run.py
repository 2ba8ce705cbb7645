"""What one run costs on each engine: kept instances (reset between runs) against a fresh instance per run.

    PYTHONPATH=. python benchmarks/per_run.py [--runs 2000] [--repeat 5] [--engines wasm3,wasmtime]

Runs each module in this process through the engine the executor uses (`run_module` of
`bxthre3.wasm.wasm3` or `bxthre3.wasm.wasmtime`, the module prepared as the executor prepares it, with
a 128 MiB memory cap), `--runs` times per batch, and prints the median time per run over `--repeat`
batches, first with kept instances (the default) and then with BXTHRE3_KEEP_INSTANCES=0 (a fresh
instance every run: on Wasm3 compiling afresh, as before). Modules: an ordinary stdio C
program (benchmarks/end_to_end.py's, clang -O2, unstripped), the hand-tuned `inc` example, a C program
that grows its memory by 1 MiB on every run, and a Mandelbrot tile. Every run's output is checked.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from end_to_end import build_c, build_module  # noqa: E402

from bxthre3.common import limits  # noqa: E402
from bxthre3.wasm import choice as engines  # noqa: E402
from bxthre3.wasm.reset import KEEP_INSTANCES_ENV  # noqa: E402
from bxthre3.wasm.sandbox import prepare_module  # noqa: E402

LIMIT = 128 * limits.MiB

GROWER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], 0, 10) : 1;  /* from argv: the compiler cannot elide it */
    unsigned char *p = malloc(n);
    if (!p) return 1;
    memset(p, 7, n);
    printf("%d %zu\n", p[n - 1], (size_t)__builtin_wasm_memory_size(0));
    free(p);
    return 0;
}
"""


Case = tuple[str, bytes, tuple[str, ...], Callable[[bytes], bool]]


def per_run_ms(engine: str, case: Case, runs: int, repeat: int) -> float:
    _, wasm, args, good = case
    run_module = engines.runner(engine)
    batches = []
    for _ in range(repeat):
        started = time.perf_counter()
        for i in range(runs):
            result = run_module(
                wasm, args=args, stdin=b"", env={"BXTHRE3_TASK_ID": f"t{i}"}, program_name=f"t{i}",
                memory_limit_bytes=LIMIT,
            )  # fmt: skip
            if result.reason is not None or not good(result.stdout):
                raise SystemExit(f"{case[0]}: unexpected result {result.reason} {result.error} {result.stdout[:80]!r}")
        batches.append((time.perf_counter() - started) / runs * 1000)
    return statistics.median(batches)


def in_thread(fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run `fn` in a new thread: a thread's pool is made on its first run, reading the environment then."""
    out: list[dict[str, float]] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--engines", default="wasm3,wasmtime", help="wasmtime is skipped where it is not installed")
    args = ap.parse_args()
    chosen = [e for e in args.engines.split(",") if e != engines.WASMTIME or importlib.util.find_spec("wasmtime")]
    print(f"{time.strftime('%Y-%m-%d')}, machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; median of {args.repeat} batches of {args.runs:,} runs")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bxthre3-per-run-") as tmp:
        work = Path(tmp)

        def prepared(path: Path) -> bytes:
            return prepare_module(path.read_bytes(), engine=engines.WASM3, limit_bytes=LIMIT, name=path.name)

        cases: list[Case] = [
            ("ordinary stdio C (printf, fputs)", prepared(build_module(work)), ("hello", "world"),
             lambda out: out == b"hello world\ntask with 2 argument(s)\n"),
            ("hand-tuned inc.c (raw read/write)", prepared(REPO / "wasm_modules" / "inc.wasm"), ("41",),
             lambda out: out.strip() == b"42"),
            ("C growing memory by 1 MiB per run", prepared(build_c(work, GROWER, "grow")), ("1048576",),
             lambda out: out.startswith(b"7 ") and int(out.split()[1]) > 16),
            ("Mandelbrot tile 32x32", prepared(REPO / "wasm_modules" / "mandel_tile.wasm"),
             ("256", "256", "0", "0", "32", "32", "64"), lambda out: len(out) > 0),
        ]  # fmt: skip

        figures: dict[tuple[str, str], tuple[float, float]] = {}
        for engine in chosen:

            def measure(engine: str = engine) -> dict[str, float]:
                return {case[0]: per_run_ms(engine, case, args.runs, args.repeat) for case in cases}

            kept = in_thread(measure)
            os.environ[KEEP_INSTANCES_ENV] = "0"
            try:
                fresh = in_thread(measure)
            finally:
                del os.environ[KEEP_INSTANCES_ENV]
            for name in kept:
                figures[engine, name] = kept[name], fresh[name]
    print(f"{'engine':<9} {'module':<38} {'kept instance':>14} {'fresh instance':>15} {'speed-up':>9}")
    for (engine, name), (kept_ms, fresh_ms) in figures.items():
        print(f"{engine:<9} {name:<38} {kept_ms:>11.3f} ms {fresh_ms:>12.3f} ms {fresh_ms / kept_ms:>8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
