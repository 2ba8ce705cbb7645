"""Hostile modules end the same way on both engines, through real executors, and the executor lives on.

Each case runs as a host runs it: an executor child capped like a 64 MiB host's (its memory limit
plus the host's overhead), the module memory-capped, a short timeout, and the host's kill when
no result comes (Wasm3 cannot stop a module itself; wasmtime can). Then a healthy job must run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import select
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bxthre3.common import limits
from bxthre3.common.errors import ModuleError
from bxthre3.common.failures import FailureReason
from bxthre3.executor.parent import ExecJob, ExecResult, Executor, ExecutorDied
from bxthre3.host.session import EXECUTOR_OVERHEAD_MB
from bxthre3.wasm.choice import WASM3
from bxthre3.wasm.inspect import check_wasi_command
from bxthre3.wasm.normalize import MAX_FUNCTIONS, uleb
from tests.conftest import ENGINES

ROOT = Path(__file__).resolve().parents[2]
TEST_MODULES = ROOT / "tests" / "data" / "modules"

MEMORY_LIMIT = 64 * limits.MiB
TIMEOUT_S = 1.0
GRACE_S = 1.5
"""How long past the timeout the test, like a host, waits before killing the executor."""
MAX_STDOUT = 64 * 1024


def _wat(text: str) -> bytes:
    wasmtime = pytest.importorskip("wasmtime", reason="these cases are assembled by wasmtime's wat2wasm")
    return bytes(wasmtime.wat2wasm(text))


_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32))) (memory (export "memory") 1)'


def _many_functions(count: int) -> bytes:
    """A valid module of `count` functions returning i32 and a `_start` calling the last one."""

    def section(section_id: int, payload: bytes) -> bytes:
        return bytes([section_id]) + uleb(len(payload)) + payload

    types = b"\x02\x60\x00\x01\x7f\x60\x00\x00"  # () -> i32, () -> ()
    functions = uleb(count + 1) + b"\x00" * count + b"\x01"
    exports = b"\x01\x06_start\x00" + uleb(count)
    body = b"\x00\x41\x07\x0b"  # no locals; i32.const 7; end
    start = b"\x00\x10" + uleb(count - 1) + b"\x1a\x0b"  # call the last; drop; end
    code = uleb(count + 1) + (uleb(len(body)) + body) * count + uleb(len(start)) + start
    return (
        b"\x00asm\x01\x00\x00\x00" + section(1, types) + section(3, functions) + section(5, b"\x01\x00\x01")
        + section(7, exports) + section(10, code)
    )  # fmt: skip


def _file(name: str) -> Callable[[], bytes]:
    return lambda: (TEST_MODULES / f"{name}.wasm").read_bytes()


CASES: dict[str, tuple[Callable[[], bytes], FailureReason | None]] = {
    "start-function-trap": (lambda: _wat(f'(module {_EXIT} (func $s unreachable) (start $s) (func (export "_start")))'),
                            FailureReason.TRAP),
    "start-function-loop": (lambda: _wat(f'(module {_EXIT} (func $s (loop $l br $l)) (start $s) '
                                         '(func (export "_start")))'), FailureReason.TIMEOUT),
    "start-function-exit": (lambda: _wat(f'(module {_EXIT} (func $s (call $exit (i32.const 7))) (start $s) '
                                         '(func (export "_start")))'), FailureReason.EXIT_CODE),
    "deep-recursion": (_file("recurse"), FailureReason.TRAP),
    "memory-bomb": (_file("membomb"), FailureReason.MEMORY_LIMIT),
    "output-flood": (_file("flood"), FailureReason.OUTPUT_LIMIT),
    "stdin-after-eof-loop": (_file("eof_loop"), FailureReason.TIMEOUT),
    "huge-data-segment": (lambda: _wat('(module (memory (export "memory") 256) (data (i32.const 1024) "'
                                       + "\\2a" * (8 << 20) + '") (func (export "_start")))'), None),
    "data-segment-out-of-bounds": (lambda: _wat('(module (memory (export "memory") 1) (data (i32.const 65000) "'
                                                + "\\2a" * 4096 + '") (func (export "_start")))'),
                                   FailureReason.INVALID_MODULE),
    "most-functions": (lambda: _many_functions(MAX_FUNCTIONS - 1), None),  # wasmtime compiles for ~3 s
    "too-many-functions": (lambda: _many_functions(2 * MAX_FUNCTIONS), FailureReason.INVALID_MODULE),
}  # fmt: skip
"""Each hostile case and the reason it must end with on every engine (None: it succeeds)."""

SLOW_CASES = {"most-functions": 60.0, "huge-data-segment": 20.0, "too-many-functions": 20.0}
"""Cases whose preparation alone (decoding, compiling) may take seconds, with the timeouts they get."""


@pytest.fixture(params=ENGINES)
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    address_space_mb = MEMORY_LIMIT // limits.MiB + EXECUTOR_OVERHEAD_MB  # as a 64 MiB host's
    executor = Executor(log_path=tmp_path / "executor.log", address_space_mb=address_space_mb, engine=request.param)
    executor.start()
    try:
        yield executor
    finally:
        executor.kill()
        executor.close()


def _job(path: Path, job_id: int, **changes: object) -> ExecJob:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    job = ExecJob(job_id, sha, str(path), (), b"", {}, max_stdout=MAX_STDOUT, memory_limit_bytes=MEMORY_LIMIT)
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def _run_as_a_host(executor: Executor, job: ExecJob, wait_s: float) -> tuple[FailureReason | None, str]:
    """The job's reason as a host reports it: no result by the deadline is a kill and `timeout`."""
    executor.submit(job)
    ready, _, _ = select.select([executor.fileno()], [], [], wait_s)
    if not ready:
        executor.kill()
        executor.start()
        return FailureReason.TIMEOUT, "killed at the deadline"
    try:
        result: ExecResult = executor.read_result()
    except ExecutorDied as exc:
        executor.start()
        return FailureReason.EXECUTOR_CRASHED, str(exc)
    return result.reason, result.error


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_modules_end_with_the_same_reason_on_every_engine(
    case: str, executor: Executor, tmp_path: Path
) -> None:
    build, expected = CASES[case]
    path = tmp_path / f"{case}.wasm"
    path.write_bytes(build())
    pid = executor.pid
    # The timeout counts from the job's arrival: preparing and compiling a big module count too.
    timeout_s = SLOW_CASES.get(case, TIMEOUT_S)
    reason, error = _run_as_a_host(executor, _job(path, 1, timeout_s=timeout_s), timeout_s + GRACE_S)
    assert reason is expected, f"{case} on {executor.engine}: {reason} ({error})"
    if expected is FailureReason.INVALID_MODULE:
        assert error.startswith("invalid module: ")
    if not (expected is FailureReason.TIMEOUT and executor.engine == WASM3):  # only a kill stops Wasm3
        assert executor.pid == pid, "the executor was replaced"
    after = _run_as_a_host(executor, _job(ROOT / "wasm_modules" / "noop.wasm", 2), 10.0)
    assert after == (None, ""), "the executor does not run the next job"


