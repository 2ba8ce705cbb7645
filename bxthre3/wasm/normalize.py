"""Normalise a WebAssembly module so that Wasm3 and wasmtime see the same, canonical module.

Why: toolchains emit valid modules that Wasm3 0.5.0 misreads.

- Wasm3 looks a function up by its *name-section* name before its export name, so in an
  unstripped C program ``_start`` resolves to the internal function of that name and
  ``__wasm_call_dtors`` (which flushes stdio) never runs: output is silently lost. Custom
  sections (``name``, ``.debug_*``, ``producers``, ``target_features``, ``linking``,
  ``reloc.*``, ...) never change what a module computes, so they are all dropped and
  functions are found by export name only.
- LLVM 19+ encodes ``call_indirect``'s table index as a 5-byte LEB128 ("overlong", which
  the format allows); Wasm3 0.5.0 reads one byte and fails with "LEB encoded value
  overflow". Every LEB128 the binary format has (section and vector sizes, indices,
  every immediate of every instruction, constants, limits) is re-encoded in its shortest
  form.
- Equivalent encodings Wasm3 does not know are rewritten to the MVP form: an active
  data or element segment that names memory/table 0 explicitly, a memarg that names
  memory 0 explicitly. A ``shared`` memory becomes unshared: a task runs on one thread
  (no WASI thread-spawn exists), where both behave the same, and wasmtime refuses shared
  memories in its default configuration.

The same walk records which post-MVP features the module uses, so that submission and the
executor refuse with a message naming the compiler flag that avoids the feature
(:data:`FEATURES` says what each engine runs, measured on pywasm3 0.5.0 and wasmtime 51),
instead of an engine's cryptic load error or, worse, a wrong result.

Pure: bytes in, bytes out; never raises anything but :class:`ModuleError`. It decodes, it
does not validate (index ranges, types): the engines do that when they load the module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bxthre3.common.errors import ModuleError
from bxthre3.wasm.inspect import _SECTION_RANK, section_rank  # one section order for both walkers

WASM3 = "wasm3"
WASMTIME = "wasmtime"
_HEADER = b"\x00asm\x01\x00\x00\x00"


MAX_FUNCTIONS = 50_000
"""Most functions (defined in the module) a task may have, on either engine.

