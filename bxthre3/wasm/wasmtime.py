"""Run one WASI command module in wasmtime: the optional fast engine.

Same contract as Wasm3 (:class:`bxthre3.wasm.contract.Engine`): the same WASI and in-memory
`/in`,`/out` (the very same :class:`~bxthre3.wasm.wasi.WasiShim`), the same module bytes with the same
memory cap rewritten into them, the same :class:`~bxthre3.wasm.contract.RunResult`. What
differs is speed: wasmtime compiles a module to machine code once (kept per executor
in a small cache) and runs compute kernels near native speed, where Wasm3 interprets.
Like Wasm3 it keeps the last module's instance and resets it between runs (`_KeptInstance`).

Linear memory sits in wasmtime's default guard-page reservation (4 GiB of address space per
memory, no bounds check in compiled code) when the executor's address-space cap leaves room for it
(the executor then bounds writable memory instead, see :mod:`bxthre3.executor.child`); otherwise in
a reservation as big as the memory limit, with explicit bounds checks (up to 2x slower). Either way the
module's memory cap is the rewritten module's own check and, behind it, the store's limiter.

It also stops a runaway module itself when the timeout is short (under
:data:`INTERRUPT_BELOW_S`): epoch interruption (a watchdog thread bumps the engine's epoch when a
run's deadline passes) traps a run past its timeout, so the executor survives and the host does not
pay a process restart. Epoch checks cost every loop iteration (8-90 % more time on a compute kernel), and a
restart (~0.2 s) is noise beside a long timeout, so runs with longer timeouts (the default is 300 s)
run uninterruptible code and the host's kill ends them; it stays the backstop for all.

wasmtime publishes Android wheels for 64-bit phones only (arm64, x86_64, since 33.0); other Termux
hosts, and any where it does not load, keep Wasm3 (see :mod:`bxthre3.wasm.choice`).

Only the executor child imports this module (through :mod:`bxthre3.wasm.choice`); it never imports
the Wasm3 engine (tests/unit/test_layering.py).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime

from bxthre3.common import limits
from bxthre3.common.failures import FailureReason
from bxthre3.wasm import abi
from bxthre3.wasm.contract import Engine, RunResult
from bxthre3.wasm.reset import MAX_SNAPSHOT_BYTES, RESET_EXPORT, keeping
from bxthre3.wasm.sandbox import MEMORY_FLAG_EXPORT
from bxthre3.wasm.wasi import SIGNATURES, WasiShim, forwarders, shim_ending, task_seed

COMPILED_CACHE_ENTRIES = 32
"""Most compiled modules kept per executor (machine code is a few times the .wasm size)."""

MAX_TIMEOUT_S = 7 * 24 * 3600.0
"""Timeouts from here on (and none at all) are left to the host's own deadline."""

MAX_WASM_STACK_BYTES = 512 * 1024
"""wasmtime's own stack budget per run; deep recursion ends in a clean trap beyond it."""

INTERRUPT_BELOW_S = 30.0
"""Timeouts below this are enforced inside the engine (epoch interruption), longer ones by the host's kill.

The trade: epoch checks slow every loop of every run, a kill costs one executor restart (~0.2 s and
recompiling the modules it runs) but only when a timeout fires. Below 30 s a restart would be a
noticeable share of the timeout; above it, the checks cost more than the restarts they save."""

MEMORY_RESERVATION_BYTES = 4 << 30
"""Address space per linear memory with guard pages: all that a wasm32 address can reach.

wasmtime's default on 64-bit hosts, spelled out so that the room the executor leaves for it is this
number and not a guess at a future default. Compiled code then checks no bounds: an access past the
memory's current size lands in an inaccessible page and traps."""

MEMORY_GUARD_BYTES = 32 << 20
"""Inaccessible pages after (and before) each memory (wasmtime's default): no check for offsets up to this."""

GUARD_PAGE_FOOTPRINT_BYTES = MEMORY_RESERVATION_BYTES + 2 * MEMORY_GUARD_BYTES
"""Virtual size one instance's memory takes (/proc/self/status shows 4 GiB + 64 MiB per instance)."""

GUARD_PAGE_ROOM_BYTES = 2 * GUARD_PAGE_FOOTPRINT_BYTES
"""Room under the address-space cap that guard pages need: the run's memory and the previous run's,
which may not be unmapped yet when the next instance reserves its own."""

SMALL_GUARD_BYTES = 64 * 1024
"""Guard after a memory reserved at the memory limit (explicit bounds checks do the real work)."""

