"""Read what a WebAssembly module imports, exports and how much memory it declares.

Clients and the controller must reject a bad module at submission, with a message
the user can act on, long before a host tries to run it. Doing that with wasm3 would
pull the engine into processes that never run tasks (the UI, the controller) and
would trust a C parser with hostile bytes, so this is a small pure-Python reader of
the binary format (https://webassembly.github.io/spec/core/binary/modules.html).
It reads only the sections it needs (import, memory, export) and skips the rest by
their declared sizes; it never raises anything but :class:`ModuleError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from bxthre3.common.errors import ModuleError
from bxthre3.common.limits import MAX_MODULE_BYTES
from bxthre3.wasm.abi import ENTRY_POINT, SUPPORTED_WASI_IMPORTS, WASI_MODULE, import_hint

WASM_MAGIC = b"\x00asm"
"""The four bytes every WebAssembly binary starts with."""

WASM_VERSION = 1
"""The only binary-format version there is (MVP and all later proposals)."""

PAGE_BYTES = 65536
"""Size of one linear-memory page; memory limits are counted in pages."""

_SECTION_IMPORT = 2
_SECTION_MEMORY = 5
_SECTION_EXPORT = 7

# The order non-custom sections must appear in; the tag section (13, exception
# handling) and data count (12, bulk memory) sit out of numeric order.
_SECTION_RANK: dict[int, int] = {
    1: 1,  # type
    2: 2,  # import
    3: 3,  # function
    4: 4,  # table
    5: 5,  # memory
    13: 6,  # tag
    6: 7,  # global
    7: 8,  # export
    8: 9,  # start
    9: 10,  # element
    12: 11,  # data count
    10: 12,  # code
    11: 13,  # data
}


def section_rank(section_id: int, last_rank: int, fail: Callable[[str], ModuleError]) -> int:
    """The rank of non-custom section `section_id`, refused if unknown or not after `last_rank`.

    The inspector and the normalizer walk the same sections and must refuse a misplaced
    one in the same words; `fail` is the walker's, so the error says where it stands.
    """
    rank = _SECTION_RANK.get(section_id)
    if rank is None:
        raise fail(f"unknown section id {section_id}")
    if rank <= last_rank:
        raise fail(f"section {section_id} is duplicated or out of order")
    return rank


class ExternKind(str, Enum):
    """What an import or export refers to. Values match the text format's keywords."""

    FUNCTION = "func"
    TABLE = "table"
    MEMORY = "memory"
    GLOBAL = "global"
    TAG = "tag"


_KIND_BY_BYTE: dict[int, ExternKind] = {
    0x00: ExternKind.FUNCTION,
    0x01: ExternKind.TABLE,
    0x02: ExternKind.MEMORY,
    0x03: ExternKind.GLOBAL,
    0x04: ExternKind.TAG,
}


@dataclass(frozen=True, slots=True)
class Import:
    """One import: the engine must provide `module.name` or the module cannot link."""

    module: str
    name: str
    kind: ExternKind

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True, slots=True)
class Export:
    """One export; a WASI command exports the function `_start`."""

    name: str
    kind: ExternKind


@dataclass(frozen=True, slots=True)
class MemoryLimits:
    """The module's linear memory, in 64 KiB pages.

    The engine caps a task's memory by the declared maximum (wasm3 honours it), so it
    needs to know both numbers and whether they came from an import or the module.
    """

    min_pages: int
    max_pages: int | None
    imported: bool = False
    shared: bool = False


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """What the validator needs to know about a module, and nothing it must execute."""

    name: str
    size: int
    imports: tuple[Import, ...]
    exports: tuple[Export, ...]
    memory: MemoryLimits | None
    features: frozenset[str] = frozenset()
    """Post-MVP features the code uses (wasm.normalize.FEATURES); filled by check_wasi_command."""

    def export_kind(self, name: str) -> ExternKind | None:
        """The kind of the export called `name`, or None when there is none."""
        for export in self.exports:
            if export.name == name:
                return export.kind
        return None


