"""Kept for old links: now part of benchmarks/engines_vs_native.py (every kernel, every engine).

    python benchmarks/mandelbrot_native_vs_wasm.py [--repeat 3] [--no-cluster] [--heavy-max-iter 2048]

Runs that benchmark's Mandelbrot kernel (native, wasmtime-py, Bxthre3's wasmtime and Wasm3) and,
unless --no-cluster, the Mandelbrot DAG on one and two local hosts, as this script used to.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engines_vs_native import main  # noqa: E402  (the benchmarks directory is not a package)

if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--no-cluster"]
    cluster = [] if "--no-cluster" in sys.argv[1:] else ["--cluster"]
    raise SystemExit(main(["--kernels", "mandelbrot", *cluster, *argv]))
