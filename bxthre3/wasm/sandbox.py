"""Cap a module's linear memory so that outgrowing the host's limit is a visible failure.

Wasm3 honours a module's declared maximum pages, so lowering that maximum caps growth;
but a refused `memory.grow` just returns -1, wasi-libc's malloc returns NULL, and the
program may loop, crash in some unrelated way or even succeed with garbage. The user
must instead be told "memory_limit". So besides lowering the maximum, this rewrites the
module: every `memory.grow` becomes a call to an appended function that grows memory
and, when growth is refused, sets an appended exported global and traps. The engine
reads that global after a trap to report `memory_limit` instead of `trap`.

Appending (rather than inserting) the function and the global keeps every existing
function and global index valid, so only code bodies that contain `memory.grow` change.
"""

from __future__ import annotations

from bxthre3.common.errors import ModuleError
from bxthre3.wasm.inspect import PAGE_BYTES, _Reader, check_wasi_command
from bxthre3.wasm.normalize import memory_grows, normalize, refusal, uleb  # one LEB128 encoder for the package
from bxthre3.wasm.reset import RESET_EXPORT, add_reset, keepable
from bxthre3.wasm.sections import name_bytes, split

MEMORY_FLAG_EXPORT = "__bxthre3_memory_limit"
"""Exported i32 global set to 1 when the module asked for more memory than allowed."""

WASM32_MAX_PAGES = 65536
"""4 GiB: the most linear memory a wasm32 module can address."""


class MemoryLimitError(ModuleError):
    """The module's *initial* memory already exceeds the limit: it cannot start."""


_I32 = 0x7F