@pytest.mark.parametrize("engine", ENGINES)
def test_an_executor_does_not_grow_with_wasi_calls(engine: str, tmp_path: Path) -> None:
    """500,000 WASI calls (clock reads and one-byte writes) leave the executor's resident size as it was.

    pywasm3's own host-call bridge and `get_memory` leaked ~170 bytes per call: this grew an
    executor by ~85 MB; 4 million calls ended it at its address-space cap.
    """
    calls = 250_000
    executor = Executor(log_path=tmp_path / "executor.log", engine=engine)
    executor.start()
    try:
        storm = TEST_MODULES / "wasi_storm.wasm"
        warm = _run_as_a_host(executor, _job(storm, 1, args=("1000",), max_stdout=limits.MAX_OUTPUT_BYTES), 30.0)
        assert warm == (None, "")
        before = _resident_bytes(executor)
        started = time.perf_counter()
        job = _job(storm, 2, args=(str(calls),), max_stdout=limits.MAX_OUTPUT_BYTES)
        assert _run_as_a_host(executor, job, 120.0) == (None, "")
        per_call_us = (time.perf_counter() - started) / (2 * calls) * 1e6
        grown = _resident_bytes(executor) - before
    finally:
        executor.kill()
        executor.close()
    print(f"\n{engine}: {2 * calls:,} WASI calls, {per_call_us:.2f} µs each, resident size {grown / 1e6:+.1f} MB")
    assert grown < 8 * limits.MiB, f"the executor grew by {grown / limits.MiB:.0f} MiB"


def _resident_bytes(executor: Executor) -> int:
    assert executor.pid is not None
    with open(f"/proc/{executor.pid}/statm", "rb") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_validation_refuses_a_module_with_more_functions_than_either_engine_runs() -> None:
    """Submission refuses what no executor would run, and only that: the limit is the engines' own."""
    assert check_wasi_command(_many_functions(MAX_FUNCTIONS - 1), name="most.wasm").features == frozenset()
    with pytest.raises(ModuleError, match=f"more than {MAX_FUNCTIONS:,} functions, which neither engine runs"):
        check_wasi_command(_many_functions(MAX_FUNCTIONS + 1), name="too_many.wasm")
