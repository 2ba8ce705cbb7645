"""Runs in a kept Wasm3 instance (wasm3._InstancePool) are exactly fresh runs: real programs, compared with native.

Wasm3 keeps a module's instance between runs and resets its memory and mutable globals. Any state a
run left behind — a static counter, the heap, stdio buffers, wasi-libc's "_start already ran" flag, a
C++ static, Rust's std — would show as a difference from the native build. The programs run round
robin, twice each, in one thread's pool: every second run is in a kept instance, after other modules
ran, and files.c grows its memory by megabytes, so the reset shrinks it back.
"""

from __future__ import annotations

import threading

import pytest

from bxthre3.common import limits
from bxthre3.wasm import wasm3
from bxthre3.wasm.sandbox import prepare_module
from tests.conformance.conftest import Builder, BuildSpec, Outcome, Scenario, assert_same, build_or_skip
from tests.conformance.test_programs import SCENARIOS, native_outcome

pytestmark = pytest.mark.timeout(600)

ROUND_ROBIN = [
    BuildSpec("stdio.c", "clang-19-wasm32-wasi", ("-O2",), "O2"),  # exits 3: a proc_exit gives the instance back
    BuildSpec("files.c", "clang-14-wasm32-wasi", ("-g",), "g"),
    BuildSpec("clocks.c", "clang-19-wasm32-wasi", ("-Os",), "Os"),
    BuildSpec("iostreams.cc", "clang++-19-wasm32-wasi", ("-O2",), "O2"),
    BuildSpec("rust_std.rs", "rustc-wasm32-wasi", (), "default"),
]
MEMORY_LIMIT = 256 * limits.MiB


def run_in_process(wasm: bytes, scenario: Scenario, program: str) -> Outcome:
    result = wasm3.run_module(
        wasm, args=("/in", "/out", *scenario.args), stdin=scenario.stdin, env=dict(scenario.env),
        program_name=program, memory_limit_bytes=MEMORY_LIMIT, files=dict(scenario.files),
    )  # fmt: skip
    error = "" if result.reason is None else f"{result.reason.value}: {result.error}"
    return Outcome(result.exit_code, result.stdout, result.stderr, dict(result.files), error)


def test_second_runs_in_kept_instances_match_the_native_builds(builder: Builder) -> None:
    pool = wasm3._pool()
    if pool is None:
        pytest.skip("this pywasm3 cannot keep instances (its layout is not the expected one)")
    modules = {
        spec.id: prepare_module(build_or_skip(builder, spec).read_bytes(), engine="wasm3", limit_bytes=MEMORY_LIMIT)
        for spec in ROUND_ROBIN
    }
    natives: dict[str, Outcome] = {}
    reused_before = pool.reused
    for round_ in (1, 2):
        for spec in ROUND_ROBIN:
            native = native_outcome(builder, natives, spec.program)
            outcome = run_in_process(modules[spec.id], SCENARIOS[spec.program], spec.program)
            assert_same(native, outcome, f"{spec.id}, run {round_} in this thread's Wasm3 pool")
    assert pool.reused - reused_before == len(ROUND_ROBIN), "each second run should have reused its instance"


LEFTOVERS = BuildSpec("leftovers.c", "clang-14-wasm32-wasi", ("-O2",), "O2")
SEQUENCE = [(), ("exit", "3"), (), ("grow", "5000000"), (), ("trap",), (), ("exit", "0"), ("grow", "100"), ()]


def run_in_a_fresh_pool(wasm: bytes, args: tuple[str, ...]) -> Outcome:
    """The run in a new thread: its own, empty pool, so a fresh instance."""
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(run_in_process(wasm, Scenario(args=args), "leftovers")))
    thread.start()
    thread.join(60)
    return outcome[0]


def test_nothing_a_run_leaves_behind_reaches_the_next_run(builder: Builder) -> None:
    """Exits from deep frames, traps, memory growth: each next run prints what a fresh instance prints."""
    pool = wasm3._pool()
    if pool is None:
        pytest.skip("this pywasm3 cannot keep instances (its layout is not the expected one)")
    wasm = prepare_module(build_or_skip(builder, LEFTOVERS).read_bytes(), engine="wasm3", limit_bytes=MEMORY_LIMIT)
    fresh = {args: run_in_a_fresh_pool(wasm, args) for args in set(SEQUENCE)}
    assert b"counter=1 " in fresh[()].stdout and b"remembered=(none)" in fresh[()].stdout
    assert fresh[("exit", "3")].exit_code == 3 and fresh[("trap",)].error.startswith("trap")
    assert int(fresh[("grow", "5000000")].stdout.split(b"grown to pages=")[1].split()[0]) > 70
    reused_before = pool.reused
    for args in SEQUENCE:
        assert run_in_process(wasm, Scenario(args=args), "leftovers") == fresh[args], f"leftovers {args}"
    # Every run after one that exited reused its instance; the run after the trap started afresh.
    assert pool.reused - reused_before == len(SEQUENCE) - 2
