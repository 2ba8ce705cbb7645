"""Kept instances on both engines with hand-made modules: what a run changes is put back, and the pool stays bounded.

Real programs (C, C++, Rust against their native builds) are in tests/conformance/test_kept_instances.py;
these need no toolchain and pin the cases one at a time.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from bxthre3.common import limits
from bxthre3.wasm import abi, wasm3
from bxthre3.wasm.normalize import sleb, uleb
from bxthre3.wasm.reset import KEEP_INSTANCES_ENV, MAX_SNAPSHOT_BYTES
from bxthre3.wasm.sandbox import prepare_module
from tests.conftest import ENGINES
from tests.unit.test_wasm_inspect import func_export, func_import, module, name, section, vec

LIMIT = 64 * limits.MiB


def counter_module(
    *,
    initial_pages: int = 1,
    start_value: int = 0,
    max_pages: int = 1000,
    grow: bool = True,
    limit_bytes: int = 0,
) -> bytes:
    """`_start` (optionally) grows memory by a page, adds 1 to a global and to the i32 at address 16,
    and exits with pages * 100 + the global + that i32 * 10.

    A fresh instance exits with (pages after growing) * 100 + start_value + 1 + 10; a later run that
    saw an earlier run's memory size, memory contents or global would exit with something else.
    Prepared as the executor prepares modules (`limit_bytes` 0: no memory cap), which appends the
    reset function.
    """
    body = (
        b"\x00"
        + (b"\x41\x01\x40\x00\x1a" if grow else b"")  # i32.const 1, memory.grow, drop
        + b"\x23\x00\x41\x01\x6a\x24\x00"  # global 0 += 1
        + b"\x41\x10\x41\x10\x28\x02\x00\x41\x01\x6a\x36\x02\x00"  # mem[16] += 1
        + b"\x3f\x00\x41\xe4\x00\x6c\x23\x00\x6a"  # memory.size * 100 + global 0
        + b"\x41\x10\x28\x02\x00\x41\x0a\x6c\x6a"  # + mem[16] * 10
        + b"\x10\x00"  # call proc_exit
        + b"\x0b"
    )
    raw = module(
        section(1, vec([b"\x60\x01\x7f\x00", b"\x60\x00\x00"])),
        section(2, vec([func_import(abi.WASI_MODULE, "proc_exit", 0)])),
        section(3, vec([uleb(1)])),
        section(5, vec([b"\x01" + uleb(initial_pages) + uleb(max_pages)])),
        section(6, vec([b"\x7f\x01\x41" + sleb(start_value) + b"\x0b"])),
        section(7, vec([func_export("_start", 1), name("memory") + b"\x02\x00"])),
        section(10, vec([uleb(len(body)) + body])),
    )
    return prepare_module(raw, engine="wasm3", limit_bytes=limit_bytes)


def engine_module(engine: str) -> ModuleType:
    """`bxthre3.wasm.wasm3` or `bxthre3.wasm.wasmtime` (imported only when asked for)."""
    return importlib.import_module(f"bxthre3.wasm.{engine}")


def runner(engine: str) -> Callable[[bytes], int | None]:
    run_module = engine_module(engine).run_module

    def run(wasm: bytes) -> int | None:
        result = run_module(wasm, args=(), stdin=b"", env={}, memory_limit_bytes=LIMIT)
        return result.exit_code  # type: ignore[no-any-return]

    return run


def in_new_thread(fn: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """`fn()` in a thread of its own (no instance kept yet, the environment read afresh).

    What `fn` raised is raised here, so a failed assertion inside reads as itself."""
    outcome: list[tuple[bool, Any]] = []

    def call() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread, with its message)
            outcome.append((False, exc))

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise TimeoutError(f"{fn!r} did not finish in {timeout_s:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def kept_runs_of(engine: str, fn: Callable[[], Any]) -> tuple[Any, int]:
    """`fn()` in a new thread, and how many of its runs ran in a kept instance."""

    def counted() -> tuple[Any, int]:
        value = fn()
        return value, engine_module(engine).kept_runs()

    return in_new_thread(counted)  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _keeping() -> None:
    if wasm3._raw_imports() is None:
        pytest.skip("this pywasm3 cannot keep instances (its layout is not the expected one)")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("capped", [False, True], ids=["uncapped", "memory-capped"])
def test_memory_contents_and_globals_are_back_for_every_run(engine: str, capped: bool) -> None:
    # The cap rewrites memory.grow into a call and adds an exported flag global.
    wasm = counter_module(initial_pages=2, start_value=40, grow=False, limit_bytes=LIMIT if capped else 0)
    run = runner(engine)
    codes, kept = kept_runs_of(engine, lambda: [run(wasm) for _ in range(5)])
    assert codes == [251] * 5
    assert kept == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_memory_grown_by_a_run_is_gone_in_the_next(engine: str) -> None:
    """Wasm3 shrinks it back and keeps the instance; wasmtime cannot shrink, so it starts afresh."""
    wasm = counter_module(initial_pages=2, start_value=40, limit_bytes=LIMIT)
    run = runner(engine)
    codes, kept = kept_runs_of(engine, lambda: [run(wasm) for _ in range(4)])
    assert codes == [351] * 4
    assert kept == (3 if engine == "wasm3" else 0)


def test_a_memory_of_zero_pages_grows_afresh_each_run() -> None:
    run = runner("wasm3")
    wasm = counter_module(initial_pages=0)  # grows to one page before touching it
    assert [run(wasm) for _ in range(3)] == [111] * 3


@pytest.mark.parametrize("engine", ENGINES)
def test_a_run_that_failed_is_followed_by_a_fresh_instance(engine: str) -> None:
    wasm = counter_module(initial_pages=3, max_pages=3, limit_bytes=LIMIT)  # its growth is refused
    run_module = engine_module(engine).run_module

    def twice() -> list[Any]:
        return [run_module(wasm, args=(), stdin=b"", env={}, memory_limit_bytes=LIMIT).reason for _ in range(2)]

    reasons, kept = kept_runs_of(engine, twice)
    assert reasons[0] is not None and reasons == [reasons[0]] * 2 and kept == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_memory_over_the_snapshot_bound_is_never_kept(engine: str) -> None:
    pages = MAX_SNAPSHOT_BYTES // 65536 + 1
    wasm = counter_module(initial_pages=pages, grow=False)
    run = runner(engine)
    codes, kept = kept_runs_of(engine, lambda: [run(wasm) for _ in range(2)])
    assert codes == [pages * 100 + 11] * 2 and kept == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_module_that_was_not_prepared_runs_fresh_every_time(engine: str) -> None:
    unprepared = module(
        section(1, vec([b"\x60\x00\x00"])),
        section(3, vec([uleb(0)])),
        section(7, vec([func_export("_start", 0)])),
        section(10, vec([b"\x02\x00\x0b"])),
    )
    run = runner(engine)
    codes, kept = kept_runs_of(engine, lambda: [run(unprepared) for _ in range(3)])
    assert codes == [0, 0, 0] and kept == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_modules_taking_turns_each_see_a_fresh_instance(engine: str) -> None:
    """Wasm3 keeps the last MAX_IDLE modules (oldest freed first); wasmtime only the last one."""
    count = wasm3._InstancePool.MAX_IDLE + 3
    modules = [counter_module(start_value=i, grow=False) for i in range(count)]
    run = runner(engine)

    def turns() -> tuple[list[int | None], int]:
        codes = [run(m) for m in modules] + [run(modules[-1]), run(modules[0])]
        return codes, len(wasm3._pool()._idle) if engine == "wasm3" else 0  # type: ignore[union-attr]

    (codes, idle), kept = kept_runs_of(engine, turns)
    assert codes == [111 + i for i in range(count)] + [111 + count - 1, 111]
    assert kept == 1  # the newest was still kept; the oldest had been freed
    if engine == "wasm3":
        assert idle == wasm3._InstancePool.MAX_IDLE


@pytest.mark.parametrize("engine", ENGINES)
def test_keeping_can_be_turned_off(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEEP_INSTANCES_ENV, "0")
    run = runner(engine)
    wasm = counter_module(grow=False)
    codes, kept = kept_runs_of(engine, lambda: [run(wasm) for _ in range(3)])
    assert codes == [111] * 3 and kept == 0