class _Reader:
    """A cursor over `data[pos:end]` that turns every overrun into a ModuleError."""

    __slots__ = ("data", "pos", "end", "module")

    def __init__(self, data: bytes, pos: int, end: int, module: str) -> None:
        self.data = data
        self.pos = pos
        self.end = end
        self.module = module

    def fail(self, problem: str) -> ModuleError:
        return ModuleError(f"malformed WebAssembly at byte {self.pos}: {problem}", module=self.module)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, count: int) -> bytes:
        if count > self.remaining:
            raise self.fail(f"needs {count} bytes, only {self.remaining} left")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def uleb(self, bits: int = 32) -> int:
        """Unsigned LEB128 of at most `bits` bits, as the spec requires (u32 or u64)."""
        result = 0
        shift = 0
        max_bytes = (bits + 6) // 7
        for _ in range(max_bytes):
            value = self.byte()
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                if result >> bits:
                    raise self.fail(f"integer too large for u{bits}")
                return result
            shift += 7
        raise self.fail(f"LEB128 integer longer than {max_bytes} bytes")

    def count(self, min_item_bytes: int = 1) -> int:
        """A vector length; refuse one whose items could not fit in what is left."""
        n = self.uleb()
        if n * min_item_bytes > self.remaining:
            raise self.fail(f"vector of {n} items does not fit in {self.remaining} bytes")
        return n

    def name(self) -> str:
        raw = self.take(self.uleb())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("name is not valid UTF-8") from None

    def limits(self) -> tuple[int, int | None, bool]:
        """Limits of a memory or table: (min, max or None, shared)."""
        flags = self.byte()
        if flags > 0x07:
            raise self.fail(f"unknown limits flags 0x{flags:02x}")
        bits = 64 if flags & 0x04 else 32
        minimum = self.uleb(bits)
        maximum = self.uleb(bits) if flags & 0x01 else None
        if maximum is not None and maximum < minimum:
            raise self.fail(f"limits maximum {maximum} is below minimum {minimum}")
        return minimum, maximum, bool(flags & 0x02)


def _describe_start(data: bytes) -> str:
    """Show the first bytes of a non-wasm file so the user can tell what it is."""
    head = data[:8]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return repr(head.decode("ascii"))
    return head.hex(" ") if head else "nothing (empty file)"


