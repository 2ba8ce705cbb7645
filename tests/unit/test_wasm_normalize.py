"""Module normalisation: canonical LEB128, no custom sections, MVP forms, and a feature table
that says what Wasm3 and wasmtime really run (checked here against both engines)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from bxthre3.common.errors import ModuleError
from bxthre3.common.limits import MiB
from bxthre3.wasm import choice as engines
from bxthre3.wasm.inspect import check_wasi_command
from bxthre3.wasm.normalize import FEATURES, WASM3, WASMTIME, memory_grows, normalize, refusal, sleb, uleb
from bxthre3.wasm.sandbox import prepare_module
from tests.conftest import ENGINES, WASM_MODULES

TOOLCHAIN = Path(__file__).resolve().parents[1] / "data" / "modules" / "toolchain"
HEADER = b"\x00asm\x01\x00\x00\x00"
LIMIT = 64 * MiB


# -- a tiny assembler whose LEB128 encoder can be swapped for an overlong one ----------------


def overlong_u(n: int) -> bytes:
    """`n` in 5 bytes (u32) or 10 (larger): valid, but not the shortest form."""
    width = 5 if n < 1 << 32 else 10
    return bytes([(n >> (7 * i)) & 0x7F | (0x80 if i < width - 1 else 0) for i in range(width)])


def overlong_s(n: int, width: int = 5) -> bytes:
    return bytes([(n >> (7 * i)) & 0x7F | (0x80 if i < width - 1 else 0) for i in range(width)])


class Asm:
    """Builds the same module with canonical or overlong LEB128 everywhere."""

    def __init__(self, u: Callable[[int], bytes], s: Callable[[int], bytes]) -> None:
        self.u, self.s = u, s

    def name(self, text: str) -> bytes:
        return self.u(len(text)) + text.encode()

    def vec(self, items: list[bytes]) -> bytes:
        return self.u(len(items)) + b"".join(items)

    def section(self, section_id: int, payload: bytes) -> bytes:
        return bytes([section_id]) + self.u(len(payload)) + payload

    def body(self, code: bytes, locals_: list[tuple[int, int]] = ()) -> bytes:  # type: ignore[assignment]
        content = self.vec([self.u(n) + bytes([t]) for n, t in locals_]) + code
        return self.u(len(content)) + content


CANONICAL = Asm(uleb, sleb)
OVERLONG = Asm(overlong_u, overlong_s)

FD_WRITE = "wasi_snapshot_preview1", "fd_write"


def writer(a: Asm, text: bytes, *, decoy_named_start: bool = False, via_table: bool = False) -> bytes:
    """A WASI command whose `_start` writes `text` to stdout, touching every section kind.

    With `decoy_named_start`, a name section calls another function `_start` (what an
    unstripped clang build looks like); with `via_table`, `_start` reaches the writer
    through call_indirect.
    """
    u, s = a.u, a.s
    types = a.section(1, a.vec([
        b"\x60" + a.vec([b"\x7f"] * 4) + a.vec([b"\x7f"]),  # 0: fd_write
        b"\x60" + a.vec([]) + a.vec([]),  # 1: () -> ()
    ]))  # fmt: skip
    imports = a.section(2, a.vec([a.name(FD_WRITE[0]) + a.name(FD_WRITE[1]) + b"\x00" + u(0)]))
    functions = a.section(3, a.vec([u(1), u(1), u(1)]))  # 1: decoy, 2: write, 3: _start
    table = a.section(4, a.vec([b"\x70\x00" + u(1)]))
    memory = a.section(5, a.vec([b"\x01" + u(1) + u(2)]))
    globals_ = a.section(6, a.vec([b"\x7f\x01\x41" + s(100) + b"\x0b"]))
    exports = a.section(7, a.vec([a.name("_start") + b"\x00" + u(3), a.name("memory") + b"\x02" + u(0)]))
    elements = a.section(9, a.vec([u(0) + b"\x41" + s(0) + b"\x0b" + a.vec([u(2)])]))
    # iovec at 8: (ptr 16, len); text at 16
    write = (
        b"\x41" + s(8) + b"\x41" + s(16) + b"\x36" + u(2) + u(0)  # i32.store align=2 offset=0
        + b"\x41" + s(12) + b"\x41" + s(len(text)) + b"\x36" + u(2) + u(0)
        + b"\x02\x40"  # block
        + b"\x41" + s(1) + b"\x41" + s(8) + b"\x41" + s(1) + b"\x41" + s(0)
        + b"\x10" + u(0) + b"\x0d" + u(0)  # call fd_write; br_if 0 (errno)
        + b"\x0b"
        + b"\x23" + u(0) + b"\x41" + s(-1) + b"\x6a" + b"\x24" + u(0)  # global -= 1
        + b"\x0b"
    )  # fmt: skip
    decoy = b"\x0b"
    start = (b"\x41" + s(0) + b"\x11" + u(1) + u(0) if via_table else b"\x10" + u(2)) + b"\x0b"
    code = a.section(10, a.vec([a.body(decoy), a.body(write, [(1, 0x7E)]), a.body(start)]))
    data = a.section(11, a.vec([u(0) + b"\x41" + s(16) + b"\x0b" + a.vec([bytes([c]) for c in text])]))
    sections = [types, imports, functions, table, memory, globals_, exports, elements, code, data]
    if decoy_named_start:
        names = a.name("name") + b"\x01" + _name_map(a, {1: "_start", 3: "entry"})
        sections.append(a.section(0, names))
        sections.insert(0, a.section(0, a.name("producers") + b"\x01\x00"))
        sections.append(a.section(0, a.name(".debug_info") + b"\xde\xad\xbe\xef"))
    return HEADER + b"".join(sections)


def _name_map(a: Asm, names: dict[int, str]) -> bytes:
    entries = a.vec([a.u(index) + a.name(text) for index, text in sorted(names.items())])
    return a.u(len(entries)) + entries


def run(engine: str, wasm: bytes) -> tuple[bytes, object, str]:
    result = engines.runner(engine)(wasm, args=[], stdin=b"", env={}, memory_limit_bytes=LIMIT)
    return result.stdout, result.reason, result.error


# -- canonical bytes --------------------------------------------------------------------


def test_every_overlong_leb_becomes_the_shortest_form() -> None:
    overlong = writer(OVERLONG, b"hello\n", via_table=True)
    canonical = writer(CANONICAL, b"hello\n", via_table=True)
    assert len(overlong) > len(canonical) + 150
    result = normalize(overlong, name="m")
    assert result.data == canonical
    assert result.rewritten > 50 and result.dropped == ()
    again = normalize(result.data, name="m")
    assert again.data is result.data and again.rewritten == 0  # nothing to do: the same bytes back


def test_signed_immediates_keep_their_values() -> None:
    for value, width in ((-1, 5), (-64, 2), (63, 3), (-(1 << 31), 5), (1 << 62, 10), (-(1 << 63), 10)):
        op, bits = (b"\x41", 32) if width == 5 and -(1 << 31) <= value < 1 << 31 else (b"\x42", 64)
        body = op + overlong_s(value, width) + b"\x1a\x0b"
        module = HEADER + CANONICAL.section(1, b"\x01\x60\x00\x00") + CANONICAL.section(3, b"\x01\x00")
        code = CANONICAL.section(10, CANONICAL.vec([CANONICAL.body(body)]))
        out = normalize(module + code, name=f"s{bits}").data
        assert out == module + CANONICAL.section(10, CANONICAL.vec([CANONICAL.body(op + sleb(value) + b"\x1a\x0b")]))


@pytest.mark.parametrize("engine", ENGINES)
def test_overlong_call_indirect_runs_on_both_engines(engine: str) -> None:
    wasm = writer(OVERLONG, b"through the table\n", via_table=True)
    if engine == WASM3:  # what LLVM 19 emits and Wasm3 0.5.0 cannot read
        assert "LEB encoded value overflow" in run(engine, wasm)[2]
    prepared = prepare_module(wasm, engine=engine, limit_bytes=LIMIT, name="m")
    assert run(engine, prepared) == (b"through the table\n", None, "")


@pytest.mark.parametrize("engine", ENGINES)
def test_functions_are_found_by_export_name_only(engine: str) -> None:
    wasm = writer(CANONICAL, b"from the exported _start\n", decoy_named_start=True)
    if engine == WASM3:  # Wasm3 finds the decoy through the name section: no output, "success"
        assert run(engine, wasm) == (b"", None, "")
    result = normalize(wasm, name="m")
    assert result.dropped == ("producers", "name", ".debug_info")
    assert result.data == writer(CANONICAL, b"from the exported _start\n")
    prepared = prepare_module(wasm, engine=engine, limit_bytes=LIMIT, name="m")
    assert run(engine, prepared) == (b"from the exported _start\n", None, "")


def test_explicit_index_zero_forms_become_mvp_forms() -> None:
    a = CANONICAL
    head = HEADER + a.section(1, b"\x01\x60\x00\x00") + a.section(3, b"\x01\x00") + a.section(4, b"\x01\x70\x00\x01")
    head += a.section(5, b"\x01\x00\x01")
    offset = b"\x41" + overlong_s(4) + b"\x0b"
    # element flags 2 (table 0 named, element kind funcref) -> flags 0; data flags 2 (memory 0) -> 0;
    # a memarg naming memory 0 (alignment bit 6) -> the plain memarg
    elem_2 = a.section(9, b"\x01" + b"\x02" + overlong_u(0) + offset + b"\x00" + b"\x01\x00")
    elem_0 = a.section(9, b"\x01" + b"\x00" + b"\x41\x04\x0b" + b"\x01\x00")
    load = b"\x41\x00\x28" + bytes([0x42]) + overlong_u(0) + b"\x08\x1a\x0b"
    code_explicit = a.section(10, a.vec([a.body(load)]))
    code_mvp = a.section(10, a.vec([a.body(b"\x41\x00\x28\x02\x08\x1a\x0b")]))
    data_2 = a.section(11, b"\x01" + b"\x02" + b"\x00" + offset + b"\x01x")
    data_0 = a.section(11, b"\x01" + b"\x00" + b"\x41\x04\x0b" + b"\x01x")
    result = normalize(head + elem_2 + code_explicit + data_2, name="m")
    assert result.data == head + elem_0 + code_mvp + data_0
    assert "reference-types" not in result.features and "multi-memory" not in result.features


def test_a_shared_memory_becomes_unshared() -> None:
    shared = HEADER + CANONICAL.section(5, b"\x01\x03\x01\x02")
    assert normalize(shared, name="m").data == HEADER + CANONICAL.section(5, b"\x01\x01\x01\x02")


def test_memory_grows_are_found_only_at_instruction_boundaries() -> None:
    body = b"\x01\x01\x7f" + b"\x41\xc0\x00" + b"\x02\x40\x0b" + b"\x41\x01\x40\x00\x1a"
    body += b"\x43\x40\x00\x40\x00\x1a\x0b"
    assert memory_grows(body, name="m") == [(11, 13)]  # not the 0x40 0x00 inside i32.const, block, f32


@pytest.mark.parametrize("path", sorted(WASM_MODULES.glob("*.wasm")), ids=lambda p: p.stem)
def test_shipped_modules_normalise_to_a_fixed_point_and_use_nothing_new(path: Path) -> None:
    result = normalize(path.read_bytes(), name=path.name)
    assert result.features <= {"mutable-globals", "sign-ext", "nontrapping-fptoint", "memory-copy-fill"}
    assert normalize(result.data, name=path.name).rewritten == 0


@pytest.mark.one_python  # pure byte parsing; tests/unit runs its other tests on every Python
def test_hostile_bytes_give_only_module_errors() -> None:
    rng = random.Random(7)
    bases = [p.read_bytes() for p in sorted(WASM_MODULES.glob("*.wasm"))[:4]] + [writer(OVERLONG, b"x\n")]
    for _ in range(1500):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(8, len(data))]
        try:
            normalize(bytes(data), name="fuzz")
        except ModuleError:
            pass


# -- the feature table, against the engines ------------------------------------------------

# WebAssembly text of each case's `_start` module (wasmtime's wat2wasm assembles it).
FEATURE_CASES: dict[str, tuple[str, str]] = {
    "sign-ext": ("sign-ext", '(func (export "_start") i32.const 255 i32.extend8_s drop)'),
    "sat": ("nontrapping-fptoint", '(func (export "_start") f32.const 1e30 i32.trunc_sat_f32_s drop)'),
    "multi-value": ("multi-value", '(func $f (result i32 i32) i32.const 1 i32.const 2) '
                    '(func (export "_start") call $f i32.add drop)'),
    "multi-value-block": ("multi-value", '(func (export "_start") i32.const 1 '
                          '(block (param i32) (result i32) i32.const 2 i32.add) drop)'),
    "mutable-global": ("mutable-globals", '(global (export "g") (mut i32) (i32.const 0)) '
                       '(func (export "_start") i32.const 1 global.set 0)'),
    "tail-call": ("tail-call", '(func $f) (func (export "_start") return_call $f)'),
    "memory.copy": ("memory-copy-fill", '(memory 1) (func (export "_start") i32.const 8 i32.const 0 i32.const 3 '
                    'memory.copy i32.const 0 i32.const 1 i32.const 3 memory.fill)'),
    "memory.init": ("bulk-memory", '(memory 1) (data "abc") (func (export "_start") '
                    'i32.const 16 i32.const 0 i32.const 3 memory.init 0 data.drop 0)'),
    "table.copy": ("bulk-memory", '(table 2 funcref) (func (export "_start") i32.const 0 i32.const 1 i32.const 1 '
                   'table.copy)'),
    "two-tables": ("reference-types", '(type $t (func)) (table 1 funcref) (table $t2 1 funcref) '
                   '(elem (table $t2) (i32.const 0) func $f) (func $f) '
                   '(func (export "_start") i32.const 0 call_indirect $t2 (type $t))'),
    "ref.null": ("reference-types", '(func (export "_start") ref.null func ref.is_null drop)'),
    "typed-select": ("reference-types", '(func (export "_start") i32.const 1 i32.const 2 i32.const 0 '
                     'select (result i32) drop)'),
    "simd": ("simd", '(func (export "_start") v128.const i32x4 1 2 3 4 i32x4.extract_lane 2 drop)'),
    "atomics": ("atomics", '(memory 1 1) (func (export "_start") i32.const 0 i32.atomic.load drop)'),
    "atomics-shared": ("atomics", '(memory 1 1 shared) (func (export "_start") '
                       'i32.const 0 i32.const 5 i32.atomic.rmw.add drop)'),
    "exceptions": ("exceptions", '(tag $e) (func (export "_start") (block $h (try_table (catch $e $h) throw $e)))'),
    "extended-const": ("extended-const", '(global i32 (i32.add (i32.const 1) (i32.const 2))) '
                       '(func (export "_start") global.get 0 drop)'),
    "call_ref": ("function-references", '(type $t (func)) (func $f (type $t)) (elem declare func $f) '
                 '(func (export "_start") ref.func $f call_ref $t)'),
    "multi-memory": ("multi-memory", '(memory 1) (memory $m2 1) '
                     '(func (export "_start") i32.const 0 i32.load $m2 drop)'),
    "memory64": ("memory64", '(memory i64 1) (func (export "_start") i64.const 0 i32.load drop)'),
}  # fmt: skip

LEGACY_EXCEPTIONS = (
    HEADER
    + CANONICAL.section(1, b"\x01\x60\x00\x00")
    + CANONICAL.section(3, b"\x01\x00")
    + CANONICAL.section(13, b"\x01\x00\x00")
    + CANONICAL.section(7, CANONICAL.vec([CANONICAL.name("_start") + b"\x00\x00"]))
    + CANONICAL.section(10, CANONICAL.vec([CANONICAL.body(b"\x06\x40\x08\x00\x07\x00\x0b\x0b")]))
)  # try; throw 0; catch 0; end

# Refused for a reason other than the engine: the memory cap bounds exactly one 32-bit memory
# (wasmtime itself loads both), and Wasm3 misreads a 64-bit memory's limits as 32-bit ones.
NOT_THE_ENGINES_VERDICT = {("multi-memory", WASMTIME), ("memory64", WASMTIME), ("memory64", WASM3)}


def feature_module(case: str) -> tuple[str, bytes]:
    if case == "legacy-exceptions":
        return "legacy-exceptions", LEGACY_EXCEPTIONS
    wasmtime = pytest.importorskip("wasmtime", reason="the cases are assembled by wasmtime's wat2wasm")
    feature, text = FEATURE_CASES[case]
    return feature, bytes(wasmtime.wat2wasm(f"(module {text})"))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", [*FEATURE_CASES, "legacy-exceptions"])
def test_the_feature_table_is_what_each_engine_runs(case: str, engine: str) -> None:
    feature, wasm = feature_module(case)
    found = normalize(wasm, name=case)
    assert feature in found.features
    expected = FEATURES[feature].runs_on(engine)
    # the engine itself, on the normalised bytes, without our refusal
    if (feature, engine) not in NOT_THE_ENGINES_VERDICT:
        stdout, reason, error = run(engine, found.data)
        assert (reason is None) == expected, f"{case} on {engine}: {reason} {error}"
    # the executor's preparation refuses exactly what the table says this engine cannot run
    try:
        prepared = prepare_module(wasm, engine=engine, limit_bytes=LIMIT, name=case)
    except ModuleError as exc:
        assert not expected, f"{case} refused on {engine}: {exc}"
        assert FEATURES[feature].fix in str(exc)
    else:
        assert expected and run(engine, prepared)[1] is None


def test_validation_refuses_only_what_neither_engine_runs() -> None:
    _, simd = feature_module("simd")
    info = check_wasi_command(simd, name="simd.wasm")  # wasmtime runs it: accepted, features said
    assert "simd" in info.features
    with pytest.raises(ModuleError, match=r"neither engine runs .*-fno-exceptions") as caught:
        check_wasi_command(LEGACY_EXCEPTIONS, name="eh.wasm")
    assert str(caught.value).startswith("eh.wasm: ") and "\n" not in str(caught.value)
    _, memory64 = feature_module("memory64")
    with pytest.raises(ModuleError, match="--target=wasm32-wasi"):
        check_wasi_command(memory64, name="m64.wasm")


def test_refusal_messages_name_the_flag_and_the_other_engine() -> None:
    text = refusal({"simd", "atomics", "mutable-globals"}, engine=WASM3)
    assert text == (
        "uses atomic (threads) instructions; SIMD (v128) instructions, which Wasm3 cannot run: build without "
        "-pthread and -matomics (or add -mno-atomics); build without -msimd128 (or add -mno-simd128); "
        "or run it on a wasmtime host (--engine wasmtime)"
    )
    assert refusal({"simd"}, engine=WASMTIME) is None
    assert refusal({"simd"}) is None
    assert refusal({"gc"}) is not None and "neither engine" in refusal({"gc"})  # type: ignore[operator]


def test_gc_modules_are_refused_with_a_message() -> None:
    wasmtime = pytest.importorskip("wasmtime")
    wasm = bytes(wasmtime.wat2wasm('(module (type $s (struct (field i32))) (func (export "_start")))'))
    with pytest.raises(ModuleError, match="WebAssembly GC"):
        normalize(wasm, name="gc.wasm")


# -- real toolchain output -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_an_unstripped_clang_19_printf_module_prints_all_three_lines(engine: str) -> None:
    wasm = (TOOLCHAIN / "printf3_clang19.wasm").read_bytes()
    prepared = prepare_module(wasm, engine=engine, limit_bytes=LIMIT, name="printf3")
    assert run(engine, prepared) == (b"line 1 from task\nline 2: 1 arguments\nline 3: done", None, "")
    assert len(prepared) < len(wasm) // 4  # the debug sections are gone


@pytest.mark.parametrize("engine", ENGINES)
def test_a_clang_19_call_indirect_module_runs(engine: str) -> None:
    wasm = (TOOLCHAIN / "call_indirect_clang19.wasm").read_bytes()
    prepared = prepare_module(wasm, engine=engine, limit_bytes=LIMIT, name="call_indirect")
    assert run(engine, prepared) == (b"twice 7 = 14\nsquare 7 = 49\n1 arguments\n", None, "")
