"""`--engine auto` on a machine where wasmtime is installed but cannot load: the run uses Wasm3 and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, subprocess_env


def test_run_falls_back_to_wasm3_when_wasmtime_does_not_import(tmp_path: Path) -> None:
    """A `wasmtime` package that raises on import sits first on the path (pip's py3-none-any wheel on a
    platform without a native library behaves so): auto must not pick it, or every task would crash."""
    stub = tmp_path / "stub" / "wasmtime"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('wasmtime: no native library for this platform')\n")
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(stub.parent), env["PYTHONPATH"]])
    env["BXTHRE3_ENGINE"] = "auto"
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", "run", str(REPO / "dags" / "hello_fanout.yaml"), "--hosts", "1"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Hello, Bxthre3!" in proc.stdout
    said = [line for line in proc.stderr.splitlines() if "wasmtime" in line]
    assert len(said) == 1, proc.stderr
    assert said[0].endswith(
        "--engine auto: wasmtime is installed but does not load here "
        "(ImportError: wasmtime: no native library for this platform); using wasm3"
    )
