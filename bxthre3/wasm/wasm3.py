"""Run one WASI command module in Wasm3 and report how it ended.

This is the only module that imports wasm3, so the controller, the UI and the executor's
parent side never load it. `run_module` never raises for anything a module does: a
trap, an exit code, a runaway output or a broken binary all come back as a
:class:`RunResult` with a :class:`~bxthre3.common.failures.FailureReason`.

It cannot stop a module that loops forever: pywasm3 holds the GIL and cannot be
interrupted, which is why it runs inside the killable executor child.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import wasm3

from bxthre3.common import limits
from bxthre3.common.failures import FailureReason
from bxthre3.wasm import abi
from bxthre3.wasm.contract import Engine, RunResult
from bxthre3.wasm.inspect import PAGE_BYTES, inspect_module
from bxthre3.wasm.reset import MAX_SNAPSHOT_BYTES, RESET_EXPORT, keeping
from bxthre3.wasm.sandbox import MEMORY_FLAG_EXPORT
from bxthre3.wasm.wasi import (
    EBADF,
    ERRNO_EXCEPTIONS,
    SIGNATURES,
    WasiShim,
    errno_of,
    host_method,
    shim_ending,
    task_seed,
)

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

log = logging.getLogger("bxthre3.engine")  # the name log lines show: kept from before the move to packages

DEFAULT_STACK_BYTES = 256 * 1024
"""Wasm3's own value stack per run, in bytes.

