"""Runs in a kept instance are exactly fresh runs: real programs on both engines, compared with native.

Both engines keep a module's instance between runs and reset its memory and mutable globals
(`wasm3._InstancePool`, `wasmtime._KeptInstance`). Any state a
run left behind — a static counter, the heap, stdio buffers, wasi-libc's "_start already ran" flag, a
C++ static, Rust's std — would show as a difference from the native build. On Wasm3 the programs run
round robin, twice each: every second run is in a kept instance, after other modules ran, and files.c
grows its memory by megabytes, so the reset shrinks it back.
"""

from __future__ import annotations

import functools

import pytest

from bxthre3.common import limits
from bxthre3.wasm import wasm3
from bxthre3.wasm.choice import WASM3
from bxthre3.wasm.sandbox import prepare_module
from tests.conformance.conftest import ENGINE_PARAMS, Builder, BuildSpec, Outcome, Scenario, assert_same, build_or_skip
from tests.conformance.test_programs import SCENARIOS, native_outcome
from tests.unit.test_engine_kept_instances import engine_module, in_new_thread

pytestmark = pytest.mark.timeout(600)

ROUND_ROBIN = [
    BuildSpec("stdio.c", "clang-19-wasm32-wasi", ("-O2",), "O2"),  # exits 3: a proc_exit gives the instance back
    BuildSpec("files.c", "clang-14-wasm32-wasi", ("-g",), "g"),
    BuildSpec("clocks.c", "clang-19-wasm32-wasi", ("-Os",), "Os"),
    BuildSpec("iostreams.cc", "clang++-19-wasm32-wasi", ("-O2",), "O2"),
    BuildSpec("rust_std.rs", "rustc-wasm32-wasi", (), "default"),
]
MEMORY_LIMIT = 256 * limits.MiB


def run_in_process(wasm: bytes, scenario: Scenario, program: str, engine: str = WASM3) -> Outcome:
    result = engine_module(engine).run_module(
        wasm, args=("/in", "/out", *scenario.args), stdin=scenario.stdin, env=dict(scenario.env),
        program_name=program, memory_limit_bytes=MEMORY_LIMIT, files=dict(scenario.files),
    )  # fmt: skip
    error = "" if result.reason is None else f"{result.reason.value}: {result.error}"
    return Outcome(result.exit_code, result.stdout, result.stderr, dict(result.files), error)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_runs_in_kept_instances_match_the_native_builds(builder: Builder, engine: str) -> None:
    """Wasm3: round robin, twice (it keeps 8 modules). wasmtime keeps only the last module, and only
    while a run leaves memory at its first size, so each program runs twice in a row there."""
    if wasm3._raw_imports() is None:
        pytest.skip("this pywasm3 cannot keep instances (its layout is not the expected one)")
    modules = {
        spec.id: prepare_module(build_or_skip(builder, spec).read_bytes(), engine=engine, limit_bytes=MEMORY_LIMIT)
        for spec in ROUND_ROBIN
    }
    order = ROUND_ROBIN * 2 if engine == WASM3 else [spec for spec in ROUND_ROBIN for _ in (1, 2)]
    natives = {spec.program: native_outcome(builder, {}, spec.program) for spec in ROUND_ROBIN}

    def runs() -> int:
        for n, spec in enumerate(order):
            outcome = run_in_process(modules[spec.id], SCENARIOS[spec.program], spec.program, engine)
            assert_same(natives[spec.program], outcome, f"{spec.id}, run {n + 1} of the sequence on {engine}")
        return int(engine_module(engine).kept_runs())

    kept = in_new_thread(runs, timeout_s=300)
    if engine == WASM3:
        assert kept == len(ROUND_ROBIN), "each second run should have reused its instance"
    else:  # those that allocate past their first memory (files.c: megabytes) start afresh
        assert kept >= 2, "stdio.c and clocks.c leave memory as it was: their second runs reuse"


LEFTOVERS = BuildSpec("leftovers.c", "clang-14-wasm32-wasi", ("-O2",), "O2")
SEQUENCE = [(), ("exit", "3"), (), ("grow", "5000000"), (), ("trap",), (), ("exit", "0"), ("grow", "100"), ()]


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_nothing_a_run_leaves_behind_reaches_the_next_run(builder: Builder, engine: str) -> None:
    """Exits from deep frames, traps, memory growth: each next run prints what a fresh instance prints."""
    if wasm3._raw_imports() is None:
        pytest.skip("this pywasm3 cannot keep instances (its layout is not the expected one)")
    wasm = prepare_module(build_or_skip(builder, LEFTOVERS).read_bytes(), engine=engine, limit_bytes=MEMORY_LIMIT)

    def run(args: tuple[str, ...]) -> Outcome:
        return run_in_process(wasm, Scenario(args=args), "leftovers", engine)

    fresh: dict[tuple[str, ...], Outcome] = {}
    for args in set(SEQUENCE):
        fresh[args] = in_new_thread(functools.partial(run, args), timeout_s=300)  # a thread per run: a fresh instance
    assert b"counter=1 " in fresh[()].stdout and b"remembered=(none)" in fresh[()].stdout
    assert fresh[("exit", "3")].exit_code == 3 and fresh[("trap",)].error.startswith("trap")
    assert int(fresh[("grow", "5000000")].stdout.split(b"grown to pages=")[1].split()[0]) > 70

    def in_turn() -> int:
        for args in SEQUENCE:
            assert run(args) == fresh[args], f"leftovers {args} on {engine}"
        return int(engine_module(engine).kept_runs())

    # Every run after one that exited reused its instance, but the one after the trap (both engines)
    # and, on wasmtime, which cannot shrink memory, the one after the run that grew it by megabytes.
    assert in_new_thread(in_turn, timeout_s=300) == len(SEQUENCE) - 2 - (engine != WASM3)