_TYPES = {"i": wasmtime.ValType.i32(), "I": wasmtime.ValType.i64()}

_TRAP_TEXT = b"python exception"

_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()
"""A NULL finalizer: the raw callbacks carry no data for wasmtime to free, and a Python one could
already be gone when a linker is freed at interpreter exit."""


def _func_type(signature: str) -> wasmtime.FuncType:
    """wasmtime's type for a pywasm3 signature string such as ``i(iIii)``."""
    result, params = signature[0], signature[2:-1]
    return wasmtime.FuncType([_TYPES[p] for p in params], [] if result == "v" else [_TYPES[result]])


_WINDOW = ctypes.c_ubyte * (1 << 32)
"""A ctypes type as big as wasm32's address space, placed over linear memory and sliced to its size
(one type: ctypes keeps every array type it makes, so a type per memory size would pile up)."""


class _Memory:
    """Presents the running instance's linear memory the way the shim asks Wasm3 for it.

    The view is kept while the memory's size stays the same: its address changes only when it
    grows, and building a view costs more than the rest of a simple WASI call.
    """

    __slots__ = ("memory", "store", "_view", "_size")

    def __init__(self) -> None:
        self.memory: wasmtime.Memory | None = None
        self.store: wasmtime.Store | None = None
        self._view: memoryview | None = None
        self._size = -1

    def get_memory(self, index: int) -> memoryview:
        if self.memory is None or self.store is None:
            raise RuntimeError("no memory")
        size = self.memory.data_len(self.store)
        if size != self._size or self._view is None:
            address = ctypes.addressof(self.memory.data_ptr(self.store).contents)
            self._view = memoryview(_WINDOW.from_address(address)).cast("B")[:size]
            self._size = size
        return self._view

    def bind(self, memory: wasmtime.Memory | None, store: wasmtime.Store | None) -> None:
        """Serve `memory` of `store` from now on (None: no memory, or the run ended)."""
        self.memory, self.store, self._view, self._size = memory, store, None, -1