Wasm3 0.5.0 refuses about 100,000 ("too many functions") and wasmtime needs ~6 KB of compile
memory per function: 100,000 took 566 MB and aborted an executor at its address-space cap
(a 64 MiB host's: its limit plus 512 MiB), where 50,000 compile in ~3 s and fit. One limit for
both keeps a module's fate the same whichever host gets it. Real programs stay far below it.
"""


@dataclass(frozen=True, slots=True)
class Feature:
    """A post-MVP WebAssembly feature, which engines run it, and how to build without it."""

    name: str
    what: str
    """What the module contains, in the words of a message."""
    wasm3: bool
    wasmtime: bool
    fix: str
    """The compiler flag (or build change) that avoids it; empty when both engines run it."""

    def runs_on(self, engine: str | None) -> bool:
        """Whether `engine` runs it; engine None means "every engine"."""
        if engine == WASM3:
            return self.wasm3
        if engine == WASMTIME:
            return self.wasmtime
        return self.wasm3 and self.wasmtime

    @property
    def runs_nowhere(self) -> bool:
        return not (self.wasm3 or self.wasmtime)


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("sign-ext", "sign-extension instructions", True, True, ""),
        Feature("nontrapping-fptoint", "saturating float-to-int conversions", True, True, ""),
        Feature("multi-value", "functions or blocks with several results or block parameters", True, True, ""),
        Feature("mutable-globals", "imported or exported mutable globals", True, True, ""),
        Feature("tail-call", "tail calls (return_call)", True, True, ""),
        Feature("memory-copy-fill", "memory.copy / memory.fill", True, True, ""),
        Feature(
            "bulk-memory",
            "passive data or element segments (memory.init, data.drop, table.init, table.copy, elem.drop)",
            False, True, "add -mno-bulk-memory",
        ),
        Feature(
            "reference-types",
            "reference types (several tables, table.get/set/grow/size/fill, ref.null/ref.func, externref, "
            "typed select, declarative or expression element segments)",
            False, True, "add -mno-reference-types (or -mcpu=mvp)",
        ),
        Feature("simd", "SIMD (v128) instructions", False, True, "build without -msimd128 (or add -mno-simd128)"),
        Feature(
            "atomics", "atomic (threads) instructions", False, True,
            "build without -pthread and -matomics (or add -mno-atomics)",
        ),
        Feature(
            "exceptions", "exception handling (try_table, throw, tags)", False, True,
            "build with -fno-exceptions (and without -fwasm-exceptions / -mexception-handling)",
        ),
        Feature(
            "legacy-exceptions", "legacy exception handling (try, catch, rethrow, delegate)", False, False,
            "build with -fno-exceptions (and without -fwasm-exceptions / -mexception-handling)",
        ),
        Feature("extended-const", "extended constant expressions", False, True, "add -mno-extended-const"),
        Feature(
            "function-references", "typed function references (call_ref, ref.as_non_null, br_on_null)",
            False, True, "build for wasm32-wasi without typed function references",
        ),
        Feature(
            "multi-memory", "more than one linear memory (the memory cap needs exactly one)", False, False,
            "add -mno-multimemory",
        ),
        Feature("memory64", "64-bit memories or tables (wasm64)", False, False, "build with --target=wasm32-wasi"),
        Feature("gc", "garbage-collected types (WebAssembly GC)", False, False,
                "build for a linear-memory target (wasm32-wasi) without WebAssembly GC"),
        Feature(
            "many-functions", f"more than {MAX_FUNCTIONS:,} functions", False, False,
            "build with -Os or -flto, or split the program into several tasks",
        ),
    )
}  # fmt: skip
"""Every feature the normaliser recognises. Measured with hand-made modules (see
tests/unit/test_wasm_normalize.py): Wasm3 0.5.0 runs memory.copy/fill but not memory.init
("restricted opcode"), no element segment other than flag 0, no extended constants. Features
that neither runs *after preparation* include multi-memory and memory64, which wasmtime could
load but the memory cap (wasm.sandbox) cannot bound, legacy exceptions, which wasmtime
51 rejects unless configured for them, and more than MAX_FUNCTIONS functions."""


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised module and what the walk found."""

    data: bytes
    features: frozenset[str]
    """Names of :data:`FEATURES` the module uses."""
    dropped: tuple[str, ...]
    """Names of the custom sections dropped, in module order."""
    rewritten: int
    """How many encodings were shortened or rewritten (0: only custom sections dropped)."""


def refusal(features: Iterable[str], *, engine: str | None = None) -> str | None:
    """Why a module using `features` cannot run: on `engine`, or (None) on either engine.

    Returns None when it can. The message names every blocking feature and its fix, and,
    when another engine runs the module, says so.
    """
    blocking = [FEATURES[f] for f in sorted(features) if f in FEATURES]
    if engine is None:
        blocking = [f for f in blocking if f.runs_nowhere]
        return _describe(blocking, "which neither engine runs (Wasm3 nor wasmtime)") if blocking else None
    blocking = [f for f in blocking if not f.runs_on(engine)]
    if not blocking:
        return None
    label = "Wasm3" if engine == WASM3 else engine
    text = _describe(blocking, f"which {label} cannot run")
    if engine == WASM3 and not any(f.runs_nowhere for f in blocking):
        text += "; or run it on a wasmtime host (--engine wasmtime)"
    return text


def _describe(features: list[Feature], verdict: str) -> str:
    uses = "; ".join(f"{f.what}" for f in features)
    fixes: list[str] = []
    for f in features:
        if f.fix and f.fix not in fixes:
            fixes.append(f.fix)
    return f"uses {uses}, {verdict}: {'; '.join(fixes)}"


# -- LEB128 ---------------------------------------------------------------------------


def uleb(value: int) -> bytes:
    """Shortest unsigned LEB128 of `value`."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(value: int) -> bytes:
    """Shortest signed LEB128 of `value`."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


_NUM_TYPES = frozenset({0x7F, 0x7E, 0x7D, 0x7C})
_GC_ABSTRACT = frozenset({0x6E, 0x6D, 0x6C, 0x6B, 0x6A, 0x71, 0x72, 0x73, 0x74, 0x65, 0x66, 0x67, 0x68})

# Instructions by immediate shape (see the binary format's instruction index).
_NONE = frozenset({0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1, *range(0x45, 0xC5)})
_ONE_U32 = frozenset({0x0C, 0x0D, 0x10, 0x20, 0x21, 0x22, 0x23, 0x24})
_MEMARG = frozenset(range(0x28, 0x3F))
_BLOCKS = frozenset({0x02, 0x03, 0x04})
_SIGN_EXT = frozenset(range(0xC0, 0xC5))
_PLAIN = _NONE - _SIGN_EXT  # nothing to record either
_ONE_BYTE_IMMEDIATE = _ONE_U32 | {0x41, 0x42}  # a one-byte (s)LEB128 is always canonical
# Const expressions (global initialisers, segment offsets) may hold only these in the MVP.
_CONST_OPS = frozenset({0x41, 0x42, 0x43, 0x44, 0x23, 0xD0, 0xD2, 0x0B})
# SIMD sub-opcodes with immediates; every other one has none.
_SIMD_MEMARG = frozenset({*range(0x00, 0x0C), 0x5C, 0x5D})
_SIMD_LANE = frozenset(range(0x15, 0x23))
_SIMD_MEMARG_LANE = frozenset(range(0x54, 0x5C))
_SIMD_MAX = 0x113  # relaxed SIMD ends at 0x113
_FC_ARGS = {
    **{sub: 0 for sub in range(8)},
    8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1,
}  # fmt: skip
_FC_FEATURE = {
    **{sub: "nontrapping-fptoint" for sub in range(8)},
    8: "bulk-memory", 9: "bulk-memory", 10: "memory-copy-fill", 11: "memory-copy-fill",
    12: "bulk-memory", 13: "bulk-memory", 14: "bulk-memory",
    15: "reference-types", 16: "reference-types", 17: "reference-types",
}  # fmt: skip


class _Walk:
    """A cursor over one stretch of the module that records canonical re-encodings.

    Nothing is copied while decoding: a non-canonical encoding is recorded as a patch
    (start, end, replacement), and :meth:`splice` builds the new bytes once, so a body
    that needs no change costs one slice.
    """

    __slots__ = ("data", "pos", "end", "module", "features", "patches", "rewritten", "memory64", "where", "grows")

    def __init__(self, data: bytes, pos: int, end: int, module: str, features: set[str]) -> None:
        self.data = data
        self.pos = pos
        self.end = end
        self.module = module
        self.features = features
        self.patches: list[tuple[int, int, bytes]] = []
        self.rewritten = 0
        self.memory64 = False
        self.where = ""
        self.grows: list[tuple[int, int]] | None = None
        """When a list: (start, end) of every `memory.grow 0`, for the memory cap's rewrite."""

    def fail(self, problem: str) -> ModuleError:
        where = f" in {self.where}" if self.where else ""
        return ModuleError(f"malformed WebAssembly at byte {self.pos}{where}: {problem}", module=self.module)

    def byte(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.fail("unexpected end of data")
        self.pos = pos + 1
        return self.data[pos]

    def skip(self, count: int) -> None:
        if count > self.end - self.pos:
            raise self.fail(f"needs {count} bytes, only {self.end - self.pos} left")
        self.pos += count

    def patch(self, start: int, end: int, replacement: bytes) -> None:
        self.patches.append((start, end, replacement))
        self.rewritten += 1

    def u(self, bits: int = 32) -> int:
        """An unsigned LEB128 of at most `bits` bits, shortened when overlong."""
        data = self.data
        start = pos = self.pos
        if pos >= self.end:
            raise self.fail("unexpected end of data")
        byte = data[pos]
        if byte < 0x80:
            self.pos = pos + 1
            return byte
        result = byte & 0x7F
        shift = 7
        limit = start + (bits + 6) // 7
        pos += 1
        while True:
            if pos >= self.end:
                raise self.fail("unexpected end of data")
            if pos >= limit:
                raise self.fail(f"LEB128 integer longer than {(bits + 6) // 7} bytes")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        if result >> bits:
            raise self.fail(f"integer too large for u{bits}")
        self.pos = pos
        canonical = uleb(result)
        if len(canonical) != pos - start:
            self.patch(start, pos, canonical)
        return result

    def s(self, bits: int) -> int:
        """A signed LEB128 of at most `bits` bits, shortened when overlong."""
        data = self.data
        start = pos = self.pos
        limit = start + (bits + 6) // 7
        result = 0
        shift = 0
        while True:
            if pos >= self.end:
                raise self.fail("unexpected end of data")
            if pos >= limit:
                raise self.fail(f"LEB128 integer longer than {(bits + 6) // 7} bytes")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if byte & 0x40:
            result -= 1 << shift
        if not -(1 << (bits - 1)) <= result < (1 << (bits - 1)):
            raise self.fail(f"integer out of range for s{bits}")
        self.pos = pos
        if pos - start > 1:
            canonical = sleb(result)
            if len(canonical) != pos - start:
                self.patch(start, pos, canonical)
        return result

    def name(self) -> None:
        self.skip(self.u())

    def drop_patches_from(self, start: int) -> None:
        """Forget the patches at or after `start` (a larger patch replaces them)."""
        while self.patches and self.patches[-1][0] >= start:
            self.patches.pop()

    def take(self, start: int, end: int) -> bytes:
        """`data[start:end]` patched, for a stretch that is about to be moved into a larger patch."""
        inside = [p for p in self.patches if start <= p[0] < end]
        out = bytearray()
        at = start
        for p_start, p_end, replacement in inside:
            out += self.data[at:p_start]
            out += replacement
            at = p_end
        out += self.data[at:end]
        return bytes(out)

    def splice(self, start: int, end: int) -> bytes:
        """`data[start:end]` with the patches recorded inside it applied (and forgotten)."""
        if not self.patches:
            return self.data[start:end]
        out = bytearray()
        at = start
        for p_start, p_end, replacement in self.patches:
            out += self.data[at:p_start]
            out += replacement
            at = p_end
        out += self.data[at:end]
        self.patches = []
        return bytes(out)

    # -- types ---------------------------------------------------------------------------

    def heap_type(self) -> None:
        value = self.s(33)
        if value >= 0:
            return  # a type index
        code = value & 0x7F
        if code == 0x6F:
            self.features.add("reference-types")
        elif code == 0x69:
            self.features.add("exceptions")
        elif code != 0x70:
            self.features.add("gc")

    def val_type(self) -> None:
        code = self.byte()
        if code in _NUM_TYPES or code == 0x70:
            return
        if code == 0x7B:
            self.features.add("simd")
        elif code == 0x6F:
            self.features.add("reference-types")
        elif code == 0x69:
            self.features.add("exceptions")
        elif code in (0x63, 0x64):
            self.features.add("function-references")
            self.heap_type()
        elif code in _GC_ABSTRACT:
            self.features.add("gc")
        else:
            self.pos -= 1
            raise self.fail(f"unknown value type 0x{code:02x}")

    def block_type(self) -> None:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        code = self.data[self.pos]
        if code == 0x40:
            self.pos += 1
        elif code >= 0x40 and code < 0x80:  # a one-byte value type (negative as s33)
            self.val_type()
        else:
            if self.s(33) < 0:
                raise self.fail("bad block type")
            self.features.add("multi-value")

    def limits(self, *, memory: bool) -> None:
        at = self.pos
        flags = self.byte()
        if flags > 0x07:
            raise self.fail(f"unknown limits flags 0x{flags:02x}")
        bits = 32
        if flags & 0x04:
            self.features.add("memory64")
            bits = 64
        if flags & 0x02:
            if not memory:
                raise self.fail("a shared table")
            self.patch(at, at + 1, bytes((flags & ~0x02,)))  # one thread: unshared is the same
        self.u(bits)
        if flags & 0x01:
            self.u(bits)

    # -- instructions --------------------------------------------------------------------

    def memarg(self) -> None:
        at = self.pos
        align = self.u()
        if align & 0x40:  # multi-memory: a memory index follows
            if self.u() != 0:
                self.features.add("multi-memory")
            else:  # memory 0 named explicitly: the MVP form says the same
                self.drop_patches_from(at)
                self.patch(at, self.pos, uleb(align & ~0x40))
        self.u(64 if self.memory64 else 32)

    def memory_index(self) -> None:
        if self.u() != 0:
            self.features.add("multi-memory")

    def table_index(self) -> None:
        if self.u() != 0:
            self.features.add("reference-types")

    def instructions(self, *, const: bool = False) -> None:
        """Walk instructions to the end of the stretch (a body) or, for `const`, to its `end`."""
        data = self.data
        features = self.features
        end = self.end
        fast = not const
        while self.pos < end:
            pos = self.pos
            op = data[pos]
            if fast and pos + 2 < end:
                # Fast paths for most of a body: no immediate, or one-byte (canonical) immediates.
                if op in _PLAIN:
                    self.pos = pos + 1
                    continue
                if op in _ONE_BYTE_IMMEDIATE and data[pos + 1] < 0x80:
                    self.pos = pos + 2
                    continue
                if op in _MEMARG and data[pos + 1] < 0x40 and data[pos + 2] < 0x80:
                    self.pos = pos + 3
                    continue
            self.pos = pos + 1
            if op in _NONE:
                if const and op == 0x0B:
                    return
                if const:
                    features.add("extended-const")
                elif op in _SIGN_EXT:
                    features.add("sign-ext")
                continue
            if const and op not in _CONST_OPS and op != 0xFD:
                features.add("extended-const")
            if op in _ONE_U32:
                self.u()
            elif op in _MEMARG:
                self.memarg()
            elif op == 0x41:
                self.s(32)
            elif op == 0x42:
                self.s(64)
            elif op in _BLOCKS:
                self.block_type()
            elif op == 0x11 or op == 0x13:  # call_indirect, return_call_indirect
                self.u()
                self.table_index()
                if op == 0x13:
                    features.add("tail-call")
            elif op == 0x0E:  # br_table
                for _ in range(self.u()):
                    self.u()
                self.u()
            elif op == 0x43:
                self.skip(4)
            elif op == 0x44:
                self.skip(8)
            elif op == 0x40 and self.grows is not None:
                at = self.pos - 1
                if self.u() == 0:
                    self.grows.append((at, self.pos))
                else:
                    features.add("multi-memory")
            elif op == 0x3F or op == 0x40:
                self.memory_index()
            elif op == 0x12:
                self.u()
                features.add("tail-call")
            elif op == 0xFC:
                self.prefixed_fc()
            elif op == 0xFD:
                self.prefixed_simd(const)
            elif op == 0xFE:
                self.prefixed_atomic()
            elif op == 0x1C:  # select with types
                for _ in range(self.u()):
                    self.val_type()
                features.add("reference-types")
            elif op == 0x25 or op == 0x26:
                self.u()
                features.add("reference-types")
            elif op == 0xD0:
                self.heap_type()
                features.add("reference-types")
            elif op == 0xD2:
                self.u()
                features.add("reference-types")
            elif op in (0x06, 0x07, 0x09, 0x18, 0x19):  # try, catch, rethrow, delegate, catch_all
                if op == 0x06:
                    self.block_type()
                elif op != 0x19:
                    self.u()
                features.add("legacy-exceptions")
            elif op == 0x08:  # throw
                self.u()
                features.add("exceptions")
            elif op == 0x0A:  # throw_ref
                features.add("exceptions")
            elif op == 0x1F:  # try_table
                self.block_type()
                for _ in range(self.u()):
                    kind = self.byte()
                    if kind > 3:
                        raise self.fail(f"unknown catch kind {kind}")
                    if kind < 2:
                        self.u()
                    self.u()
                features.add("exceptions")
            elif op in (0x14, 0x15, 0xD5, 0xD6):  # call_ref, return_call_ref, br_on_null, br_on_non_null
                self.u()
                features.add("function-references")
            elif op == 0xD4:  # ref.as_non_null
                features.add("function-references")
            elif op == 0xD3 or op == 0xFB:  # ref.eq, the GC prefix
                raise ModuleError(str(refusal(["gc"])), module=self.module)
            else:
                self.pos -= 1
                raise self.fail(f"unknown instruction 0x{op:02x}")
        if const:
            raise self.fail("constant expression without end")

    def prefixed_fc(self) -> None:
        sub = self.u()
        args = _FC_ARGS.get(sub)
        if args is None:
            raise self.fail(f"unknown instruction 0xfc {sub}")
        self.features.add(_FC_FEATURE[sub])
        if sub in (10, 11):  # memory.copy dst src / memory.fill
            for _ in range(args):
                self.memory_index()
        elif sub == 8:  # memory.init data mem
            self.u()
            self.memory_index()
        else:
            for _ in range(args):
                self.u()

    def prefixed_simd(self, const: bool) -> None:
        self.features.add("simd")
        sub = self.u()
        if const and sub != 0x0C:
            self.features.add("extended-const")
        if sub in _SIMD_MEMARG:
            self.memarg()
        elif sub == 0x0C or sub == 0x0D:  # v128.const, i8x16.shuffle
            self.skip(16)
        elif sub in _SIMD_LANE:
            self.skip(1)
        elif sub in _SIMD_MEMARG_LANE:
            self.memarg()
            self.skip(1)
        elif sub > _SIMD_MAX:
            raise self.fail(f"unknown instruction 0xfd {sub}")

    def prefixed_atomic(self) -> None:
        self.features.add("atomics")
        sub = self.u()
        if sub == 0x03:  # atomic.fence: one zero byte
            self.skip(1)
        elif sub <= 0x4E:
            self.memarg()
        else:
            raise self.fail(f"unknown instruction 0xfe {sub}")


# -- sections -------------------------------------------------------------------------


def _types(w: _Walk) -> None:
    for _ in range(w.u()):
        form = w.byte()
        if form != 0x60:
            raise ModuleError(str(refusal(["gc"])), module=w.module)
        for _ in range(w.u()):
            w.val_type()
        results = w.u()
        for _ in range(results):
            w.val_type()
        if results > 1:
            w.features.add("multi-value")


class _Counts:
    """Tables and memories seen so far (imports first), which decide multi-table/multi-memory."""

    __slots__ = ("tables", "memories")

    def __init__(self) -> None:
        self.tables = 0
        self.memories = 0


def _table_type(w: _Walk, counts: _Counts) -> None:
    w.val_type()
    w.limits(memory=False)
    counts.tables += 1
    if counts.tables > 1:
        w.features.add("reference-types")


def _memory_type(w: _Walk, counts: _Counts) -> None:
    w.limits(memory=True)
    counts.memories += 1
    if counts.memories > 1:
        w.features.add("multi-memory")


def _imports(w: _Walk, counts: _Counts) -> None:
    for _ in range(w.u()):
        w.name()
        w.name()
        kind = w.byte()
        if kind == 0x00:
            w.u()
        elif kind == 0x01:
            _table_type(w, counts)
        elif kind == 0x02:
            _memory_type(w, counts)
        elif kind == 0x03:
            w.val_type()
            if w.byte() == 1:
                w.features.add("mutable-globals")
        elif kind == 0x04:
            w.byte()
            w.u()
            w.features.add("exceptions")
        else:
            raise w.fail(f"unknown import kind 0x{kind:02x}")


def _functions(w: _Walk) -> int:
    count = w.u()
    for _ in range(count):
        w.u()
    return count


def _tables(w: _Walk, counts: _Counts) -> None:
    for _ in range(w.u()):
        if w.pos < w.end and w.data[w.pos] == 0x40:  # a table with an initialiser
            w.pos += 1
            if w.byte() != 0x00:
                raise w.fail("bad table initialiser prefix")
            w.features.add("function-references")
            _table_type(w, counts)
            w.instructions(const=True)
        else:
            _table_type(w, counts)


def _memories(w: _Walk, counts: _Counts) -> None:
    for _ in range(w.u()):
        _memory_type(w, counts)


def _globals(w: _Walk) -> None:
    for _ in range(w.u()):
        w.val_type()
        if w.byte() == 1:
            w.features.add("mutable-globals")
        w.instructions(const=True)


def _exports(w: _Walk) -> None:
    for _ in range(w.u()):
        w.name()
        kind = w.byte()
        if kind > 0x04:
            raise w.fail(f"unknown export kind 0x{kind:02x}")
        if kind == 0x04:
            w.features.add("exceptions")
        w.u()


def _elements(w: _Walk) -> None:
    for _ in range(w.u()):
        at = w.pos
        flags = w.u()
        if flags > 7:
            raise w.fail(f"unknown element segment flags {flags}")
        if flags == 2:  # active with an explicit table index
            table = w.u()
            expr_start = w.pos
            w.instructions(const=True)
            expr = w.take(expr_start, w.pos)
            if w.byte() != 0x00:
                raise w.fail("unknown element kind")
            if table == 0:  # the MVP form (flags 0) says the same: drop the table and the kind
                w.drop_patches_from(at)
                w.patch(at, w.pos, b"\x00" + expr)
            else:
                w.features.add("reference-types")
            for _ in range(w.u()):
                w.u()
            continue
        if flags in (1, 5):
            w.features.add("bulk-memory")
        elif flags != 0:
            w.features.add("reference-types")
        if flags & 0x01 == 0:  # active in table 0 (flags 0, 4) or explicit table (2, 6)
            if flags & 0x02:
                w.table_index()
            w.instructions(const=True)
        expressions = bool(flags & 0x04)
        if flags & 0x03:  # element kind (0x00 = funcref) or reference type
            if expressions:
                w.val_type()
            elif w.byte() != 0x00:
                raise w.fail("unknown element kind")
        for _ in range(w.u()):
            if expressions:
                w.instructions(const=True)
            else:
                w.u()


def _data(w: _Walk) -> None:
    for _ in range(w.u()):
        at = w.pos
        flags = w.u()
        if flags == 1:
            w.features.add("bulk-memory")
        elif flags == 2:
            if w.u() == 0:  # memory 0 named explicitly: the MVP form (flags 0) says the same
                w.drop_patches_from(at)
                w.patch(at, w.pos, b"\x00")
            else:
                w.features.add("multi-memory")
        elif flags != 0:
            raise w.fail(f"unknown data segment flags {flags}")
        if flags != 1:
            w.instructions(const=True)
        w.skip(w.u())


def _tags(w: _Walk) -> None:
    w.features.add("exceptions")
    for _ in range(w.u()):
        w.byte()
        w.u()


def normalize(data: bytes, *, name: str = "module") -> Normalized:
    """Return the module without custom sections and with every LEB128 in canonical form.

    Raises ModuleError when the bytes are not a module this decoder can read (including
    WebAssembly GC, which neither engine runs as a task).
    """
    data = bytes(data)
    if data[:8] != _HEADER:
        raise ModuleError("not a WebAssembly 1.0 module", module=name)
    features: set[str] = set()
    counts = _Counts()
    out = bytearray(_HEADER)
    dropped: list[str] = []
    rewritten = 0
    functions = -1
    last_rank = 0
    top = _Walk(data, 8, len(data), name, features)
    while top.pos < top.end:
        section_id = top.byte()
        size = top.u()
        start = top.pos
        end = start + size
        if end > top.end:
            raise top.fail(f"section {section_id} of {size} bytes runs past the end of the module")
        top.pos = end
        w = _Walk(data, start, end, name, features)
        if section_id == 0:
            raw = data[start:end]
            length = w.u()
            dropped.append(raw[w.pos - start : w.pos - start + length].decode("utf-8", "replace"))
            continue
        last_rank = section_rank(section_id, last_rank, w.fail)
        if section_id == 10:
            payload = _code(w, functions)
        else:
            w.where = f"section {section_id}"
            if section_id == 1:
                _types(w)
            elif section_id == 2:
                _imports(w, counts)
            elif section_id == 3:
                functions = _functions(w)
                if functions > MAX_FUNCTIONS:
                    features.add("many-functions")
            elif section_id == 4:
                _tables(w, counts)
            elif section_id == 5:
                _memories(w, counts)
            elif section_id == 6:
                _globals(w)
            elif section_id == 7:
                _exports(w)
            elif section_id == 8 or section_id == 12:  # start function, data count
                w.u()
            elif section_id == 9:
                _elements(w)
            elif section_id == 11:
                _data(w)
            elif section_id == 13:
                _tags(w)
            if w.pos != end:
                raise w.fail(f"{end - w.pos} stray bytes at the end of section {section_id}")
            payload = w.splice(start, end)
        rewritten += w.rewritten
        out.append(section_id)
        out += uleb(len(payload))
        out += payload
    rewritten += top.rewritten
    if functions > 0 and last_rank < _SECTION_RANK[10]:
        raise ModuleError(f"{functions} functions declared but no code section", module=name)
    result = bytes(out)
    if not dropped and not rewritten and result == data:
        result = data
    return Normalized(result, frozenset(features), tuple(dropped), rewritten)


def memory_grows(body: bytes, *, name: str) -> list[tuple[int, int]]:
    """(start, end) of every `memory.grow 0` instruction in one function body (its size excluded).

    The memory cap replaces exactly these; a byte 0x40 elsewhere (an immediate, a block
    type) is not an instruction, so the body must be decoded to find them.
    """
    w = _Walk(body, 0, len(body), name, set())
    w.grows = []
    for _ in range(w.u()):
        w.u()
        w.val_type()
    w.instructions()
    return w.grows


def _code(w: _Walk, functions: int) -> bytes:
    count = w.u()
    if functions >= 0 and count != functions:
        raise w.fail(f"the code section has {count} bodies for {functions} functions")
    if functions < 0 and count:
        raise w.fail("code bodies without a function section")
    out = bytearray(uleb(count))
    end = w.end
    for index in range(count):
        w.where = f"function body {index}"
        w.end = end
        w.memory64 = "memory64" in w.features
        size = w.u()
        w.patches = []  # the size is re-encoded below anyway
        start = w.pos
        body_end = start + size
        if body_end > end:
            raise w.fail(f"body of {size} bytes runs past the code section")
        w.end = body_end
        for _ in range(w.u()):
            w.u()
            w.val_type()
        w.instructions()
        body = w.splice(start, body_end)
        out += uleb(len(body))
        out += body
        w.pos = body_end
    w.end = end
    w.where = "section 10"
    if w.pos != end:
        raise w.fail(f"{end - w.pos} stray bytes at the end of the code section")
    return bytes(out)
