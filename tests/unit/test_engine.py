"""The Wasm3 engine and its WASI shim, run against the real built modules."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
from pathlib import Path

import pytest

from bxthre3.common.failures import FailureReason
from bxthre3.wasm import abi, wasi
from bxthre3.wasm import choice as engines
from bxthre3.wasm.contract import RunResult
from bxthre3.wasm.wasm3 import run_module
from tests.conftest import ENGINES

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "wasm_modules"
TEST_MODULES = ROOT / "tests" / "data" / "modules"


@pytest.fixture(autouse=True, params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on each engine: `run_module` is that engine's."""
    monkeypatch.setitem(globals(), "run_module", engines.runner(request.param))
    return str(request.param)


def module(name: str) -> bytes:
    """A built module: example modules first, then test-only ones."""
    for directory in (MODULES, TEST_MODULES):
        path = directory / f"{name}.wasm"
        if path.exists():
            return path.read_bytes()
    raise FileNotFoundError(f"{name}.wasm not built: run wasm_modules/build.sh")


def run(
    name: str,
    *args: str,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    **kwargs: int,
) -> RunResult:
    return run_module(module(name), args=args, stdin=stdin, env=env or {}, **kwargs)


def ok(result: RunResult) -> bytes:
    assert result.reason is None, result
    assert result.exit_code == 0
    return result.stdout


def sizes_env(*parts: bytes) -> dict[str, str]:
    return {abi.INPUT_SIZES_ENV: ",".join(str(len(p)) for p in parts)}


# -- the hello fan-out ------------------------------------------------------------


def test_hello_fanout_modules_chain_to_the_expected_output() -> None:
    init = ok(run("init", "Bxthre3"))
    assert init == b"Bxthre3\n"
    hello = ok(run("greet_1", stdin=init, env=sizes_env(init)))
    hola = ok(run("greet_2", stdin=init, env=sizes_env(init)))
    assert hello == b"Hello, Bxthre3!\n"
    assert hola == b"Hola, Bxthre3!\n"
    assert ok(run("aggregate", stdin=hello + hola, env=sizes_env(hello, hola))) == (
        b"Hello, Bxthre3!\nHola, Bxthre3!\n"
    )


def test_init_joins_its_arguments_with_spaces() -> None:
    assert ok(run("init", "a", "b c")) == b"a b c\n"
    assert ok(run("init")) == b"\n"


def test_greet_prefers_its_argument_over_stdin() -> None:
    assert ok(run("greet_1", "Ada", stdin=b"ignored")) == b"Hello, Ada!\n"
    assert ok(run("greet_2", stdin=b"Lin \n\r\n")) == b"Hola, Lin!\n"


def test_aggregate_prints_literal_inputs_first_then_each_stdin_part() -> None:
    parts = (b"one\n\n", b"two", b"")
    result = run("aggregate", "lit", stdin=b"".join(parts), env=sizes_env(*parts))
    assert ok(result) == b"lit\none\ntwo\n\n"


def test_aggregate_without_sizes_treats_stdin_as_one_part_and_empty_as_none() -> None:
    assert ok(run("aggregate", stdin=b"a\nb\n")) == b"a\nb\n"
    assert ok(run("aggregate")) == b""


def test_aggregate_rejects_sizes_that_do_not_fit_stdin() -> None:
    result = run("aggregate", stdin=b"abc", env={abi.INPUT_SIZES_ENV: "5"})
    assert result.reason is FailureReason.EXIT_CODE
    assert b"BXTHRE3_INPUT_SIZES" in result.stderr


def test_inc_chain_of_n_tasks_outputs_n() -> None:
    stdout = b""
    for _ in range(5):
        stdout = ok(run("inc", stdin=stdout))
    assert stdout == b"5\n"


def test_inc_sums_arguments_and_stdin_and_ignores_other_tokens() -> None:
    assert ok(run("inc", "3 4", "x", stdin=b"10\n-2 y")) == b"16\n"


def test_noop_succeeds_with_no_output() -> None:
    assert ok(run("noop")) == b""


# -- failures ---------------------------------------------------------------------


def test_nonzero_exit_is_exit_code_with_stderr() -> None:
    result = run("exit3")
    assert result.reason is FailureReason.EXIT_CODE
    assert result.exit_code == 3
    assert result.stderr == b"something went wrong\n"
    assert "3" in result.error


def test_stderr_keeps_only_its_tail() -> None:
    result = run("exit3", max_stderr=6)
    assert result.stderr == b"wrong\n"