class WasmtimeEngine:
    """One wasmtime engine per executor and kind of run: config, linker, watchdog and compiled modules.

    `reservation_bytes`: None for guard pages (:data:`MEMORY_RESERVATION_BYTES`), else linear
    memory sits in a reservation that big (0: as small as the memory, moved when it grows), with
    explicit bounds checks. `interruptible`: compile epoch checks in and run a watchdog.
    """

    def __init__(self, reservation_bytes: int | None = 0, *, interruptible: bool = True) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = interruptible
        config.parallel_compilation = False  # one core per executor, like every other task
        config.max_wasm_stack = MAX_WASM_STACK_BYTES
        if reservation_bytes is None:
            config.memory_reservation = MEMORY_RESERVATION_BYTES
            config.memory_guard_size = MEMORY_GUARD_BYTES
        else:
            # A reservation as big as the host's memory limit, so that an executor capped at what it
            # maps plus its RAM budget still fits, and growing up to the limit never copies memory.
            config.memory_reservation = reservation_bytes
            config.memory_guard_size = SMALL_GUARD_BYTES
            config.memory_reservation_for_growth = 0
        self.interruptible = interruptible
        self.engine = wasmtime.Engine(config)
        self.linker = wasmtime.Linker(self.engine)
        self._memory = _Memory()
        self._shim: WasiShim | None = None
        self._compiled: OrderedDict[bytes, wasmtime.Module] = OrderedDict()
        self._link_shim()
        self.watchdog = _Watchdog(self.engine) if interruptible else None

    def _link_shim(self) -> None:
        """Define every supported WASI import once; each forwards to the run's shim."""
        functions = forwarders()
        self._callbacks: list[Any] = []
        """ctypes callbacks handed to wasmtime: they must live as long as the linker."""
        for name, signature in SIGNATURES.items():
            function = functions[name]
            if not self._define_unchecked(name, signature, function):
                self.linker.define_func(abi.WASI_MODULE, name, _func_type(signature), function)

    def _define_unchecked(self, name: str, signature: str, function: Any) -> bool:
        """Define `name` through wasmtime's raw-values callback; False when this wasmtime lacks it.

        wasmtime-py's own callbacks box every argument and result in Val objects and compare
        value types on each call: ~40 µs per WASI call, most of a trivial task's run. This
        reads and writes the raw values (all i32, one i64) directly: a few µs. A Python
        exception inside is handed to wasmtime-py the way its own callbacks do, so
        `ProcExit` and `OutputLimitExceeded` come out of the call as before.
        """
        try:
            from wasmtime import _ffi as ffi
            from wasmtime import _func
        except ImportError:
            return False
        if not all(
            hasattr(ffi, attribute)
            for attribute in ("wasmtime_linker_define_func_unchecked", "wasmtime_func_unchecked_callback_t",
                              "wasmtime_trap_new")
        ) or not hasattr(_func, "LAST_EXCEPTION"):  # fmt: skip
            return False
        wide = [kind == "I" for kind in signature[2:-1]]
        returns = signature[0] != "v"
        count = len(wide)

        def callback(_env: Any, _caller: Any, values: Any, _size: int) -> int:
            try:
                result = function(*[values[i].i64 if wide[i] else values[i].i32 for i in range(count)])
                if returns:
                    values[0].i32 = result
                return 0
            except BaseException as exc:  # noqa: BLE001  (re-raised by wasmtime-py after the call)
                _func.LAST_EXCEPTION = exc  # type: ignore[assignment]  # wasmtime-py stores BaseException too
                return ctypes.cast(ffi.wasmtime_trap_new(_TRAP_TEXT, len(_TRAP_TEXT)), ctypes.c_void_p).value or 0

        raw = ffi.wasmtime_func_unchecked_callback_t(callback)
        func_type = _func_type(signature)
        self._callbacks += [raw, func_type]
        module, field = abi.WASI_MODULE.encode(), name.encode()
        error = ffi.wasmtime_linker_define_func_unchecked(
            self.linker.ptr(),
            ctypes.create_string_buffer(module), len(module),
            ctypes.create_string_buffer(field), len(field),
            func_type.ptr(), raw, None, _NO_FINALIZER,
        )  # fmt: skip
        return not error

    def compiled(self, wasm: bytes) -> wasmtime.Module:
        """The module compiled to machine code, from the cache when it was seen before."""
        module = self._compiled.get(wasm)
        if module is not None:
            self._compiled.move_to_end(wasm)
            return module
        module = wasmtime.Module(self.engine, wasm)
        self._compiled[wasm] = module
        while len(self._compiled) > COMPILED_CACHE_ENTRIES:
            self._compiled.popitem(last=False)
        return module

    def run(
        self,
        wasm: bytes,
        *,
        args: Sequence[str],
        stdin: bytes,
        env: Mapping[str, str],
        program_name: str,
        max_stdout: int,
        max_stderr: int,
        memory_limit_bytes: int | None,
        timeout_s: float | None,
        files: Mapping[str, bytes] | None = None,
        deterministic: bool = False,
    ) -> RunResult:
        started = time.perf_counter()
        timed = timeout_s is not None and 0 < timeout_s < MAX_TIMEOUT_S  # also refuses NaN
        watchdog = self.watchdog if timed else None
        shim = WasiShim(
            args=[program_name, *args],
            env=env,
            stdin=stdin,
            max_stdout=max_stdout,
            max_stderr=max_stderr,
            files=files,
            timeout_s=timeout_s if timed else None,
            seed=task_seed(program_name) if deterministic else None,
        )

        def finish(exit_code: int | None, reason: FailureReason | None, error: str) -> RunResult:
            duration = time.perf_counter() - started
            return RunResult(exit_code, shim.stdout, shim.stderr, reason, error, duration, shim.files)

        kept = _take_kept(self, wasm, memory_limit_bytes)
        store = kept.store if kept is not None else self._new_store(memory_limit_bytes)
        if self.interruptible:
            store.set_epoch_deadline(1)  # the watchdog's next bump, at the deadline, ends the run
        if watchdog is not None:
            watchdog.arm(timeout_s)  # type: ignore[arg-type]
        candidate = kept
        clean = False
        try:
            if kept is not None:
                entry: wasmtime.Func = kept.entry
                memory: wasmtime.Memory | None = kept.memory
                instance = kept.instance
            else:
                try:
                    module = self.compiled(wasm)
                except Exception as exc:  # not wasm, or a feature this wasmtime refuses
                    try:
                        if isinstance(exc, wasmtime.WasmtimeError):
                            return finish(None, FailureReason.INVALID_MODULE, f"invalid module: {_first_line(exc)}")
                        return finish(None, FailureReason.INTERNAL, f"engine error: {exc!r}")
                    finally:
                        _drop_tracebacks(exc)
                # Bound before instantiating: the start function runs then and may call WASI (proc_exit).
                # Its memory is not reachable until the instance exists, so pointers are EFAULT there.
                self._memory.bind(None, store)
                shim.bind(self._memory)
                try:
                    instance = self.linker.instantiate(store, module)
                except Exception as exc:
                    try:
                        return self._not_instantiated(exc, finish, store, memory_limit_bytes, timeout_s)
                    finally:
                        _drop_tracebacks(exc)
                exports = instance.exports(store)
                exported_memory = exports.get("memory")
                found = exports.get(abi.ENTRY_POINT)
                if not isinstance(found, wasmtime.Func):
                    return finish(None, FailureReason.INVALID_MODULE, f"invalid module: no {abi.ENTRY_POINT} function")
                entry = found
                memory = exported_memory if isinstance(exported_memory, wasmtime.Memory) else None
                candidate = _keepable(self, wasm, memory_limit_bytes, store, instance, entry, memory, exports)
            self._memory.bind(memory, store)
            shim.bind(self._memory)
            try:
                entry(store)
            except Exception as exc:
                try:
                    ended = self._ended(exc, finish, instance, store, memory_limit_bytes, timeout_s)
                    clean = ended.exit_code is not None  # exited (proc_exit): the instance can be reset
                    return ended
                finally:
                    _drop_tracebacks(exc)
            clean = True
            return finish(0, None, "")
        finally:
            if watchdog is not None:
                watchdog.disarm()
            shim.unbind()
            self._memory.bind(None, None)
            if clean and candidate is not None:
                _give_back(candidate)

    def _new_store(self, memory_limit_bytes: int | None) -> wasmtime.Store:
        store = wasmtime.Store(self.engine)
        if memory_limit_bytes:
            store.set_limits(memory_size=memory_limit_bytes + limits.MiB)  # the rewritten check comes first
        return store

    @classmethod
    def _not_instantiated(
        cls,
        exc: Exception,
        finish: Any,
        store: wasmtime.Store,
        memory_limit_bytes: int | None,
        timeout_s: float | None,
    ) -> RunResult:
        """Why instantiating failed: the module does not fit (invalid) or its start function ended the run.

        A trap without wasm frames happened while placing data or element segments (out of
        bounds), which Wasm3 refuses when loading: an invalid module on both. A link error is one
        too. Anything the start function did ends the run the way `_start` would have.
        """
        if isinstance(exc, wasmtime.Trap) and not exc.frames:
            return finish(None, FailureReason.INVALID_MODULE, f"invalid module: {_trap_message(exc)}")
        if isinstance(exc, wasmtime.WasmtimeError):
            return finish(None, FailureReason.INVALID_MODULE, f"invalid module: {_first_line(exc)}")
        return cls._ended(exc, finish, None, store, memory_limit_bytes, timeout_s)

    @staticmethod
    def _ended(
        exc: Exception,
        finish: Any,
        instance: wasmtime.Instance | None,
        store: wasmtime.Store,
        memory_limit_bytes: int | None,
        timeout_s: float | None,
    ) -> RunResult:
        """How a run that raised ended, in the same reasons and words as Wasm3's."""
        ending = shim_ending(exc, timeout_s)
        if ending is not None:
            return finish(*ending)
        if isinstance(exc, wasmtime.Trap):
            if memory_limit_bytes and instance is not None and _memory_flag_set(instance, store):
                error = f"needed more than this host's {memory_limit_bytes // limits.MiB} MiB memory limit"
                return finish(None, FailureReason.MEMORY_LIMIT, error)
            if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                return finish(None, FailureReason.TIMEOUT, f"stopped after the {timeout_s:g}s timeout")
            return finish(None, FailureReason.TRAP, "trap: " + _trap_message(exc))
        if isinstance(exc, wasmtime.WasmtimeError):
            return finish(None, FailureReason.TRAP, "trap: " + _first_line(exc))
        if isinstance(exc, MemoryError):
            return finish(None, FailureReason.MEMORY_LIMIT, "the executor ran out of address space")
        return finish(None, FailureReason.INTERNAL, f"engine error: {exc!r}")  # a bug in the shim


