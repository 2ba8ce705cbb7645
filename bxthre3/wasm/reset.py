"""Append a function that puts every mutable global back to its initial value.

Wasm3 compiles a function the first time it runs, and an ordinary C program's `printf` alone costs
~0.6 ms to compile: more than the rest of a short task. To keep compiled code across runs, the Wasm3
engine keeps a module's instance and, between runs, puts back what a run can change. With the
features Wasm3 runs (no bulk memory, no reference types: tables and segments are immutable) that is
exactly the linear memory — restored from a copy taken when the instance was made — and the mutable
globals, which are not reachable from outside unless exported. This rewriter appends a function
that sets each of them to its initial constant, exported as :data:`RESET_EXPORT`, so the engine
resets them with one call whatever the module exports.

Appending keeps every existing index valid and changes no existing code: the function is never
called by the module itself. `wasm.sandbox.prepare_module` appends it to every module it can (both
engines run the same bytes); an engine keeps an instance only of a module exporting it. Modules it
cannot make resettable run in a fresh instance every time, as before.
"""

from __future__ import annotations

from collections.abc import Mapping

from bxthre3.common import limits
from bxthre3.common.errors import ModuleError
from bxthre3.wasm.inspect import _Reader
from bxthre3.wasm.normalize import uleb
from bxthre3.wasm.sections import name_bytes, split

RESET_EXPORT = "__bxthre3_reset"
"""The appended function's export name: () -> (), sets every defined mutable global to its initial value."""

KEEP_INSTANCES_ENV = "BXTHRE3_KEEP_INSTANCES"
"""Set to 0 (in a host's environment) to give every run a fresh instance, as before instances were kept."""

MAX_SNAPSHOT_BYTES = 8 * limits.MiB
"""A module whose memory is bigger than this after instantiation is never kept, on either engine: copying
it back after every run would cost about what a fresh instance costs, and the copy is held besides."""


def keeping(environ: Mapping[str, str]) -> bool:
    """Whether instances are kept, given the process's environment (:data:`KEEP_INSTANCES_ENV`)."""
    return environ.get(KEEP_INSTANCES_ENV, "1") != "0"


KEEPABLE_FEATURES = frozenset(
    {"sign-ext", "nontrapping-fptoint", "multi-value", "mutable-globals", "tail-call", "memory-copy-fill", "simd"}
)
"""Features (`wasm.normalize.FEATURES`) of modules whose whole state is memory and mutable globals.

Anything else can leave state a reset does not cover: passive segments dropped (bulk memory),
tables written or grown (reference types), shared memory (atomics), objects in the store (GC),
thrown exceptions' tags. Wasm3 refuses all of those anyway; wasmtime runs them, fresh each time."""


def keepable(features: frozenset[str] | set[str]) -> bool:
    """Whether a module using `features` can be reset between runs (see :data:`KEEPABLE_FEATURES`)."""
    return features <= KEEPABLE_FEATURES


MEMORY_EXPORT = "memory"
_MEMORY_KIND = 0x02
_GLOBAL_SET = 0x24
_END = 0x0B
_CONST_IMMEDIATE_BYTES = {0x43: 4, 0x44: 8}  # f32.const, f64.const: fixed-size immediates
_LEB_CONSTS = frozenset({0x41, 0x42})  # i32.const, i64.const: one (s)LEB128 immediate
_OTHER_CONST_OPS = frozenset({0x23, 0xD2})  # global.get, ref.func: one uLEB128 index


def add_reset(data: bytes, *, name: str = "module") -> bytes | None:
    """`data` (a normalised module) with the reset function appended and exported, or None.

    None when the module cannot be reset by a function of its own: it has a start function
    (which would have to run again, and may call WASI before `_start`), a mutable global whose
    initial value is not a constant, a memory not exported as "memory" (where an engine looks for
    the memory it restores), or already exports :data:`RESET_EXPORT`. Raises ModuleError for a
    malformed module.
    """
    sections = split(data, name=name)
    if sections.payload(8) is not None:  # a start function
        return None
    imported_funcs, imported_globals = sections.imported()
    n_globals, global_rest = sections.counted(6)
    initial = _mutable_initials(global_rest, n_globals, imported_globals, name)
    if initial is None:
        return None
    n_exports, export_rest = sections.counted(7)
    exported = _exports(export_rest, n_exports, name)
    if RESET_EXPORT in exported:
        return None
    if sections.payload(5) is not None and exported.get(MEMORY_EXPORT) != _MEMORY_KIND:
        return None  # an engine finds the memory it restores by this export (WASI needs it too)
    n_types, type_rest = sections.counted(1)
    n_funcs, func_rest = sections.counted(3)
    n_bodies, code_rest = sections.counted(10)
    if n_bodies != n_funcs:
        raise ModuleError("function and code sections disagree", module=name)
    reset_func = imported_funcs + n_funcs
    code = bytearray(b"\x00")  # no locals
    for index, constant in initial:
        code += constant + bytes([_GLOBAL_SET]) + uleb(index)
    code.append(_END)
    new = {
        1: uleb(n_types + 1) + type_rest + b"\x60\x00\x00",
        3: uleb(n_funcs + 1) + func_rest + uleb(n_types),
        7: uleb(n_exports + 1) + export_rest + name_bytes(RESET_EXPORT) + b"\x00" + uleb(reset_func),
        10: uleb(n_bodies + 1) + code_rest + uleb(len(code)) + bytes(code),
    }
    return sections.assemble(new)


def _mutable_initials(entries: bytes, count: int, first_index: int, name: str) -> list[tuple[int, bytes]] | None:
    """(global index, constant instruction) of each defined mutable global; None if one is not a constant."""
    r = _Reader(entries, 0, len(entries), name)
    found: list[tuple[int, bytes]] = []
    for i in range(count):
        r.byte()  # value type
        mutable = r.byte()
        start = r.pos
        op = r.byte()
        if op in _LEB_CONSTS:
            while r.byte() & 0x80:
                pass
        elif op in _CONST_IMMEDIATE_BYTES:
            r.take(_CONST_IMMEDIATE_BYTES[op])
        elif op in _OTHER_CONST_OPS and not mutable:
            r.uleb()
        else:  # anything else (ref.null, extended constants, global.get into a mutable global): not handled
            return None
        constant = entries[start : r.pos]
        if r.byte() != _END:
            return None
        if mutable:
            found.append((first_index + i, constant))
    if r.remaining:
        raise ModuleError("stray bytes after the global section's entries", module=name)
    return found


def _exports(entries: bytes, count: int, name: str) -> dict[str, int]:
    """Each export's name and kind byte."""
    r = _Reader(entries, 0, len(entries), name)
    found: dict[str, int] = {}
    for _ in range(count):
        field = r.name()
        found[field] = r.byte()
        r.uleb()  # index
    return found