It holds wasm locals and call frames; C arrays and structs live on wasi-libc's shadow
stack in linear memory instead. 256 KiB allows about 6,500 nested calls of a small
function (4× Wasm3's default). Wasm3 also recurses on the native C stack for each wasm
call: measured on x86-64 with an 8 MiB native stack, 1 MiB here still ends unbounded
recursion in a clean "stack overflow" trap but 2 MiB crashes the process, so 256 KiB
keeps a wide margin (and suits threads with ~1 MiB stacks).
"""


def run_module(
    wasm: bytes,
    *,
    args: Sequence[str],
    stdin: bytes,
    env: Mapping[str, str],
    program_name: str = "task",
    max_stdout: int = limits.MAX_OUTPUT_BYTES,
    max_stderr: int = limits.MAX_STDERR_BYTES,
    stack_bytes: int = DEFAULT_STACK_BYTES,
    memory_limit_bytes: int | None = None,
    timeout_s: float | None = None,
    files: Mapping[str, bytes] | None = None,
    deterministic: bool = False,
) -> RunResult:
    """Load `wasm`, call its `_start` with `args` and `stdin`, and capture its output.

    The module sees `program_name` as argv[0], `args` as argv[1..] and exactly `env` as
    its environment: the caller adds BXTHRE3_INPUT_SIZES and BXTHRE3_TASK_ID.
    `memory_limit_bytes` says the module was rewritten by `wasm.sandbox.cap_memory`
    with that limit, so a trap raised by its growth check is reported as memory_limit.
    `files` become the module's read-only `/in`; what it leaves under `/out` comes back
    in `RunResult.files`. Wasm3 cannot be interrupted, so the host enforces `timeout_s`
    by killing the executor; the shim only refuses to sleep (`poll_oneoff`) past it.
    `deterministic`: logical clocks and random bytes seeded from `program_name` (the task id), so
    every device and engine gives the same bytes (`wasm.wasi.LogicalClock`, `SeededRandom`).
    """
    started = time.perf_counter()
    shim = WasiShim(
        args=[program_name, *args],
        env=env,
        stdin=stdin,
        max_stdout=max_stdout,
        max_stderr=max_stderr,
        files=files,
        timeout_s=timeout_s,
        seed=task_seed(program_name) if deterministic else None,
    )

    def finish(exit_code: int | None, reason: FailureReason | None, error: str) -> RunResult:
        return RunResult(
            exit_code=exit_code,
            stdout=shim.stdout,
            stderr=shim.stderr,
            reason=reason,
            error=error,
            duration=time.perf_counter() - started,
            files=shim.files,
        )

    raw = _raw_imports()
    pool = _pool() if raw is not None else None
    instance = pool.take(wasm, stack_bytes) if pool is not None else None
    runtime = None if instance is None else instance.runtime
    loaded = instance is not None
    clean = False
    try:
        try:
            if instance is not None:
                module = instance.module
                raw.rebind(shim, instance.runtime_pointer, stack_bytes)  # type: ignore[union-attr]
            else:
                environment = _environment()
                runtime = environment.new_runtime(stack_bytes)
                # pywasm3 keeps a reference to the bytes it parses forever; the executor
                # passes its cached bytes object, so repeated runs add nothing.
                module = environment.parse_module(bytes(wasm) if type(wasm) is not bytes else wasm)
                runtime.load(module)
                loaded = True
                if raw is not None:
                    raw.link(shim, module, runtime, _wasi_imports(wasm), stack_bytes)
                else:
                    shim.link(module, runtime, _wasi_imports(wasm))
                if pool is not None:
                    instance = pool.keep(wasm, stack_bytes, runtime, module)
        except Exception as exc:  # wasm3 reports every load failure as RuntimeError
            return finish(None, FailureReason.INVALID_MODULE, f"invalid module: {exc}")
        try:
            # The start function runs here, after linking (it may call WASI, even proc_exit), and
            # ends like the rest of the run: a trap is a trap, a loop a timeout. Without the raw
            # linker, Wasm3 runs it inside find_function, so that goes here too; a missing _start
            # is then "function lookup failed", which is classified as an invalid module.
            # (A module with a start function is never kept between runs: see wasm.reset.)
            if instance is not None:
                entry = instance.entry
            else:
                if raw is not None:
                    raw.run_start(module)
                entry = runtime.find_function(abi.ENTRY_POINT)  # type: ignore[union-attr]  # set when loaded
            entry()
        except Exception as exc:
            raised = raw.take_raised() if raw is not None else None
            ended = _ended(raised if raised is not None else exc, finish, module, memory_limit_bytes, timeout_s)
            clean = ended.exit_code is not None  # exited (proc_exit): the instance can be reset and reused
            return ended
        clean = True
        return finish(0, None, "")
    finally:
        shim.unbind()
        if raw is not None:
            raw.unbind()
        if instance is not None and clean:
            pool.give_back(instance)  # type: ignore[union-attr]  # reset now, or freed when it cannot be
        elif runtime is not None:
            _reclaimer.free(runtime, loaded=loaded)


def _ended(
    exc: BaseException,
    finish: Callable[[int | None, FailureReason | None, str], RunResult],
    module: wasm3.Module,
    memory_limit_bytes: int | None,
    timeout_s: float | None,
) -> RunResult:
    """How a run that raised `exc` (from the module's code or from a host function) ended."""
    ending = shim_ending(exc, timeout_s)
    if ending is not None:
        return finish(*ending)
    if isinstance(exc, RuntimeError):
        if memory_limit_bytes is not None and _memory_flag_set(module):
            mib = memory_limit_bytes // limits.MiB
            return finish(None, FailureReason.MEMORY_LIMIT, f"needed more than this host's {mib} MiB memory limit")
        return finish(None, *_classify_runtime_error(str(exc)))
    if isinstance(exc, MemoryError):
        return finish(None, FailureReason.MEMORY_LIMIT, "the executor ran out of address space")
    return finish(None, FailureReason.INTERNAL, f"engine error: {exc!r}")  # a bug in the shim


_IMPORTS_CACHE_ENTRIES = 64
_imports: OrderedDict[bytes, tuple[str, ...] | None] = OrderedDict()


def _wasi_imports(wasm: bytes) -> tuple[str, ...] | None:
    """The WASI functions `wasm` imports (None: unknown, link them all), read once per module.

    Linking costs ~0.25 µs per function in pywasm3; all 46 would add ~11 µs to every run of
    a module that imports two. The executor passes the same bytes object for every run of a
    module, so after the first run this is one dict lookup.
    """
    names = _imports.get(wasm, ())
    if names != ():
        _imports.move_to_end(wasm)
        return names
    try:
        info = inspect_module(wasm, name="module")
        names = tuple(imp.name for imp in info.imports if imp.module == abi.WASI_MODULE)
    except Exception:  # an unparsable module fails to load anyway; linking all is harmless
        names = None
    _imports[wasm] = names
    while len(_imports) > _IMPORTS_CACHE_ENTRIES:
        _imports.popitem(last=False)
    return names


def _memory_flag_set(module: wasm3.Module) -> bool:
    try:
        return bool(module.get_global(MEMORY_FLAG_EXPORT))
    except RuntimeError:
        return False


def _classify_runtime_error(message: str) -> tuple[FailureReason, str]:
    """Tell a trap from a module wasm3 could not compile or link.

    wasm3 compiles functions lazily and links imports on first use, so "missing
    imported function" and validation errors surface only when `_start` runs.
    """
    if message.startswith("[trap]"):
        return FailureReason.TRAP, "trap: " + message.removeprefix("[trap]").strip()
    return FailureReason.INVALID_MODULE, f"invalid module: {message}"


_RawCall = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
"""Wasm3's M3RawCall: (runtime, import context, value stack, linear memory base) -> NULL or a trap message."""

_WINDOW = ctypes.c_char * ((1 << 32) + 64)
"""A ctypes type as big as wasm32's address space, placed over linear memory and sliced to its size.

One type for every size: ctypes keeps each array type it creates, so a type per memory size would
itself grow with every `memory.grow` a module makes."""

_SLOTS = ctypes.c_char * (8 * 16)
"""Wasm3's value-stack slots of one host call (8 bytes each; no WASI function has more than 9)."""

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_size_at = _U64.unpack_from
_MASK32 = 0xFFFFFFFF

_TRAP_MESSAGE = ctypes.create_string_buffer(b"[trap] host function raised")
"""What a host function that raised returns to Wasm3; the exception itself waits in `_RawImports`."""


class _Wasm3Memory:
    """The running module's linear memory, for the shim, without pywasm3's `get_memory`.

    pywasm3 0.5.0's `get_memory` leaks the Py_buffer it mallocs and a reference to the runtime
    on every call (~80 bytes: 77 MB per million WASI calls, measured). This builds a memoryview
    over the memory Wasm3 hands each host call and keeps it while the memory's address and size
    stay the same, which they do until the module grows its memory.

    The size comes from the header Wasm3 keeps just before linear memory (runtime, stack limit,
    length in bytes), read through the same view: asking `m3_GetMemorySize` through ctypes costs
    ~0.5 µs, a third of a whole WASI call. The header is trusted only while its first word is the
    running runtime; otherwise this falls back to `m3_GetMemorySize` for good.
    """

    __slots__ = ("base", "runtime", "_size_of", "_header", "_view", "_view_base", "_view_size", "_trust_header")

    _HEADER_BYTES = 24
    """sizeof(M3MemoryHeader) on 64-bit: IM3Runtime runtime, void *maxStack, size_t length."""

    def __init__(self, size_of: Callable[[int], int]) -> None:
        self._size_of = size_of
        self.runtime = 0
        """The running Wasm3 runtime's address (the IM3Runtime inside pywasm3's object)."""
        self.base: int | None = None
        """Linear memory's address as Wasm3 passed it to the current host call (None: no memory)."""
        self._header: memoryview | None = None
        """A view from the header on, over as many bytes as wasm32 can address."""
        self._view: memoryview | None = None
        self._view_base: int | None = None
        self._view_size = -1
        self._trust_header = True

    def get_memory(self, index: int) -> memoryview:
        view = self._view
        if self.base == self._view_base and view is not None and self._trust_header:
            # `_header` is set whenever `_view` is (no check here: this runs on every WASI call).
            if _size_at(self._header, 16)[0] == self._view_size:  # type: ignore[arg-type]  # nothing changed
                return view
        return self._refresh()

    def _refresh(self) -> memoryview:
        base = self.base
        if not base:
            raise RuntimeError("the module has no memory")
        if base != self._view_base or self._header is None:
            self._header = memoryview(_WINDOW.from_address(base - self._HEADER_BYTES)).cast("B")
            self._view_base, self._view_size = base, -1
            if self._trust_header and _size_at(self._header, 0)[0] != self.runtime:
                log.warning("Wasm3's memory header is not laid out as expected: asking m3_GetMemorySize")
                self._trust_header = False
        header = self._header
        size = _size_at(header, 16)[0] if self._trust_header else self._size_of(self.runtime)
        if size != self._view_size or self._view is None:
            self._view = header[self._HEADER_BYTES : self._HEADER_BYTES + size]
            self._view_size = size
        return self._view

    def forget(self) -> None:
        """Drop the views at the end of a run: the memory is freed with the runtime."""
        self.runtime, self.base, self._header, self._view = 0, None, None, None
        self._view_base, self._view_size = None, -1


class _Wasm3Stack:
    """A view over the running runtime's value stack, where host calls find their argument slots.

    Placing a ctypes object over each call's slots costs ~0.5 µs (ctypes builds a buffer
    description every time one is read); one view per run, placed around the first call's slots
    so that it spans the whole stack whichever end those were at, makes reading them ~0.1 µs.
    Only the slots of actual calls are ever read through it.
    """

    __slots__ = ("low", "span", "view", "_stack_bytes")

    def __init__(self) -> None:
        self.low = 0
        self.span = 0
        self.view: memoryview | None = None
        self._stack_bytes = 0

    def place(self, slots: int) -> int:
        """Cover the stack holding `slots` and return their offset in the view."""
        reach = self._stack_bytes + 256
        self.low = max(slots - reach, 0)
        self.span = 2 * reach
        self.view = memoryview(_WINDOW.from_address(self.low)).cast("B")
        return slots - self.low

    def forget(self, stack_bytes: int) -> None:
        """Start over for a run whose stack holds `stack_bytes` (0: none)."""
        self.low, self.span, self.view, self._stack_bytes = 0, 0, None, stack_bytes


class _RawImports:
    """Links the WASI shim into Wasm3 through Wasm3's own C API instead of pywasm3's `link_function`.

    pywasm3 0.5.0's host-call bridge (`CallImport`) never releases the argument tuple it builds
    or the value a function returns: ~90 bytes per WASI call, and with `get_memory`'s leak an
    executor grew by ~170 MB per million calls, so a module writing its output a byte at a time or
    reading the clock in a loop ended `executor_crashed` (and, once malloc failed, in SIGSEGV).
    These ctypes callbacks, handed to `m3_LinkRawFunctionEx`, read the arguments from Wasm3's value
    stack and write the result back themselves: nothing is allocated per call that is not freed.

    A host function's exception cannot cross Wasm3's C frames, so the callback keeps it, returns
    a trap message, and the engine collects it with :meth:`take_raised` once the call unwinds.
    Reaching the IM3Module and IM3Runtime inside pywasm3's objects relies on their layout, so this
    is used only when the objects have the expected sizes and a module's runtime, read through
    Wasm3's API, is the runtime read from pywasm3's object; otherwise the engine falls back to
    pywasm3's own (leaking) linking.
    """

    _MODULE_BASICSIZE = 48
    """sizeof(m3_module) in pywasm3 0.5.0 on 64-bit: PyObject_HEAD, env, IM3Module, two gas counters."""
    _RUNTIME_BASICSIZE = 32
    """sizeof(m3_runtime): PyObject_HEAD, env, IM3Runtime."""

    def __init__(self, library: ctypes.PyDLL) -> None:
        self._link_raw = library.m3_LinkRawFunctionEx
        self._link_raw.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _RawCall, ctypes.c_void_p,
        ]  # fmt: skip
        self._link_raw.restype = ctypes.c_void_p
        self._run_start = library.m3_RunStart
        self._run_start.argtypes = [ctypes.c_void_p]
        self._run_start.restype = ctypes.c_void_p
        self._module_runtime = library.m3_GetModuleRuntime
        self._module_runtime.argtypes = [ctypes.c_void_p]
        self._module_runtime.restype = ctypes.c_void_p
        size_of = library.m3_GetMemorySize
        size_of.argtypes = [ctypes.c_void_p]
        size_of.restype = ctypes.c_uint32
        self._lookup_failed = ctypes.c_void_p.in_dll(library, "m3Err_functionLookupFailed").value
        self.memory = _Wasm3Memory(size_of)
        self.stack = _Wasm3Stack()
        self.raised: BaseException | None = None
        """The exception a host function raised in the current run, until `take_raised`."""
        self._callbacks = {name: self._callback(name, signature) for name, signature in SIGNATURES.items()}
        self._wasi_module = abi.WASI_MODULE.encode()
        self._names = {name: name.encode() for name in SIGNATURES}

    def _callback(self, name: str, signature: str) -> CFuncPtr:
        """One C-callable host function: Wasm3 passes arguments and takes the result in 8-byte slots."""
        returns = signature[0] != "v"
        # The result's slot comes first, then one slot per argument (an i32 in its low half).
        arguments = "".join("q" if kind == "I" else "i4x" for kind in signature[2:-1])
        layout = struct.Struct("<" + "8x" * returns + arguments)
        method, bound = host_method(name)
        memory = self.memory
        stack = self.stack
        trap = ctypes.addressof(_TRAP_MESSAGE)
        pack_result = _U32.pack_into

        def call(_runtime: int | None, _context: int | None, slots: int, base: int | None) -> int | None:
            memory.base = base
            try:
                offset = slots - stack.low
                if not 0 <= offset < stack.span:
                    offset = stack.place(slots)
                view: memoryview = stack.view  # type: ignore[assignment]  # set by `place` while span > 0
                shim = bound.current
                if shim is None:  # a module kept running past its shim: refuse, do not crash
                    result = EBADF
                else:
                    try:
                        # None only from void functions, whose result is not packed (`returns`).
                        result = method(shim, *layout.unpack_from(view, offset))  # type: ignore[assignment]
                    except ERRNO_EXCEPTIONS as error:
                        result = errno_of(error)
                if returns:
                    pack_result(view, offset, result & _MASK32)
                return None
            except BaseException as exc:  # noqa: BLE001  (handed to the engine after the call)
                self.raised = exc
                return trap

        return _RawCall(call)

    _HANDLE_OFFSET = 24
    """Where both structs keep their Wasm3 handle: after PyObject_HEAD (16 bytes) and `env`."""

    @classmethod
    def pointer(cls, wrapper: object) -> int:
        """The Wasm3 handle (IM3Module, IM3Runtime) inside a pywasm3 Module or Runtime object."""
        return ctypes.c_void_p.from_address(id(wrapper) + cls._HANDLE_OFFSET).value or 0

    def link(
        self,
        shim: WasiShim,
        module: wasm3.Module,
        runtime: wasm3.Runtime,
        names: Iterable[str] | None,
        stack_bytes: int,
    ) -> None:
        """Link the WASI functions `names` (None: all) into loaded `module` and bind `shim` to `runtime`.

        `stack_bytes` is the size of `runtime`'s value stack, where host calls find their arguments.
        """
        module_pointer, runtime_pointer = self.pointer(module), self.pointer(runtime)
        if not module_pointer or self._module_runtime(module_pointer) != runtime_pointer:
            raise RuntimeError("pywasm3's module and runtime do not agree")  # cannot happen with 0.5.0's layout
        self.rebind(shim, runtime_pointer, stack_bytes)
        for name in SIGNATURES if names is None else names:
            callback = self._callbacks.get(name)
            if callback is None:
                continue
            error = self._link_raw(
                module_pointer, self._wasi_module, self._names[name], SIGNATURES[name].encode(), callback, None
            )
            if error and error != self._lookup_failed:
                raise RuntimeError(f"cannot link {abi.WASI_MODULE}.{name}: {ctypes.string_at(error).decode()}")

    def rebind(self, shim: WasiShim, runtime_pointer: int, stack_bytes: int) -> None:
        """Bind `shim` for another run of a module linked earlier into runtime `runtime_pointer`."""
        self.raised = None
        self.memory.forget()
        self.memory.runtime = runtime_pointer
        self.stack.forget(stack_bytes)
        shim.bind(self.memory)

    def run_start(self, module: wasm3.Module) -> None:
        """Run the module's start function, if it has one, as instantiation would.

        pywasm3 0.5.0 never calls Wasm3's `m3_RunStart`, so a start function would silently not
        run at all (wasmtime runs it while instantiating). Its trap comes back as RuntimeError.
        """
        error = self._run_start(self.pointer(module))
        if error:
            raise RuntimeError(ctypes.string_at(error).decode(errors="replace"))

    def take_raised(self) -> BaseException | None:
        """The exception a host function raised in this run (cleared)."""
        raised, self.raised = self.raised, None
        return raised

    def unbind(self) -> None:
        self.raised = None
        self.memory.forget()
        self.stack.forget(0)


def _raw_imports() -> _RawImports | None:
    """This thread's raw linker, or None where pywasm3's layout is not the expected one."""
    raw: _RawImports | None | bool = getattr(_local, "raw", False)
    if raw is False:
        raw = None
        if (
            ctypes.sizeof(ctypes.c_void_p) == 8
            and wasm3.Module.__basicsize__ == _RawImports._MODULE_BASICSIZE
            and wasm3.Runtime.__basicsize__ == _RawImports._RUNTIME_BASICSIZE
        ):
            try:
                raw = _RawImports(ctypes.PyDLL(wasm3.__file__))
            except (OSError, AttributeError, ValueError) as exc:
                log.warning("cannot link WASI through Wasm3's C API (%s): pywasm3's linking leaks per call", exc)
        _local.raw = raw
    return raw  # type: ignore[return-value]


class _RuntimeReclaimer:
    """Frees the native runtime that pywasm3 0.5.0 never frees.

    pywasm3's Runtime has no finalizer, so every run would leak its Wasm3 stack, its
    linear memory and its compiled code: 150-300 KB of RSS per hello run, measured. A
    long-lived executor cannot afford that, so after a run this calls Wasm3's own
    `m3_FreeRuntime` on the pointer inside the Python object. That reaches into
    pywasm3's private struct, so it is done only when the struct has the expected size
    and the pointer's memory matched what `get_memory` returns on the first run with a
    module (only then: `get_memory` itself leaks ~100 bytes); otherwise the runtime is left
    to leak (the executor also retires when it grows).
    """

    _RUNTIME_BASICSIZE = 32
    """sizeof(m3_runtime) in pywasm3 0.5.0 on 64-bit: PyObject_HEAD, env, IM3Runtime."""

    def __init__(self) -> None:
        self._free_runtime: CFuncPtr | None = None
        self._get_memory: CFuncPtr | None = None
        self._confirmed = False
        """True once a runtime's pointer was checked against its memory."""
        if wasm3.Runtime.__basicsize__ != self._RUNTIME_BASICSIZE or ctypes.sizeof(ctypes.c_void_p) != 8:
            return
        try:
            library = ctypes.CDLL(wasm3.__file__)
            free_runtime = library.m3_FreeRuntime
            get_memory = library.m3_GetMemory
        except (OSError, AttributeError):
            return
        free_runtime.argtypes = [ctypes.c_void_p]
        free_runtime.restype = None
        get_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint32]
        get_memory.restype = ctypes.c_void_p
        self._free_runtime = free_runtime
        self._get_memory = get_memory

    def free(self, runtime: wasm3.Runtime, *, loaded: bool) -> None:
        """Free `runtime`'s native side; the Python object must not be used again.

        `loaded` says whether a module was loaded into it: pywasm3's `get_memory`
        crashes on a runtime without one, so such a runtime is freed unchecked, and only
        once the layout has been confirmed on an earlier run.
        """
        if self._free_runtime is None or self._get_memory is None:
            return
        pointer = ctypes.c_void_p.from_address(id(runtime) + self._RUNTIME_BASICSIZE - 8)
        if loaded and not self._confirmed:  # the layout cannot change: get_memory leaks, so once is enough
            memory = runtime.get_memory(0)
            if memory is not None:
                expected = ctypes.addressof(ctypes.c_char.from_buffer(memory))
                size = ctypes.c_uint32()
                if self._get_memory(pointer, ctypes.byref(size), 0) != expected:
                    log.warning("pywasm3's runtime layout is unexpected: runtimes will leak")
                    self._free_runtime = None
                    return
                self._confirmed = True
                del memory
        if self._confirmed:
            self._free_runtime(pointer)