def _drop_tracebacks(exc: BaseException | None) -> None:
    """Cut an ended run's exception loose from the frames it was raised through.

    wasmtime re-raises a host function's exception from a frame that holds it, a
    reference cycle through frames that also hold the run's Store: each Store (and its
    reservation of linear memory) would then live until the cycle collector runs, and
    a few runs would exhaust the executor's address-space cap.
    """
    seen = 0
    while exc is not None and seen < 8:
        exc.__traceback__ = None
        exc = exc.__context__ or exc.__cause__
        seen += 1


class _Watchdog:
    """Bumps the engine's epoch once when the running module's deadline passes, and otherwise sleeps.

    A thread ticking every few milliseconds would cost every task: its wake-ups contend for
    the GIL with the executor's loop (measured: a 10 ms ticker took trivial tasks from
    ~2,300 to ~1,700 a second on two hosts). This one wakes only at deadlines: arming a
    deadline later than the one it already sleeps towards (a stream of tasks with the same
    timeout) does not even wake it. Bumps happen under the lock, so once `disarm` returns
    no stale bump can land in the next run.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._lock = threading.Condition()
        self._deadline: float | None = None
        self._wake_at = float("inf")
        threading.Thread(target=self._run, name="wasmtime-watchdog", daemon=True).start()

    def arm(self, seconds: float) -> None:
        with self._lock:
            self._deadline = time.monotonic() + seconds
            if self._deadline < self._wake_at:
                self._lock.notify()

    def disarm(self) -> None:
        with self._lock:
            self._deadline = None

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                if self._deadline is not None and now >= self._deadline:
                    self._engine.increment_epoch()
                    self._deadline = None
                self._wake_at = self._deadline if self._deadline is not None else float("inf")
                self._lock.wait(None if self._deadline is None else self._wake_at - now)


def _memory_flag_set(instance: wasmtime.Instance, store: wasmtime.Store) -> bool:
    flag = instance.exports(store).get(MEMORY_FLAG_EXPORT)
    return isinstance(flag, wasmtime.Global) and bool(flag.value(store))


_TRAP_WORDS = {
    wasmtime.TrapCode.STACK_OVERFLOW: "stack overflow",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "out of bounds memory access",
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: "integer divide by zero",
    wasmtime.TrapCode.INTEGER_OVERFLOW: "integer overflow",
    wasmtime.TrapCode.UNREACHABLE: "unreachable executed",
    wasmtime.TrapCode.INDIRECT_CALL_TO_NULL: "indirect call to null",
    wasmtime.TrapCode.BAD_SIGNATURE: "indirect call type mismatch",
    wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER: "invalid conversion to integer",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "undefined element",
}
"""Trap codes in Wasm3's words, so a failure reads the same whichever engine ran it."""