def inspect_module(data: bytes, *, name: str) -> ModuleInfo:
    """List a module's imports, exports and memory limits; raise ModuleError if unreadable.

    `name` is only used in messages (the path or module name the user wrote).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModuleError(f"module is {type(data).__name__}, not bytes", module=name)
    data = bytes(data)
    if len(data) > MAX_MODULE_BYTES:
        raise ModuleError(f"module is {len(data)} bytes, over the limit of {MAX_MODULE_BYTES}", module=name)
    if data[:4] != WASM_MAGIC:
        raise ModuleError(
            f"not a WebAssembly module (starts with {_describe_start(data)}, expected {WASM_MAGIC!r})",
            module=name,
        )
    if len(data) < 8:
        raise ModuleError("truncated WebAssembly module: no version field", module=name)
    version = int.from_bytes(data[4:8], "little")
    if version != WASM_VERSION:
        if data[6:8] == b"\x01\x00":  # component-model binaries say "layer 1" here
            raise ModuleError(
                "unsupported WebAssembly version: this is a component (component model), "
                "not a core module; build a wasm32-wasi (preview 1) command",
                module=name,
            )
        raise ModuleError(
            f"unsupported WebAssembly version {version} (only {WASM_VERSION} is supported)",
            module=name,
        )

    imports: list[Import] = []
    exports: list[Export] = []
    memory: MemoryLimits | None = None
    top = _Reader(data, 8, len(data), name)
    last_rank = 0
    while top.remaining:
        section_id = top.byte()
        size = top.uleb()
        if size > top.remaining:
            raise top.fail(f"section {section_id} of {size} bytes runs past the end of the module")
        section = _Reader(data, top.pos, top.pos + size, name)
        top.pos += size
        if section_id == 0:
            section.name()  # a custom section must at least carry a valid name
            continue
        last_rank = section_rank(section_id, last_rank, section.fail)
        if section_id == _SECTION_IMPORT:
            for _ in range(section.count(4)):
                imp, mem = _read_import(section)
                imports.append(imp)
                if mem is not None:
                    memory = _one_memory(section, memory, mem)
        elif section_id == _SECTION_MEMORY:
            for _ in range(section.count(2)):
                minimum, maximum, shared = section.limits()
                memory = _one_memory(section, memory, MemoryLimits(minimum, maximum, False, shared))
        elif section_id == _SECTION_EXPORT:
            seen: set[str] = set()
            for _ in range(section.count(3)):
                export_name = section.name()
                kind = _KIND_BY_BYTE.get(section.byte())
                if kind is None:
                    raise section.fail(f"export {export_name!r} has an unknown kind")
                section.uleb()  # index into that kind's space
                if export_name in seen:
                    raise section.fail(f"export {export_name!r} is duplicated")
                seen.add(export_name)
                exports.append(Export(export_name, kind))
        else:
            continue
        if section.remaining:
            raise section.fail(f"{section.remaining} stray bytes at the end of section {section_id}")
    return ModuleInfo(name, len(data), tuple(imports), tuple(exports), memory)


def _one_memory(r: _Reader, current: MemoryLimits | None, new: MemoryLimits) -> MemoryLimits:
    """Task modules have one linear memory; several would need multi-memory support."""
    if current is not None:
        raise r.fail("more than one memory (multi-memory modules are not supported; add -mno-multimemory)")
    return new


def _read_import(r: _Reader) -> tuple[Import, MemoryLimits | None]:
    module = r.name()
    field = r.name()
    kind_byte = r.byte()
    kind = _KIND_BY_BYTE.get(kind_byte)
    memory: MemoryLimits | None = None
    if kind is ExternKind.FUNCTION:
        r.uleb()  # type index
    elif kind is ExternKind.TABLE:
        r.byte()  # reference type
        r.limits()
    elif kind is ExternKind.MEMORY:
        minimum, maximum, shared = r.limits()
        memory = MemoryLimits(minimum, maximum, True, shared)
    elif kind is ExternKind.GLOBAL:
        r.byte()  # value type
        if r.byte() > 1:
            raise r.fail(f"import {module}.{field}: bad global mutability")
    elif kind is ExternKind.TAG:
        r.byte()  # attribute
        r.uleb()  # type index
    else:
        raise r.fail(f"import {module}.{field} has unknown kind 0x{kind_byte:02x}")
    return Import(module, field, kind), memory


def check_wasi_command(data: bytes, *, name: str, scan_code: bool = True) -> ModuleInfo:
    """Inspect a module and refuse it unless an engine can run it as a task.

    A task is a WASI command: it may import only the `wasi_snapshot_preview1`
    functions the engine implements and must export `_start`. Every offending import
    is listed at once so the user fixes them in one round. With `scan_code` every
    instruction is decoded (wasm.normalize) to find the WebAssembly features it uses:
    one that neither engine runs is refused with the compiler flag that avoids it, and
    the features are returned in ``info.features`` (for "runs on wasmtime only" notes).
    """
    info = inspect_module(data, name=name)
    bad = [
        imp
        for imp in info.imports
        if imp.module != WASI_MODULE or imp.name not in SUPPORTED_WASI_IMPORTS or imp.kind is not ExternKind.FUNCTION
    ]
    if bad:
        listed = ", ".join(str(imp) if imp.kind is ExternKind.FUNCTION else f"{imp} ({imp.kind.value})" for imp in bad)
        hints: list[str] = []
        for imp in bad:
            hint = import_hint(imp.module, imp.name, imp.kind.value)
            if hint and hint not in hints and len(hints) < 3:
                hints.append(hint)
        raise ModuleError(
            f"unsupported imports: {listed}; a task module may import only {WASI_MODULE} functions"
            + "".join(f"; {hint}" for hint in hints),
            module=name,
        )
    kind = info.export_kind(ENTRY_POINT)
    if kind is not ExternKind.FUNCTION:
        if kind is not None:
            problem = f"exports {ENTRY_POINT!r} as a {kind.value}, not a function"
        elif info.export_kind("_initialize") is ExternKind.FUNCTION:
            problem = (
                f"no {ENTRY_POINT!r} export: this is a WASI reactor (library); "
                "build it as a command (a C program with main(), without -mexec-model=reactor)"
            )
        else:
            problem = f"no {ENTRY_POINT!r} function export: a task module must be a WASI command"
        raise ModuleError(problem, module=name)
    if scan_code:
        from bxthre3.wasm.normalize import normalize, refusal  # not needed by processes that only inspect

        features = normalize(data, name=name).features
        refused = refusal(features)
        if refused:
            raise ModuleError(refused, module=name)
        info = dataclasses.replace(info, features=features)
    return info