_reclaimer = _RuntimeReclaimer()


@dataclass(slots=True)
class _Instance:
    """A module loaded into its own Wasm3 runtime and linked, kept between runs with its compiled code."""

    key: tuple[bytes, int]
    """(the module's bytes, the runtime's stack size): what a run must match to reuse it."""
    runtime: wasm3.Runtime
    module: wasm3.Module
    runtime_pointer: int
    entry: wasm3.Function
    reset: wasm3.Function
    snapshot: bytes
    """Linear memory as instantiation left it (data segments in place), before anything ran."""

    @property
    def held_bytes(self) -> int:
        """What keeping it costs beyond its code: the snapshot and the memory restored from it."""
        return 2 * len(self.snapshot)


class _InstancePool:
    """Instances of recently run modules, each reset to its just-instantiated state between runs.

    Wasm3 compiles each function on its first call, so a fresh instance per run recompiled
    everything a run touches: ~0.9 ms for an ordinary stdio C program against ~0.05 ms to run it
    again in a kept instance. A run changes only linear memory (contents and size) and the
    mutable globals — Wasm3 runs no bulk-memory or reference-type instructions, so tables and
    segments cannot change (wasm.normalize refuses them for Wasm3) — so resetting means: memory
    back to the snapshot's size (Wasm3's own `ResizeMemory`, which shrinks as well as grows),
    the snapshot copied over it, and the module's appended reset function run (wasm.reset).

    Only a run that exited (returned from `_start` or called `proc_exit`) gives its instance
    back; after a trap, a refused host call or any failure the instance is freed and the next run
    starts fresh, as does every run of a module `wasm.sandbox.prepare_module` did not make
    resettable (or that was never prepared). Bounded: at most :attr:`MAX_IDLE` instances and
    :attr:`MAX_HELD_BYTES` of memory and snapshots, least recently used freed first; a module
    whose memory is over `wasm.reset.MAX_SNAPSHOT_BYTES` is never kept.
    """

    MAX_IDLE = 8
    MAX_HELD_BYTES = 32 * limits.MiB

    def __init__(self, library: ctypes.CDLL) -> None:
        self._get_memory = library.m3_GetMemory
        self._get_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint32]
        self._get_memory.restype = ctypes.c_void_p
        self._resize = library.ResizeMemory
        self._resize.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        self._resize.restype = ctypes.c_void_p
        self._idle: OrderedDict[tuple[bytes, int], _Instance] = OrderedDict()
        self._held = 0
        self.reused = 0
        """Runs that ran in a kept instance (for tests and benchmarks)."""

    def take(self, wasm: bytes, stack_bytes: int) -> _Instance | None:
        """A kept instance of the module, reset and no longer in the pool; None when there is none."""
        instance = self._idle.pop((wasm, stack_bytes), None)
        if instance is not None:
            self._held -= instance.held_bytes
            self.reused += 1
        return instance

    def keep(self, wasm: bytes, stack_bytes: int, runtime: wasm3.Runtime, module: wasm3.Module) -> _Instance | None:
        """Make a just-loaded and linked instance reusable (snapshot its memory); None when it cannot be.

        It cannot be without the reset function `wasm.sandbox.prepare_module` appends where it can.
        """
        try:
            reset = runtime.find_function(RESET_EXPORT)
        except RuntimeError:  # not resettable (or not prepared): a fresh instance every run
            return None
        pointer = _RawImports.pointer(runtime)
        size = ctypes.c_uint32()
        base = self._get_memory(pointer, ctypes.byref(size), 0)
        if size.value > MAX_SNAPSHOT_BYTES or (size.value and not base):
            return None
        snapshot = ctypes.string_at(base, size.value) if size.value else b""
        entry = runtime.find_function(abi.ENTRY_POINT)
        return _Instance((wasm, stack_bytes), runtime, module, pointer, entry, reset, snapshot)

    def give_back(self, instance: _Instance) -> None:
        """Reset `instance` after a run that exited and keep it; free it when it cannot be reset."""
        try:
            restored = self._restore(instance)
        except Exception:  # the reset function trapped (it cannot), or anything unforeseen: start fresh
            restored = False
        if not restored:
            _reclaimer.free(instance.runtime, loaded=True)
            return
        old = self._idle.pop(instance.key, None)
        if old is not None:  # a run in another instance of the same module finished first
            self._held -= old.held_bytes
            _reclaimer.free(old.runtime, loaded=True)
        self._idle[instance.key] = instance
        self._held += instance.held_bytes
        while self._idle and (len(self._idle) > self.MAX_IDLE or self._held > self.MAX_HELD_BYTES):
            _, evicted = self._idle.popitem(last=False)
            self._held -= evicted.held_bytes
            _reclaimer.free(evicted.runtime, loaded=True)

    def _restore(self, instance: _Instance) -> bool:
        snapshot = instance.snapshot
        size = ctypes.c_uint32()
        base = self._get_memory(instance.runtime_pointer, ctypes.byref(size), 0)
        if size.value != len(snapshot):  # the run grew memory: give it back its first size
            if self._resize(instance.runtime_pointer, len(snapshot) // PAGE_BYTES):
                return False
            base = self._get_memory(instance.runtime_pointer, ctypes.byref(size), 0)
            if size.value != len(snapshot):
                return False
        if snapshot:
            ctypes.memmove(base, snapshot, len(snapshot))
        instance.reset()
        return True


def kept_runs() -> int:
    """How many runs in this thread ran in a kept instance (tests and benchmarks read it)."""
    pool: _InstancePool | None | bool = getattr(_local, "pool", None)
    return pool.reused if isinstance(pool, _InstancePool) else 0


def _pool() -> _InstancePool | None:
    """This thread's pool of kept instances; None where Wasm3's library lacks what resetting needs."""
    pool: _InstancePool | None | bool = getattr(_local, "pool", False)
    if pool is False and not keeping(os.environ):
        pool = _local.pool = None
    elif pool is False:
        try:
            pool = _InstancePool(ctypes.CDLL(wasm3.__file__))
        except (OSError, AttributeError) as exc:
            pool = None
            log.warning("cannot keep Wasm3 instances between runs (%s): every run compiles afresh", exc)
        _local.pool = pool
    return pool  # type: ignore[return-value]


_local = threading.local()


def _environment() -> wasm3.Environment:
    """This thread's Wasm3 environment, shared by all its runs.

    Wasm3 hands a freed runtime's code pages back to its environment for reuse, and
    pywasm3 never frees an environment: a fresh one per run would leak those pages.
    """
    environment: wasm3.Environment | None = getattr(_local, "environment", None)
    if environment is None:
        environment = _local.environment = wasm3.Environment()
    return environment


_SATISFIES: Engine = run_module
"""A type checker's proof that this `run_module` is an :class:`Engine`."""
