"""Modules as toolchains build them, through the real executor child and the real CLI."""

from __future__ import annotations

import hashlib
import itertools
import json
import select
from pathlib import Path

import pytest

from bxthre3.common.limits import MiB
from bxthre3.executor.parent import ExecJob, Executor
from tests.conftest import ENGINES, REPO
from tests.integration.test_cli import bxthre3
from tests.unit.test_wasm_normalize import CANONICAL, HEADER, LEGACY_EXCEPTIONS

TOOLCHAIN = REPO / "tests" / "data" / "modules" / "toolchain"
_ids = itertools.count(1)

# `_start`: v128.const 0; drop (wasmtime runs SIMD, Wasm3 does not)
SIMD = (
    HEADER
    + CANONICAL.section(1, b"\x01\x60\x00\x00")
    + CANONICAL.section(3, b"\x01\x00")
    + CANONICAL.section(7, CANONICAL.vec([CANONICAL.name("_start") + b"\x00\x00"]))
    + CANONICAL.section(10, CANONICAL.vec([CANONICAL.body(b"\xfd\x0c" + bytes(16) + b"\x1a\x0b")]))
)


def job(path: Path, *args: str, memory_limit_bytes: int = 0) -> ExecJob:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ExecJob(next(_ids), sha, str(path), args, b"", {}, memory_limit_bytes=memory_limit_bytes)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_executor_runs_clang_19_builds_on_every_engine(engine: str, tmp_path: Path) -> None:
    executor = Executor(log_path=tmp_path / "executor.log", engine=engine)
    executor.start()
    try:
        runs = [
            (job(TOOLCHAIN / "printf3_clang19.wasm", "x", "y"), b"line 1 from task\nline 2: 3 arguments\nline 3: done"),
            (job(TOOLCHAIN / "printf3_clang19.wasm", memory_limit_bytes=64 * MiB), b"line 1 from task\n"
             b"line 2: 1 arguments\nline 3: done"),
            (job(TOOLCHAIN / "call_indirect_clang19.wasm"), b"twice 7 = 14\nsquare 7 = 49\n1 arguments\n"),
        ]  # fmt: skip
        for exec_job, expected in runs:
            executor.submit(exec_job)
            assert select.select([executor.fileno()], [], [], 20)[0], "no result"
            result = executor.read_result()
            assert (result.reason, result.error, result.stdout) == (None, "", expected)
    finally:
        executor.kill()
        executor.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_executor_refuses_what_its_engine_cannot_run_with_the_flag(engine: str, tmp_path: Path) -> None:
    simd = tmp_path / "simd.wasm"
    simd.write_bytes(SIMD)
    executor = Executor(log_path=tmp_path / "executor.log", engine=engine)
    executor.start()
    try:
        executor.submit(job(simd, memory_limit_bytes=64 * MiB))
        assert select.select([executor.fileno()], [], [], 20)[0], "no result"
        result = executor.read_result()
    finally:
        executor.kill()
        executor.close()
    if engine == "wasm3":
        assert result.reason is not None and result.reason.value == "invalid_module"
        assert "-mno-simd128" in result.error and "wasmtime host" in result.error
    else:
        assert (result.reason, result.error) == (None, "")


def test_run_returns_all_three_lines_of_an_unstripped_build(tmp_path: Path) -> None:
    dag = tmp_path / "printf.yaml"
    dag.write_text(f"name: printf\ntasks:\n  - id: p\n    module: {TOOLCHAIN / 'printf3_clang19.wasm'}\n")
    proc = bxthre3("run", str(dag), "--json", "--hosts", "1")
    assert proc.returncode == 0, proc.stderr
    task = json.loads(proc.stdout)["tasks"][0]
    assert task["output"] == "line 1 from p\nline 2: 1 arguments\nline 3: done"


def test_validate_notes_wasmtime_only_modules_and_refuses_what_no_engine_runs(tmp_path: Path) -> None:
    (tmp_path / "simd.wasm").write_bytes(SIMD)
    (tmp_path / "eh.wasm").write_bytes(LEGACY_EXCEPTIONS)
    good = tmp_path / "good.yaml"
    good.write_text("name: v\ntasks:\n  - id: vec\n    module: simd.wasm\n")
    proc = bxthre3("validate", str(good))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1] == (
        f"{good}: note: module simd.wasm runs on wasmtime hosts only: it uses SIMD (v128) instructions, which "
        "Wasm3 cannot run: build without -msimd128 (or add -mno-simd128); or run it on a wasmtime host "
        "(--engine wasmtime)"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: e\ntasks:\n  - id: throws\n    module: eh.wasm\n")
    proc = bxthre3("validate", str(bad))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "bad.yaml" in line and "throws" in line and "module" in line and "-fno-exceptions" in line
    assert "neither engine runs" in line
