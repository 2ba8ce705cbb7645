"""The reset rewriter (wasm.reset): the appended function puts every mutable global back, checked in wasmtime."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import wasmtime

from bxthre3.common.errors import ModuleError
from bxthre3.wasm.normalize import sleb, uleb
from bxthre3.wasm.reset import RESET_EXPORT, add_reset, keepable
from bxthre3.wasm.sandbox import prepare_module
from tests.unit.test_wasm_inspect import func_export, module, name, section, vec

MODULES = Path(__file__).resolve().parents[2] / "wasm_modules"

I32, I64, F32, F64 = 0x7F, 0x7E, 0x7D, 0x7C


def global_entry(kind: int, mutable: bool, init: bytes) -> bytes:
    return bytes([kind, 1 if mutable else 0]) + init + b"\x0b"


def global_export(field: str, index: int) -> bytes:
    return name(field) + b"\x03" + uleb(index)


INITIAL = [
    (I32, True, b"\x41" + sleb(7)),
    (I64, True, b"\x42" + sleb(-5_000_000_000)),
    (F32, True, b"\x43" + struct.pack("<f", 1.5)),
    (F64, True, b"\x44" + struct.pack("<d", 2.25)),
    (I32, False, b"\x41" + sleb(9)),
]


def globals_module(*, extra_sections: tuple[bytes, ...] = (), exports: tuple[bytes, ...] = ()) -> bytes:
    """Five globals (four mutable), exported as g0..g4, and `_start` setting the mutable ones elsewhere."""
    body = (
        b"\x00"
        + b"\x41" + sleb(100) + b"\x24\x00"
        + b"\x42" + sleb(200) + b"\x24\x01"
        + b"\x43" + struct.pack("<f", -3.0) + b"\x24\x02"
        + b"\x44" + struct.pack("<d", -4.0) + b"\x24\x03"
        + b"\x0b"
    )  # fmt: skip
    return module(
        section(1, vec([b"\x60\x00\x00"])),
        section(3, vec([uleb(0)])),
        section(5, vec([b"\x00" + uleb(1)])),
        section(6, vec([global_entry(*g) for g in INITIAL])),
        section(
            7,
            vec(
                [
                    func_export("_start", 0),
                    *(global_export(f"g{i}", i) for i in range(5)),
                    *exports,
                    name("memory") + b"\x02\x00",
                ]
            ),
        ),  # fmt: skip
        *extra_sections,
        section(10, vec([uleb(len(body)) + body])),
    )


def instantiate(data: bytes) -> tuple[wasmtime.Store, wasmtime.Instance]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    return store, wasmtime.Instance(store, wasmtime.Module(engine, data), [])


def values(store: wasmtime.Store, instance: wasmtime.Instance) -> list[float]:
    exports = instance.exports(store)
    return [exports[f"g{i}"].value(store) for i in range(5)]  # type: ignore[union-attr]


def test_reset_puts_every_mutable_global_back_to_its_initial_value() -> None:
    rewritten = add_reset(globals_module())
    assert rewritten is not None
    store, instance = instantiate(rewritten)
    exports = instance.exports(store)
    initial = [7, -5_000_000_000, 1.5, 2.25, 9]
    assert values(store, instance) == initial
    exports["_start"](store)  # type: ignore[operator]
    assert values(store, instance) == [100, 200, -3.0, -4.0, 9]
    exports[RESET_EXPORT](store)  # type: ignore[operator]
    assert values(store, instance) == initial


def test_the_original_functions_and_exports_are_unchanged() -> None:
    original = globals_module()
    rewritten = add_reset(original)
    assert rewritten is not None and rewritten.startswith(original[:8])
    engine = wasmtime.Engine()
    before = {e.name for e in wasmtime.Module(engine, original).exports}
    after = {e.name for e in wasmtime.Module(engine, rewritten).exports}
    assert after == before | {RESET_EXPORT}


def test_a_module_without_globals_gets_an_empty_reset() -> None:
    empty = module(
        section(1, vec([b"\x60\x00\x00"])),
        section(3, vec([uleb(0)])),
        section(7, vec([func_export("_start", 0)])),
        section(10, vec([b"\x02\x00\x0b"])),
    )
    rewritten = add_reset(empty)
    assert rewritten is not None
    store, instance = instantiate(rewritten)
    instance.exports(store)[RESET_EXPORT](store)  # type: ignore[operator]


@pytest.mark.parametrize(
    "why, data",
    [
        ("a start function", globals_module(extra_sections=(section(8, uleb(0)),))),
        ("the name is taken", globals_module(exports=(func_export(RESET_EXPORT, 0),))),
    ],
)
def test_modules_it_cannot_make_resettable_get_none(why: str, data: bytes) -> None:
    wasmtime.Module.validate(wasmtime.Engine(), data)  # the input itself is valid
    assert add_reset(data) is None, why


def test_a_memory_not_exported_as_memory_gets_none() -> None:
    """The engines find the memory to restore by that export; one they cannot reach cannot be reset."""
    data = module(
        section(1, vec([b"\x60\x00\x00"])),
        section(3, vec([uleb(0)])),
        section(5, vec([b"\x00" + uleb(1)])),
        section(7, vec([func_export("_start", 0), name("mem") + b"\x02\x00"])),
        section(10, vec([b"\x02\x00\x0b"])),
    )
    wasmtime.Module.validate(wasmtime.Engine(), data)
    assert add_reset(data) is None


def test_a_mutable_global_not_initialised_by_a_constant_gets_none() -> None:
    imported = name("env") + name("base") + b"\x03" + bytes([I32, 0])
    data = module(
        section(1, vec([b"\x60\x00\x00"])),
        section(2, vec([imported])),
        section(3, vec([uleb(0)])),
        section(6, vec([global_entry(I32, True, b"\x23\x00")])),  # global.get of the import
        section(7, vec([func_export("_start", 0)])),
        section(10, vec([b"\x02\x00\x0b"])),
    )
    wasmtime.Module.validate(wasmtime.Engine(), data)
    assert add_reset(data) is None


@pytest.mark.parametrize("path", sorted(MODULES.glob("*.wasm")), ids=lambda p: p.name)
@pytest.mark.parametrize("limit", [0, 64 << 20], ids=["uncapped", "capped"])
def test_prepared_example_modules_are_resettable_and_valid(path: Path, limit: int) -> None:
    prepared = prepare_module(path.read_bytes(), engine="wasm3", limit_bytes=limit, name=path.name)
    module = wasmtime.Module(wasmtime.Engine(), prepared)
    assert RESET_EXPORT in {e.name for e in module.exports}


def test_preparing_refuses_a_module_exporting_the_reserved_name() -> None:
    data = globals_module(exports=(func_export(RESET_EXPORT, 0),))
    for limit in (0, 64 << 20):
        with pytest.raises(ModuleError, match="reserved name"):
            prepare_module(data, engine="wasmtime", limit_bytes=limit)


def test_a_module_with_state_a_reset_does_not_cover_is_prepared_without_one() -> None:
    """memory.init / data.drop (bulk memory) run on wasmtime only, and a dropped segment stays dropped."""
    body = b"\x00" + b"\x41\x00\x41\x00\x41\x01\xfc\x08\x00\x00" + b"\xfc\x09\x00" + b"\x0b"
    data = module(
        section(1, vec([b"\x60\x00\x00"])),
        section(3, vec([uleb(0)])),
        section(5, vec([b"\x00" + uleb(1)])),
        section(7, vec([func_export("_start", 0)])),
        section(12, uleb(1)),
        section(10, vec([uleb(len(body)) + body])),
        section(11, vec([b"\x01" + uleb(1) + b"x"])),  # one passive segment
    )
    wasmtime.Module.validate(wasmtime.Engine(), data)
    prepared = prepare_module(data, engine="wasmtime")
    assert RESET_EXPORT not in {e.name for e in wasmtime.Module(wasmtime.Engine(), prepared).exports}
    assert keepable(frozenset({"mutable-globals", "simd"})) and not keepable(frozenset({"bulk-memory"}))
