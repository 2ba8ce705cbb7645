"""Wasm3's kept instances with hand-made modules: what a run changes is put back, and the pool stays bounded.

Real programs (C, C++, Rust against their native builds) are in tests/conformance/test_kept_instances.py;
these need no toolchain and pin the cases one at a time.
"""

from __future__ import annotations

import threading

import pytest

from bxthre3.common import limits
from bxthre3.wasm import abi, wasm3
from bxthre3.wasm.normalize import sleb, uleb
from bxthre3.wasm.sandbox import prepare_module
from tests.unit.test_wasm_inspect import func_export, func_import, module, section, vec

LIMIT = 64 * limits.MiB


def counter_module(
    *, initial_pages: int = 0, start_value: int = 0, max_pages: int = 1000, limit_bytes: int = 0
) -> bytes:
    """`_start` grows memory by a page, adds 1 to a global and exits with pages * 100 + the global.

    A fresh instance exits with (initial_pages + 1) * 100 + start_value + 1; a second run that saw the
    first run's memory or global would exit with something else. Prepared as the executor prepares
    modules (`limit_bytes` 0: no memory cap), which appends the reset function.
    """
    body = (
        b"\x00"
        b"\x41\x01\x40\x00\x1a"  # i32.const 1, memory.grow, drop
        b"\x23\x00\x41\x01\x6a\x24\x00"  # global 0 += 1
        b"\x3f\x00\x41\xe4\x00\x6c\x23\x00\x6a"  # memory.size * 100 + global 0
        b"\x10\x00"  # call proc_exit
        b"\x0b"
    )
    raw = module(
        section(1, vec([b"\x60\x01\x7f\x00", b"\x60\x00\x00"])),
        section(2, vec([func_import(abi.WASI_MODULE, "proc_exit", 0)])),
        section(3, vec([uleb(1)])),
        section(5, vec([b"\x01" + uleb(initial_pages) + uleb(max_pages)])),
        section(6, vec([b"\x7f\x01\x41" + sleb(start_value) + b"\x0b"])),
        section(7, vec([func_export("_start", 1)])),
        section(10, vec([uleb(len(body)) + body])),
    )
    return prepare_module(raw, engine="wasm3", limit_bytes=limit_bytes)


def run(wasm: bytes) -> int | None:
    result = wasm3.run_module(wasm, args=(), stdin=b"", env={}, memory_limit_bytes=LIMIT)
    return result.exit_code


def in_new_thread(fn):  # type: ignore[no-untyped-def]
    """Run `fn` in a thread of its own: a fresh, empty pool."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(30)
    return out[0]


@pytest.fixture
def pool() -> wasm3._InstancePool:
    found = wasm3._pool()
    if found is None:
        pytest.skip("this pywasm3 cannot keep instances (its layout is not the expected one)")
    return found


@pytest.mark.parametrize("capped", [False, True], ids=["uncapped", "memory-capped"])
def test_memory_size_and_globals_are_back_for_every_run(pool: wasm3._InstancePool, capped: bool) -> None:
    # The cap rewrites memory.grow into a call and adds an exported flag global.
    wasm = counter_module(initial_pages=2, start_value=40, limit_bytes=LIMIT if capped else 0)
    reused = pool.reused
    assert [run(wasm) for _ in range(5)] == [341] * 5
    assert pool.reused - reused == 4


def test_a_memory_of_zero_pages_grows_afresh_each_run(pool: wasm3._InstancePool) -> None:
    wasm = counter_module(initial_pages=0)
    assert [run(wasm) for _ in range(3)] == [101] * 3


def test_a_run_that_failed_is_followed_by_a_fresh_instance(pool: wasm3._InstancePool) -> None:
    wasm = counter_module(initial_pages=3, max_pages=3, limit_bytes=LIMIT)
    reused = pool.reused
    first = wasm3.run_module(wasm, args=(), stdin=b"", env={}, memory_limit_bytes=LIMIT)
    assert first.exit_code is None and first.reason is not None  # growing past the declared maximum: memory_limit
    second = wasm3.run_module(wasm, args=(), stdin=b"", env={}, memory_limit_bytes=LIMIT)
    assert second.reason == first.reason and pool.reused == reused


def test_memory_over_the_snapshot_bound_is_never_kept(pool: wasm3._InstancePool) -> None:
    pages = wasm3._InstancePool.MAX_SNAPSHOT_BYTES // 65536 + 1
    wasm = counter_module(initial_pages=pages)
    reused = pool.reused
    assert [run(wasm) for _ in range(2)] == [(pages + 1) * 100 + 1] * 2
    assert pool.reused == reused


def test_the_pool_keeps_at_most_its_bound_and_frees_the_oldest() -> None:
    def fill() -> tuple[int, int, list[int | None]]:
        pool = wasm3._pool()
        assert pool is not None
        modules = [counter_module(start_value=i) for i in range(wasm3._InstancePool.MAX_IDLE + 3)]
        codes = [run(m) for m in modules] + [run(modules[-1]), run(modules[0])]
        return len(pool._idle), pool.reused, codes

    kept, reused, codes = in_new_thread(fill)
    extra = wasm3._InstancePool.MAX_IDLE + 3
    assert kept == wasm3._InstancePool.MAX_IDLE
    assert codes == [101 + i for i in range(extra)] + [101 + extra - 1, 101]
    assert reused == 1  # the newest was still kept; the oldest had been freed


def test_a_module_that_was_not_prepared_runs_fresh_every_time(pool: wasm3._InstancePool) -> None:
    unprepared = module(
        section(1, vec([b"\x60\x00\x00"])),
        section(3, vec([uleb(0)])),
        section(7, vec([func_export("_start", 0)])),
        section(10, vec([b"\x02\x00\x0b"])),
    )
    reused = pool.reused
    assert [run(unprepared) for _ in range(3)] == [0, 0, 0]
    assert pool.reused == reused


def test_keeping_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wasm3.KEEP_INSTANCES_ENV, "0")
    assert in_new_thread(wasm3._pool) is None
    assert in_new_thread(lambda: [run(counter_module()) for _ in range(2)]) == [101, 101]