def cap_memory(data: bytes, *, limit_bytes: int, name: str = "module") -> bytes:
    """Return the module with its memory capped at ``limit_bytes`` and growth checked.

    Raises MemoryLimitError if its initial memory is already over the limit, and
    ModuleError if the module cannot be rewritten (malformed, or instructions the
    engine does not support anyway).
    """
    max_pages = max(1, min(WASM32_MAX_PAGES, limit_bytes // PAGE_BYTES))
    # The host does not trust the controller's checks: validate here too (pure, fast).
    info = check_wasi_command(data, name=name, scan_code=False)
    for reserved in (MEMORY_FLAG_EXPORT, RESET_EXPORT):
        if info.export_kind(reserved) is not None:
            raise ModuleError(f"exports the reserved name {reserved!r}", module=name)
    sections = split(data, name=name)
    if sections.payload(5) is None:
        return data  # no memory of its own: nothing can grow (imported memory is refused earlier)

    imported_funcs, imported_globals = sections.imported()
    n_types, type_rest = sections.counted(1)
    n_funcs, func_rest = sections.counted(3)
    n_globals, global_rest = sections.counted(6)
    n_exports, export_rest = sections.counted(7)
    n_bodies, code_rest = sections.counted(10)
    if n_bodies != n_funcs:
        raise ModuleError("function and code sections disagree", module=name)

    hook_type = n_types
    hook_func = imported_funcs + n_funcs
    flag_global = imported_globals + n_globals

    new: dict[int, bytes] = {
        1: uleb(n_types + 1) + type_rest + bytes([0x60, 1, _I32, 1, _I32]),
        3: uleb(n_funcs + 1) + func_rest + uleb(hook_type),
        5: _cap_memory_section(sections.payload(5) or b"", max_pages, name),
        6: uleb(n_globals + 1) + global_rest + bytes([_I32, 0x01, 0x41, 0x00, 0x0B]),
        7: uleb(n_exports + 1) + export_rest + name_bytes(MEMORY_FLAG_EXPORT) + b"\x03" + uleb(flag_global),
        10: uleb(n_bodies + 1) + _rewrite_bodies(code_rest, n_bodies, hook_func, name) + _hook_body(flag_global),
    }
    return sections.assemble(new)


def prepare_module(data: bytes, *, engine: str, limit_bytes: int = 0, name: str = "module") -> bytes:
    """What an executor runs: the module normalised, checked for `engine`, memory capped, resettable.

    Resettable: where its features allow (`wasm.reset.keepable`), a function that puts its mutable
    globals back is appended, so the engine may keep its instance between runs. Normalising
    (wasm.normalize) first means both engines load the same canonical bytes, find functions by
    export name only, and that the cap's rewrite reads canonical code.
    Raises ModuleError (naming the compiler flag that avoids the problem) when `engine`
    cannot run the module, MemoryLimitError when its initial memory is over the limit.
    Costs a full decode of the module: call it once per module, as the executor's cache does.
    """
    normalized = normalize(data, name=name)
    problem = refusal(normalized.features, engine=engine)
    if problem:
        raise ModuleError(problem, module=name)
    if limit_bytes:
        prepared = cap_memory(normalized.data, limit_bytes=limit_bytes, name=name)
    else:
        info = check_wasi_command(normalized.data, name=name, scan_code=False)
        if info.export_kind(RESET_EXPORT) is not None:
            raise ModuleError(f"exports the reserved name {RESET_EXPORT!r}", module=name)
        prepared = normalized.data
    if keepable(normalized.features):
        prepared = add_reset(prepared, name=name) or prepared
    return prepared


def _cap_memory_section(payload: bytes, max_pages: int, name: str) -> bytes:
    r = _Reader(payload, 0, len(payload), name)
    if r.uleb() != 1:
        raise ModuleError("expected exactly one memory", module=name)
    minimum, maximum, shared = r.limits()
    if r.remaining:
        raise ModuleError("stray bytes in the memory section", module=name)
    if minimum > max_pages:
        raise MemoryLimitError(
            f"the module's initial memory is {minimum * PAGE_BYTES // 1024 // 1024} MiB, over this host's "
            f"{max_pages * PAGE_BYTES // 1024 // 1024} MiB limit",
            module=name,
        )
    capped = max_pages if maximum is None else min(maximum, max_pages)
    flags = 0x01 | (0x02 if shared else 0)
    return b"\x01" + bytes([flags]) + uleb(minimum) + uleb(capped)


def _hook_body(flag_global: int) -> bytes:
    """(param i32) (result i32) (local i32): grow, or flag and trap when refused."""
    code = (
        b"\x01\x01\x7f"  # one local of type i32
        b"\x20\x00"  # local.get 0
        b"\x40\x00"  # memory.grow 0
        b"\x22\x01"  # local.tee 1
        b"\x41\x7f"  # i32.const -1
        b"\x46"  # i32.eq
        b"\x04\x40"  # if
        b"\x41\x01"  # i32.const 1
        b"\x24"
        + uleb(flag_global)  # global.set flag
        + b"\x00"  # unreachable
        b"\x0b"  # end
        b"\x20\x01"  # local.get 1
        b"\x0b"  # end
    )
    return uleb(len(code)) + code


def _rewrite_bodies(code: bytes, count: int, hook_func: int, name: str) -> bytes:
    r = _Reader(code, 0, len(code), name)
    call_hook = b"\x10" + uleb(hook_func)
    out = bytearray()
    for _ in range(count):
        size = r.uleb()
        body = r.take(size)
        rewritten = _rewrite_body(body, call_hook, name)
        out += uleb(len(rewritten)) + rewritten
    if r.remaining:
        raise ModuleError("stray bytes after the code section's bodies", module=name)
    return bytes(out)


def _rewrite_body(body: bytes, call_hook: bytes, name: str) -> bytes:
    """Copy one function body, replacing each `memory.grow 0` with a call to the hook."""
    if b"\x40" not in body:
        return body
    grows = memory_grows(body, name=name)
    if not grows:
        return body
    out = bytearray()
    at = 0
    for start, end in grows:
        out += body[at:start]
        out += call_hook
        at = end
    out += body[at:]
    return bytes(out)