def _trap_message(trap: wasmtime.Trap) -> str:
    words = _TRAP_WORDS.get(trap.trap_code) if trap.trap_code is not None else None
    return words or _first_line(trap)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or ["unknown error"])[0][:300]


_local = threading.local()


@dataclass(slots=True)
class _KeptInstance:
    """The instance of the module this thread ran last, in its own store, reset for the next run.

    wasmtime compiles a module once per executor, but each run still paid a store, an instance and
    its data segments (~0.25 ms for an ordinary stdio C program, most of a trivial task). Keeping the
    instance works as for Wasm3 (see `wasm3._InstancePool`), with two differences: wasmtime cannot
    shrink a memory, so a run that grew it gives up its instance; and only one instance is kept per
    thread, freed before any other module is instantiated, because with guard pages each instance
    holds 4 GiB of address space and the executor leaves room for two.
    """

    engine: WasmtimeEngine
    wasm: bytes
    memory_limit_bytes: int | None
    store: wasmtime.Store
    instance: wasmtime.Instance
    entry: wasmtime.Func
    reset: wasmtime.Func
    memory: wasmtime.Memory | None
    snapshot: bytes
    """Linear memory as instantiation left it (data segments in place)."""


def _take_kept(engine: WasmtimeEngine, wasm: bytes, memory_limit_bytes: int | None) -> _KeptInstance | None:
    """This thread's kept instance if it is one of `wasm` for `engine`; any other is freed now."""
    kept: _KeptInstance | None = getattr(_local, "kept", None)
    _local.kept = None
    if kept is None or kept.engine is not engine or kept.memory_limit_bytes != memory_limit_bytes:
        return None
    if kept.wasm is not wasm and kept.wasm != wasm:
        return None
    _local.kept_runs = kept_runs() + 1
    return kept


def kept_runs() -> int:
    """How many runs in this thread ran in a kept instance (tests and benchmarks read it)."""
    return int(getattr(_local, "kept_runs", 0))


