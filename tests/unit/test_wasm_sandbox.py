"""The memory-capping rewrite: structure checked with the pure inspector, behaviour with Wasm3."""

from __future__ import annotations

import pytest

from bxthre3.common.errors import ModuleError
from bxthre3.common.failures import FailureReason
from bxthre3.common.limits import MiB
from bxthre3.wasm import choice as engines
from bxthre3.wasm.inspect import PAGE_BYTES, check_wasi_command
from bxthre3.wasm.sandbox import (
    MEMORY_FLAG_EXPORT,
    MemoryLimitError,
    _cap_memory_section,
    _rewrite_body,
    cap_memory,
    uleb,
)
from bxthre3.wasm.wasm3 import run_module
from tests.conftest import ENGINES, TEST_MODULES, WASM_MODULES


@pytest.fixture(autouse=True, params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on each engine: `run_module` is that engine's."""
    monkeypatch.setitem(globals(), "run_module", engines.runner(request.param))
    return str(request.param)


@pytest.mark.parametrize("path", sorted(WASM_MODULES.glob("*.wasm")), ids=lambda p: p.stem)
def test_every_shipped_module_still_validates_and_is_capped(path) -> None:
    capped = cap_memory(path.read_bytes(), limit_bytes=64 * MiB, name=path.name)
    info = check_wasi_command(capped, name=path.name)
    assert info.memory is not None and info.memory.max_pages == 64 * MiB // PAGE_BYTES
    assert MEMORY_FLAG_EXPORT in {e.name for e in info.exports}


def test_rewritten_module_behaves_the_same() -> None:
    data = (WASM_MODULES / "greet_1.wasm").read_bytes()
    capped = cap_memory(data, limit_bytes=32 * MiB)
    result = run_module(capped, args=["cap"], stdin=b"", env={}, memory_limit_bytes=32 * MiB)
    assert result.reason is None and result.stdout == b"Hello, cap!\n"


def test_existing_smaller_maximum_is_kept() -> None:
    # one memory, flags 0x01 (has max), min 2, max 4
    assert _cap_memory_section(b"\x01\x01\x02\x04", 1024, "m") == b"\x01\x01\x02\x04"
    # no maximum declared: the cap becomes the maximum
    assert _cap_memory_section(b"\x01\x00\x02", 1024, "m") == b"\x01\x01\x02" + uleb(1024)


def test_a_module_already_exporting_the_flag_is_refused() -> None:
    once = cap_memory((WASM_MODULES / "noop.wasm").read_bytes(), limit_bytes=64 * MiB)
    with pytest.raises(ModuleError, match="reserved name"):
        cap_memory(once, limit_bytes=64 * MiB)


def test_initial_memory_over_the_limit_is_refused_before_running() -> None:
    with pytest.raises(MemoryLimitError, match="initial memory is 256 MiB"):
        cap_memory((TEST_MODULES / "bigstatic.wasm").read_bytes(), limit_bytes=128 * MiB, name="bigstatic")


def test_growth_past_the_cap_is_reported_as_memory_limit() -> None:
    data = cap_memory((TEST_MODULES / "growbomb.wasm").read_bytes(), limit_bytes=8 * MiB)
    result = run_module(data, args=[], stdin=b"", env={}, memory_limit_bytes=8 * MiB)
    assert result.reason is FailureReason.MEMORY_LIMIT and "8 MiB" in result.error


def test_ordinary_unreachable_is_still_a_trap() -> None:
    data = cap_memory((TEST_MODULES / "trap.wasm").read_bytes(), limit_bytes=8 * MiB)
    result = run_module(data, args=[], stdin=b"", env={}, memory_limit_bytes=8 * MiB)
    assert result.reason is FailureReason.TRAP


def test_body_rewrite_replaces_only_memory_grow_at_instruction_boundaries() -> None:
    call = b"\x10" + uleb(300)
    # locals: none; i32.const 0x40 (an immediate that looks like memory.grow); memory.grow 0; drop; end
    body = b"\x00" + b"\x41\xc0\x00" + b"\x40\x00" + b"\x1a" + b"\x0b"
    assert _rewrite_body(body, call, "m") == b"\x00" + b"\x41\xc0\x00" + call + b"\x1a" + b"\x0b"
    # block with empty type (0x40 as a block type), no memory.grow
    block = b"\x00\x02\x40\x0b\x0b"
    assert _rewrite_body(block, call, "m") == block


def test_the_rewrite_reads_simd_immediates_and_refuses_unknown_instructions() -> None:
    # a v128.const whose 16 immediate bytes hold 0x40 0x00 is not a memory.grow (wasmtime runs SIMD)
    simd = b"\x00\xfd\x0c" + b"\x40\x00" * 8 + b"\x1a\x3f\x00\x40\x00\x1a\x0b"
    assert _rewrite_body(simd, b"\x10\x01", "simd") == simd.replace(b"\x3f\x00\x40\x00", b"\x3f\x00\x10\x01")
    with pytest.raises(ModuleError, match="unknown instruction 0xff"):
        _rewrite_body(b"\x00\x40\x00\xff\x0b", b"\x10\x01", "bad")
