"""wasmtime's guard-page memories under a host's executor caps, and the fallback where they do not fit.

An executor capped like a 64 MiB host's (its memory limit plus the host's overhead) must give
wasmtime room for its 4 GiB reservations while still bounding what a run can write; where the
address-space cap leaves no such room, the engine reserves memory at the limit and still runs.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bxthre3.common import limits
from bxthre3.common.failures import FailureReason
from bxthre3.executor.parent import ExecJob, Executor
from bxthre3.host.session import EXECUTOR_OVERHEAD_MB

pytest.importorskip("wasmtime", reason="wasmtime is not installed (pip install wasmtime)")

from bxthre3.wasm.wasmtime import GUARD_PAGE_FOOTPRINT_BYTES  # noqa: E402  (after the skip)

ROOT = Path(__file__).resolve().parents[2]
TEST_MODULES = ROOT / "tests" / "data" / "modules"
MEMORY_LIMIT = 64 * limits.MiB


def _job(job_id: int, path: Path, timeout_s: float = 0.0) -> ExecJob:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ExecJob(job_id, sha, str(path), ("x",), b"", {}, memory_limit_bytes=MEMORY_LIMIT, timeout_s=timeout_s)


def _status(pid: int) -> dict[str, int]:
    """VmSize and VmData of a process, in bytes."""
    sizes = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        field, _, value = line.partition(":")
        if field in ("VmSize", "VmData"):
            sizes[field] = int(value.split()[0]) * 1024
    return sizes


def _limits(pid: int) -> str:
    return Path(f"/proc/{pid}/limits").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_capped_executor_runs_wasmtime_in_guard_pages_and_still_bounds_what_it_writes(tmp_path: Path) -> None:
    """While a module runs, the executor maps its 4 GiB reservation; its writable memory stays capped."""
    executor = Executor(
        log_path=tmp_path / "executor.log",
        address_space_mb=MEMORY_LIMIT // limits.MiB + EXECUTOR_OVERHEAD_MB,
        engine="wasmtime",
    )
    executor.start()
    try:
        pid = executor.pid
        assert pid is not None
        executor.submit(_job(1, TEST_MODULES / "spin.wasm", timeout_s=1.5))
        deadline, running = time.monotonic() + 10.0, {}
        while time.monotonic() < deadline:  # the reservation exists only while an instance does
            running = _status(pid)
            if running["VmSize"] > GUARD_PAGE_FOOTPRINT_BYTES:
                break
            time.sleep(0.02)
        assert running["VmSize"] > GUARD_PAGE_FOOTPRINT_BYTES, f"no guard-page reservation: {running}"
        assert running["VmData"] < 1024 * limits.MiB, running
        result = executor.read_result(timeout=10.0)
        assert (result.reason, result.error) == (FailureReason.TIMEOUT, "stopped after the 1.5s timeout")
        assert executor.pid == pid, "the run was not interrupted in the engine"
        data_cap = next(line for line in _limits(pid).splitlines() if line.startswith("Max data size"))
        cap = int(data_cap.split()[3])
        assert cap < running["VmData"] + (MEMORY_LIMIT // limits.MiB + EXECUTOR_OVERHEAD_MB + 64) * limits.MiB
        for job_id, name in enumerate(("membomb", "growbomb"), start=2):
            executor.submit(_job(job_id, TEST_MODULES / f"{name}.wasm", timeout_s=5.0))
            bomb = executor.read_result(timeout=10.0)
            assert bomb.reason is FailureReason.MEMORY_LIMIT, bomb
            assert bomb.error == "needed more than this host's 64 MiB memory limit"
        assert executor.pid == pid
    finally:
        executor.kill()
        executor.close()


_FALLBACK = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from bxthre3.wasm import wasmtime as engine
with open("/proc/self/statm") as f:
    virtual = int(f.read().split()[0]) * resource.getpagesize()
cap = virtual + 1024 * 1024 * 1024  # 1 GiB of room: not enough for a guard-page reservation
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
assert not engine._guard_pages_fit()
wasm = open({str(ROOT / "wasm_modules" / "greet_1.wasm")!r}, "rb").read()
for _ in range(20):  # each run's reservation is freed: they do not pile up under the cap
    result = engine.run_module(wasm, args=["x"], stdin=b"", env={{}}, memory_limit_bytes=64 << 20, timeout_s=5)
    assert (result.reason, result.stdout) == (None, b"Hello, x!\\n"), result
print("ok")
"""


def test_under_a_tight_address_space_cap_wasmtime_reserves_memory_at_the_limit() -> None:
    """No room for 4 GiB reservations (a kernel without RLIMIT_DATA): runs still work, bounds-checked."""
    done = subprocess.run([sys.executable, "-c", _FALLBACK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
