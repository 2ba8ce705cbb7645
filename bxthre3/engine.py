"""Run one WASI command module in Wasm3 and report how it ended.

This is the only module that imports wasm3, so the controller, the UI and the executor's
parent side never load it. `run_module` never raises for anything a module does: a
trap, an exit code, a runaway output or a broken binary all come back as a
:class:`RunResult` with a :class:`~bxthre3.failures.FailureReason`.

It cannot stop a module that loops forever: pywasm3 holds the GIL and cannot be
interrupted, which is why it runs inside the killable executor child.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import wasm3

from bxthre3 import abi, limits
from bxthre3.failures import FailureReason
from bxthre3.wasi import DeadlineExceeded, OutputLimitExceeded, ProcExit, ProcRaise, WasiShim
from bxthre3.wasm_inspect import inspect_module
from bxthre3.wasm_sandbox import MEMORY_FLAG_EXPORT

log = logging.getLogger(__name__)

DEFAULT_STACK_BYTES = 256 * 1024
"""Wasm3's own value stack per run, in bytes.

It holds wasm locals and call frames; C arrays and structs live on wasi-libc's shadow
stack in linear memory instead. 256 KiB allows about 6,500 nested calls of a small
function (4× Wasm3's default). Wasm3 also recurses on the native C stack for each wasm
call: measured on x86-64 with an 8 MiB native stack, 1 MiB here still ends unbounded
recursion in a clean "stack overflow" trap but 2 MiB crashes the process, so 256 KiB
keeps a wide margin (and suits threads with ~1 MiB stacks).
"""


@dataclass(frozen=True, slots=True)
class RunResult:
    """How one run of a module ended.

    `reason` is None on success (exit code 0). On failure `error` says what happened in
    one line; `stdout` and `stderr` hold whatever the module wrote before it ended.
    """

    exit_code: int | None
    """The module's exit code; None when it did not exit (trap, limit, invalid)."""
    stdout: bytes
    stderr: bytes
    reason: FailureReason | None
    error: str
    duration: float
    """Wall-clock seconds from loading the module to its end."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Every regular file the module left under `/out` (relative '/'-path -> contents), whatever the outcome."""


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
) -> RunResult:
    """Load `wasm`, call its `_start` with `args` and `stdin`, and capture its output.

    The module sees `program_name` as argv[0], `args` as argv[1..] and exactly `env` as
    its environment: the caller adds BXTHRE3_INPUT_SIZES and BXTHRE3_TASK_ID.
    `memory_limit_bytes` says the module was rewritten by `wasm_sandbox.cap_memory`
    with that limit, so a trap raised by its growth check is reported as memory_limit.
    `files` become the module's read-only `/in`; what it leaves under `/out` comes back
    in `RunResult.files`. Wasm3 cannot be interrupted, so the host enforces `timeout_s`
    by killing the executor; the shim only refuses to sleep (`poll_oneoff`) past it.
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

    runtime = None
    loaded = False
    try:
        try:
            environment = _environment()
            runtime = environment.new_runtime(stack_bytes)
            # pywasm3 keeps a reference to the bytes it parses forever; the executor
            # passes its cached bytes object, so repeated runs add nothing.
            module = environment.parse_module(bytes(wasm) if type(wasm) is not bytes else wasm)
            runtime.load(module)
            loaded = True
            shim.link(module, runtime, _wasi_imports(wasm))
            entry = runtime.find_function(abi.ENTRY_POINT)
        except Exception as exc:  # wasm3 reports every load failure as RuntimeError
            return finish(None, FailureReason.INVALID_MODULE, f"invalid module: {exc}")
        try:
            entry()
        except ProcExit as exit_:
            if exit_.code == 0:
                return finish(0, None, "")
            return finish(exit_.code, FailureReason.EXIT_CODE, f"exited with code {exit_.code}")
        except OutputLimitExceeded as exc:
            return finish(None, FailureReason.OUTPUT_LIMIT, str(exc))
        except ProcRaise as exc:
            return finish(None, FailureReason.TRAP, f"trap: raised signal {exc.signal}")
        except DeadlineExceeded:
            return finish(None, FailureReason.TIMEOUT, f"stopped after the {timeout_s:g}s timeout")
        except RuntimeError as exc:
            if memory_limit_bytes is not None and _memory_flag_set(module):
                mib = memory_limit_bytes // limits.MiB
                return finish(None, FailureReason.MEMORY_LIMIT, f"needed more than this host's {mib} MiB memory limit")
            return finish(None, *_classify_runtime_error(str(exc)))
        except MemoryError:
            return finish(None, FailureReason.MEMORY_LIMIT, "the executor ran out of address space")
        except Exception as exc:  # a bug in the shim, not the module's doing
            return finish(None, FailureReason.INTERNAL, f"engine error: {exc!r}")
        return finish(0, None, "")
    finally:
        shim.unbind()
        if runtime is not None:
            _reclaimer.free(runtime, loaded=loaded)


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


class _RuntimeReclaimer:
    """Frees the native runtime that pywasm3 0.5.0 never frees.

    pywasm3's Runtime has no finalizer, so every run would leak its Wasm3 stack, its
    linear memory and its compiled code: 150-300 KB of RSS per hello run, measured. A
    long-lived executor cannot afford that, so after a run this calls Wasm3's own
    `m3_FreeRuntime` on the pointer inside the Python object. That reaches into
    pywasm3's private struct, so it is done only when the struct has the expected size
    and, on every run, when the pointer's memory matches what `get_memory` returns;
    otherwise the runtime is left to leak (the executor also retires when it grows).
    """

    _RUNTIME_BASICSIZE = 32
    """sizeof(m3_runtime) in pywasm3 0.5.0 on 64-bit: PyObject_HEAD, env, IM3Runtime."""

    def __init__(self) -> None:
        self._free_runtime: ctypes._CFuncPtr | None = None
        self._get_memory: ctypes._CFuncPtr | None = None
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
        if loaded:
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