def test_trap_is_reported_with_the_output_written_before_it() -> None:
    result = run("trap")
    assert result.reason is FailureReason.TRAP
    assert result.exit_code is None
    assert result.error == "trap: unreachable executed"
    assert result.stdout == b"about to trap\n"


def test_unbounded_recursion_is_a_quick_stack_overflow_trap() -> None:
    started = time.perf_counter()
    result = run("recurse")
    assert result.reason is FailureReason.TRAP
    assert result.error == "trap: stack overflow"
    assert time.perf_counter() - started < 2.0
    # The process survived: the engine still works afterwards.
    assert ok(run("init", "after")) == b"after\n"


def test_stdout_flood_stops_at_the_cap() -> None:
    result = run("flood", max_stdout=100_000)
    assert result.reason is FailureReason.OUTPUT_LIMIT
    assert len(result.stdout) == 100_000
    assert result.stdout.startswith(b"flood flood")


def test_output_exactly_at_the_cap_is_allowed() -> None:
    data = b"x" * 1000
    assert ok(run("echo_stdin", stdin=data, max_stdout=1000)) == data
    assert run("echo_stdin", stdin=data, max_stdout=999).reason is FailureReason.OUTPUT_LIMIT


@pytest.mark.parametrize(
    "data",
    [b"not wasm at all", b"\0asm\x01\0\0\0\x01\x05", b"", b"\0asm\x01\0\0\0"],
    ids=["garbage", "truncated", "empty", "no-start"],
)
def test_unloadable_module_is_invalid_module(data: bytes) -> None:
    result = run_module(data, args=(), stdin=b"", env={})
    assert result.reason is FailureReason.INVALID_MODULE
    assert result.error.startswith("invalid module:")