def _keepable(
    engine: WasmtimeEngine,
    wasm: bytes,
    memory_limit_bytes: int | None,
    store: wasmtime.Store,
    instance: wasmtime.Instance,
    entry: wasmtime.Func,
    memory: wasmtime.Memory | None,
    exports: Any,
) -> _KeptInstance | None:
    """A just-made instance as one to keep (its memory copied), or None when it cannot be kept."""
    reset = exports.get(RESET_EXPORT) if keeping(os.environ) else None
    if not isinstance(reset, wasmtime.Func):
        return None
    snapshot = b""
    if memory is not None:
        size = memory.data_len(store)
        if size > MAX_SNAPSHOT_BYTES:
            return None
        snapshot = ctypes.string_at(ctypes.addressof(memory.data_ptr(store).contents), size) if size else b""
    return _KeptInstance(engine, wasm, memory_limit_bytes, store, instance, entry, reset, memory, snapshot)


def _give_back(kept: _KeptInstance) -> None:
    """Reset `kept` after a run that exited and keep it; drop it (freeing its store) when it cannot be."""
    try:
        if kept.memory is not None:
            size = kept.memory.data_len(kept.store)
            if size != len(kept.snapshot):  # grown: wasmtime cannot give the pages back
                return
            if size:
                ctypes.memmove(ctypes.addressof(kept.memory.data_ptr(kept.store).contents), kept.snapshot, size)
        kept.reset(kept.store)
    except Exception as exc:  # the reset function cannot trap; anything unforeseen means a fresh start
        _drop_tracebacks(exc)
        return
    _local.kept = kept


def run_module(
    wasm: bytes,
    *,
    args: Sequence[str],
    stdin: bytes,
    env: Mapping[str, str],
    program_name: str = "task",
    max_stdout: int = limits.MAX_OUTPUT_BYTES,
    max_stderr: int = limits.MAX_STDERR_BYTES,
    memory_limit_bytes: int | None = None,
    timeout_s: float | None = None,
    files: Mapping[str, bytes] | None = None,
    deterministic: bool = False,
) -> RunResult:
    """Load `wasm`, call its `_start` with `args` and `stdin`, and capture its output.

    See :func:`bxthre3.wasm.wasm3.run_module`; a `timeout_s` under :data:`INTERRUPT_BELOW_S` also
    stops the run from inside (longer ones are the host's to enforce).
    """
    interruptible = timeout_s is not None and 0 < timeout_s < INTERRUPT_BELOW_S  # also refuses NaN
    engine = _engine_for(memory_limit_bytes, interruptible=interruptible)
    return engine.run(
        wasm,
        args=args,
        stdin=stdin,
        env=env,
        program_name=program_name,
        max_stdout=max_stdout,
        max_stderr=max_stderr,
        memory_limit_bytes=memory_limit_bytes,
        timeout_s=timeout_s,
        files=files,
        deterministic=deterministic,
    )


def _engine_for(memory_limit_bytes: int | None, *, interruptible: bool) -> WasmtimeEngine:
    """This thread's engine for runs of this memory limit and kind, made on first use.

    A host gives every task the same memory limit, so this is at most two engines per executor:
    one compiling epoch checks in (short timeouts) and one without. Another limit (tests, a
    host started anew) replaces both, with their compiled modules. Where memory goes is decided
    when an engine is made, not per run (reading the process's size costs ~10 µs).
    """
    limit = memory_limit_bytes or 0
    engines: dict[tuple[int, bool], WasmtimeEngine] = _local.__dict__.setdefault("engines", {})
    engine = engines.get((limit, interruptible))
    if engine is None:
        if any(other != limit for other, _ in engines):
            engines.clear()
        reservation = None if _guard_pages_fit() else limit + limits.MiB if limit else 0
        engine = engines[limit, interruptible] = WasmtimeEngine(reservation, interruptible=interruptible)
    return engine


def _guard_pages_fit() -> bool:
    """Whether this process's address-space cap (RLIMIT_AS) leaves room for guard-page memories.

    The executor leaves that room only where it can bound writable memory instead (RLIMIT_DATA,
    Linux 4.7+); under a tight cap, guard pages would make every instantiation fail, so memory
    then sits in a reservation at the memory limit. 32-bit hosts have no 4 GiB to reserve.
    """
    if sys.maxsize <= 2**32:
        return False
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return True
        with open("/proc/self/statm", "rb") as file:
            virtual = int(file.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError, IndexError):
        return False  # a cap we cannot measure against: the reservation that fits any cap
    return soft - virtual >= GUARD_PAGE_ROOM_BYTES


_SATISFIES: Engine = run_module
"""A type checker's proof that this `run_module` is an :class:`Engine`."""