def _section(section_id: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([section_id, len(payload)]) + payload


def _name(text: str) -> bytes:
    return bytes([len(text)]) + text.encode()


def test_unsupported_import_is_invalid_module_not_a_crash() -> None:
    # A hand-assembled command whose _start calls wasi_snapshot_preview1.sock_open (WASIX, not preview 1).
    wasm = (
        b"\0asm\x01\0\0\0"
        + _section(1, b"\x02" + b"\x60\x00\x00" + b"\x60\x03\x7f\x7f\x7f\x01\x7f")
        + _section(2, b"\x01" + _name(abi.WASI_MODULE) + _name("sock_open") + b"\x00\x01")
        + _section(3, b"\x01\x00")
        + _section(7, b"\x01" + _name(abi.ENTRY_POINT) + b"\x00\x01")
        + _section(10, b"\x01" + b"\x0b\x00" + b"\x41\x00\x41\x00\x41\x00\x10\x00\x1a\x0b")
    )
    result = run_module(wasm, args=(), stdin=b"", env={})
    assert result.reason is FailureReason.INVALID_MODULE
    assert "sock_open" in result.error


# -- the ABI: stdin, argv, environ -------------------------------------------------


def test_echo_stdin_round_trips_binary_bytes() -> None:
    data = bytes(range(256)) * 50 + b"\0\0\0" + os.urandom(200_000) + b"\0"
    assert ok(run("echo_stdin", stdin=data)) == data


def test_module_sees_exactly_the_given_args_and_env() -> None:
    env = {abi.INPUT_SIZES_ENV: "3,4", abi.TASK_ID_ENV: "t-1", "GREETING": "a=b"}
    out = ok(run_module(module("env_dump"), args=("x", "y z"), stdin=b"", env=env, program_name="prog"))
    assert out.decode().splitlines() == [
        "argc=3",
        "argv[0]=prog",
        "argv[1]=x",
        "argv[2]=y z",
        "BXTHRE3_INPUT_SIZES=3,4",
        "BXTHRE3_TASK_ID=t-1",
        "environ=3",
        "env[0]=BXTHRE3_INPUT_SIZES=3,4",
        "env[1]=BXTHRE3_TASK_ID=t-1",
        "env[2]=GREETING=a=b",
    ]


def test_host_environment_does_not_leak_into_the_module() -> None:
    out = ok(run("env_dump")).decode()
    assert "environ=0" in out
    assert "BXTHRE3_TASK_ID=(unset)" in out


def test_many_runs_do_not_grow_memory() -> None:
    """pywasm3 leaks runtimes; the engine frees them (see engine._RuntimeReclaimer)."""
    wasm = module("greet_1")
    statm = Path("/proc/self/statm")
    if not statm.exists():
        pytest.skip("needs /proc")
    for _ in range(50):
        run_module(wasm, args=("x",), stdin=b"", env={})
    before = int(statm.read_text().split()[1])
    for _ in range(300):
        run_module(wasm, args=("x",), stdin=b"", env={})
    grown_kib = (int(statm.read_text().split()[1]) - before) * os.sysconf("SC_PAGE_SIZE") // 1024
    assert grown_kib < 10 * 1024, f"RSS grew {grown_kib} KiB over 300 runs"


def test_a_run_leaves_little_on_the_python_heap() -> None:
    """2,000 runs of a program that prints keep under 64 bytes a run on the Python heap (~30 remain).

    pywasm3's `get_memory` leaks the Py_buffer it allocates (80 bytes a call), so the reclaimer's
    layout check uses it on the first run only, and the WASI path not at all (engine._RawImports).
    """
    wasm = module("greet_1")
    for _ in range(200):
        run_module(wasm, args=("x",), stdin=b"", env={})
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(2_000):
            run_module(wasm, args=("x",), stdin=b"", env={})
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 2_000 * 64, f"{(after - before) // 2_000} bytes a run stay allocated"


# -- the shim on its own ------------------------------------------------------------


def test_shim_implements_exactly_the_supported_imports() -> None:
    assert set(wasi.SIGNATURES) == set(abi.SUPPORTED_WASI_IMPORTS)
    for name in abi.SUPPORTED_WASI_IMPORTS:
        assert callable(getattr(wasi.WasiShim, name))


class _FakeRuntime:
    def __init__(self, size: int) -> None:
        self.memory = bytearray(size)

    def get_memory(self, index: int) -> memoryview:
        return memoryview(self.memory)


class _FakeModule:
    def __init__(self) -> None:
        self.functions: dict[str, object] = {}

    def link_function(self, module: str, name: str, signature: str, function: object) -> None:
        assert module == abi.WASI_MODULE
        self.functions[name] = function


@pytest.fixture
def linked() -> tuple[wasi.WasiShim, _FakeRuntime, dict[str, object]]:
    shim = wasi.WasiShim(args=["p"], env={}, stdin=b"abc", max_stdout=4, max_stderr=4)
    runtime = _FakeRuntime(64)
    fake = _FakeModule()
    shim.link(fake, runtime)
    yield shim, runtime, fake.functions
    shim.unbind()


def test_shim_errnos(linked: tuple[wasi.WasiShim, _FakeRuntime, dict]) -> None:
    shim, runtime, fn = linked
    assert fn["fd_prestat_get"](3, 0) == wasi.ESUCCESS  # /in
    assert fn["fd_prestat_get"](5, 0) == wasi.EBADF  # the end of the preopens
    assert fn["fd_read"](1, 0, 0, 0) == wasi.EBADF
    assert fn["fd_write"](0, 0, 0, 0) == wasi.EBADF
    assert fn["fd_seek"](0, 0, 0, 0) == wasi.ESPIPE
    assert fn["fd_seek"](7, 0, 0, 0) == wasi.EBADF
    assert fn["clock_time_get"](99, 0, 0) == wasi.EINVAL
    assert fn["args_sizes_get"](62, 0) == wasi.EFAULT  # 4 bytes at 62 pass the end
    assert fn["random_get"](60, 8) == wasi.EFAULT
    assert fn["fd_close"](0) == wasi.ESUCCESS
    assert fn["fd_read"](0, 0, 0, 0) == wasi.EBADF  # closed
    with pytest.raises(wasi.ProcExit) as exit_:
        fn["proc_exit"](7)
    assert exit_.value.code == 7


def test_shim_write_caps_stdout_and_keeps_stderr_tail(
    linked: tuple[wasi.WasiShim, _FakeRuntime, dict],
) -> None:
    shim, runtime, fn = linked
    runtime.memory[16:22] = b"abcdef"
    struct.pack_into("<II", runtime.memory, 0, 16, 3)  # one iovec: "abc"
    assert fn["fd_write"](2, 0, 1, 40) == wasi.ESUCCESS
    struct.pack_into("<II", runtime.memory, 0, 16, 6)  # "abcdef"
    assert fn["fd_write"](2, 0, 1, 40) == wasi.ESUCCESS
    assert shim.stderr == b"cdef"
    assert fn["fd_write"](1, 0, 0, 40) == wasi.ESUCCESS
    with pytest.raises(wasi.OutputLimitExceeded):
        fn["fd_write"](1, 0, 1, 40)
    assert shim.stdout == b"abcd"
    assert shim.stdout_overflowed
