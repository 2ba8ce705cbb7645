"""The `wasi_snapshot_preview1` subset a task module may import, implemented in Python.

pywasm3 bundles no WASI, so the engine links these functions into each module with
`Module.link_function`. The subset is exactly :data:`bxthre3.abi.SUPPORTED_WASI_IMPORTS`:
argv, environ, stdin/stdout/stderr, clocks, randomness and exit. There are no
preopened directories and no sockets, so a module cannot reach the device it runs on.

This module does not import wasm3: it only needs objects with `get_memory` and
`link_function`, which keeps it testable against a plain `bytearray`.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from bxthre3 import abi, limits

# WASI errno values (wasi_snapshot_preview1 `errno`); only those the shim returns.
ESUCCESS = 0
EBADF = 8
EFAULT = 21
EINVAL = 28
ESPIPE = 70

# `filetype` values and `rights` bits used by fd_fdstat_get.
_FILETYPE_UNKNOWN = 0
_RIGHT_FD_READ = 1 << 1
_RIGHT_FD_WRITE = 1 << 6

# `clockid` values.
_CLOCK_REALTIME = 0
_CLOCK_MONOTONIC = 1
_CLOCK_PROCESS_CPUTIME = 2
_CLOCK_THREAD_CPUTIME = 3

_STDIN, _STDOUT, _STDERR = 0, 1, 2

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U32_PAIR = struct.Struct("<II")
# fdstat: u8 filetype, u16 flags, u64 rights_base, u64 rights_inheriting (24 bytes).
_FDSTAT = struct.Struct("<BxHxxxxQQ")

_MASK32 = 0xFFFFFFFF

SIGNATURES: dict[str, str] = {
    "args_get": "i(ii)",
    "args_sizes_get": "i(ii)",
    "environ_get": "i(ii)",
    "environ_sizes_get": "i(ii)",
    "fd_read": "i(iiii)",
    "fd_write": "i(iiii)",
    "fd_close": "i(i)",
    "fd_seek": "i(iIii)",
    "fd_fdstat_get": "i(ii)",
    "fd_prestat_get": "i(ii)",
    "fd_prestat_dir_name": "i(iii)",
    "clock_time_get": "i(iIi)",
    "clock_res_get": "i(ii)",
    "random_get": "i(ii)",
    "proc_exit": "v(i)",
    "sched_yield": "i()",
}
"""pywasm3 signature of every implemented function (`I` is i64), keyed by WASI name.

The keys are the single source of what the shim implements; a test checks they equal
:data:`bxthre3.abi.SUPPORTED_WASI_IMPORTS`.
"""


class ProcExit(Exception):
    """Raised by `proc_exit` to unwind the module: an exception stops a pywasm3 call.

    Control flow between the shim and the engine only; it never leaves `run_module`.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class OutputLimitExceeded(Exception):
    """Raised by `fd_write` when stdout would pass its cap, to stop the module at once.

    Control flow between the shim and the engine only; it never leaves `run_module`.
    """


class _Fault(Exception):
    """A pointer or length outside linear memory: the call returns EFAULT."""


class Runtime(Protocol):
    """What the shim needs of a wasm3 runtime: its linear memory."""

    def get_memory(self, index: int) -> memoryview: ...


class LinkableModule(Protocol):
    """What the shim needs of a wasm3 module: a way to link host functions."""

    def link_function(self, module: str, name: str, signature: str, function: Callable[..., Any]) -> None: ...


class _Trampolines:
    """One stable Python function per WASI import, forwarding to the active shim.

    pywasm3 0.5.0 takes a reference to every function passed to `link_function` and
    never releases it. Linking closures over a fresh shim would therefore leak each
    run's stdin and stdout; linking these same few objects every time leaks nothing.
    """

    __slots__ = ("current", "functions")

    def __init__(self) -> None:
        self.current: WasiShim | None = None
        self.functions: dict[str, Callable[..., int | None]] = {
            name: self._forwarder(name) for name in SIGNATURES
        }

    def _forwarder(self, name: str) -> Callable[..., int | None]:
        method: Callable[..., int | None] = getattr(WasiShim, name)

        def forward(*params: int) -> int | None:
            shim = self.current
            if shim is None:  # a module kept running past its shim: refuse, do not crash
                return EBADF
            try:
                return method(shim, *params)
            except _Fault:
                return EFAULT

        forward.__name__ = name
        return forward


_local = threading.local()


def _trampolines() -> _Trampolines:
    """This thread's trampolines (runs on different threads must not share them)."""
    trampolines: _Trampolines | None = getattr(_local, "trampolines", None)
    if trampolines is None:
        trampolines = _local.trampolines = _Trampolines()
    return trampolines


def forwarders() -> dict[str, Callable[..., int | None]]:
    """This thread's one function per WASI import, each reaching the shim bound by `WasiShim.bind`.

    For engines that link imports once and reuse them for every run (wasmtime's Linker).
    """
    return _trampolines().functions


def _encode_strings(items: Sequence[str]) -> list[bytes]:
    """NUL-terminated UTF-8, as C's argv/environ expect. Lone surrogates survive."""
    return [item.encode("utf-8", "surrogateescape") + b"\0" for item in items]


class WasiShim:
    """The WASI state of one module run: its argv, environ, stdin and captured output.

    One shim serves one run. stdout is captured up to `max_stdout` bytes (one byte more
    stops the run); stderr keeps only its last `max_stderr` bytes, because the tail of a
    log is what explains a failure.
    """

    __slots__ = (
        "_args",
        "_args_size",
        "_env",
        "_env_size",
        "_stdin",
        "_stdin_pos",
        "_stdout",
        "_stderr",
        "_max_stdout",
        "_max_stderr",
        "_closed",
        "_runtime",
        "_random",
        "stdout_overflowed",
    )

    def __init__(
        self,
        *,
        args: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes,
        max_stdout: int = limits.MAX_OUTPUT_BYTES,
        max_stderr: int = limits.MAX_STDERR_BYTES,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._args = _encode_strings(args)
        self._args_size = sum(len(a) for a in self._args)
        self._env = _encode_strings([f"{key}={value}" for key, value in env.items()])
        self._env_size = sum(len(e) for e in self._env)
        self._stdin = memoryview(stdin)
        self._stdin_pos = 0
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._max_stdout = max_stdout
        self._max_stderr = max_stderr
        self._closed: set[int] = set()
        self._runtime: Runtime | None = None
        self._random = random
        self.stdout_overflowed = False
        """True once the module tried to write more than `max_stdout` bytes."""

    @property
    def stdout(self) -> bytes:
        """Everything written to fd 1, at most `max_stdout` bytes."""
        return bytes(self._stdout)

    @property
    def stderr(self) -> bytes:
        """The last `max_stderr` bytes written to fd 2."""
        return bytes(self._stderr)

    def link(self, module: LinkableModule, runtime: Runtime) -> None:
        """Link every supported function into `module` and make this shim the active one.

        Linking a name the module does not import is harmless in wasm3, so all are
        linked; an import outside the subset stays unlinked and fails the module.
        Until :meth:`unbind`, calls from any module linked on this thread reach this
        shim: one run at a time per thread, which is all pywasm3 allows anyway.
        """
        self.bind(runtime)
        trampolines = _trampolines()
        for name, signature in SIGNATURES.items():
            module.link_function(abi.WASI_MODULE, name, signature, trampolines.functions[name])

    def bind(self, runtime: Runtime) -> None:
        """Make this shim the one this thread's linked functions reach, reading `runtime`'s memory.

        Engines that link the functions once (wasmtime's Linker) call only this per run.
        """
        self._runtime = runtime
        _trampolines().current = self

    def unbind(self) -> None:
        """Detach the shim after its run, so nothing keeps its buffers alive."""
        trampolines = _trampolines()
        if trampolines.current is self:
            trampolines.current = None
        self._runtime = None

    # -- memory helpers ----------------------------------------------------------

    def _memory(self) -> memoryview:
        """Fetch linear memory afresh: `memory.grow` replaces the old buffer."""
        if self._runtime is None:
            raise _Fault
        try:
            return self._runtime.get_memory(0)
        except Exception as exc:  # a module without memory cannot pass pointers
            raise _Fault from exc

    @staticmethod
    def _check(memory: memoryview, pointer: int, size: int) -> None:
        if pointer + size > len(memory):
            raise _Fault

    def _put_u32(self, memory: memoryview, pointer: int, value: int) -> None:
        pointer &= _MASK32
        self._check(memory, pointer, 4)
        _U32.pack_into(memory, pointer, value & _MASK32)

    def _put_u64(self, memory: memoryview, pointer: int, value: int) -> None:
        pointer &= _MASK32
        self._check(memory, pointer, 8)
        _U64.pack_into(memory, pointer, value & 0xFFFFFFFFFFFFFFFF)

    def _iovecs(self, memory: memoryview, iovs: int, count: int) -> list[tuple[int, int]]:
        """Read `count` (pointer, length) pairs and check each buffer lies in memory."""
        iovs &= _MASK32
        count &= _MASK32
        self._check(memory, iovs, 8 * count)
        result = []
        for index in range(count):
            pointer, length = _U32_PAIR.unpack_from(memory, iovs + 8 * index)
            self._check(memory, pointer, length)
            result.append((pointer, length))
        return result

    def _put_strings(self, strings: list[bytes], pointers: int, buffer: int) -> int:
        memory = self._memory()
        pointers &= _MASK32
        buffer &= _MASK32
        self._check(memory, pointers, 4 * len(strings))
        self._check(memory, buffer, sum(len(s) for s in strings))
        for index, item in enumerate(strings):
            _U32.pack_into(memory, pointers + 4 * index, buffer)
            memory[buffer : buffer + len(item)] = item
            buffer += len(item)
        return ESUCCESS

    def _is_open(self, fd: int) -> bool:
        return fd in (_STDIN, _STDOUT, _STDERR) and fd not in self._closed

    # -- argv and environ --------------------------------------------------------

    def args_sizes_get(self, argc_out: int, size_out: int) -> int:
        memory = self._memory()
        self._put_u32(memory, argc_out, len(self._args))
        self._put_u32(memory, size_out, self._args_size)
        return ESUCCESS

    def args_get(self, argv: int, argv_buf: int) -> int:
        return self._put_strings(self._args, argv, argv_buf)

    def environ_sizes_get(self, count_out: int, size_out: int) -> int:
        memory = self._memory()
        self._put_u32(memory, count_out, len(self._env))
        self._put_u32(memory, size_out, self._env_size)
        return ESUCCESS

    def environ_get(self, environ: int, environ_buf: int) -> int:
        return self._put_strings(self._env, environ, environ_buf)

    # -- file descriptors --------------------------------------------------------

    def fd_read(self, fd: int, iovs: int, iovs_len: int, nread_out: int) -> int:
        if fd != _STDIN or not self._is_open(fd):
            return EBADF
        memory = self._memory()
        total = 0
        for pointer, length in self._iovecs(memory, iovs, iovs_len):
            chunk = self._stdin[self._stdin_pos : self._stdin_pos + length]
            memory[pointer : pointer + len(chunk)] = chunk
            self._stdin_pos += len(chunk)
            total += len(chunk)
            if len(chunk) < length:
                break
        self._put_u32(memory, nread_out, total)
        return ESUCCESS

    def fd_write(self, fd: int, iovs: int, iovs_len: int, nwritten_out: int) -> int:
        if fd not in (_STDOUT, _STDERR) or not self._is_open(fd):
            return EBADF
        memory = self._memory()
        total = 0
        for pointer, length in self._iovecs(memory, iovs, iovs_len):
            data = memory[pointer : pointer + length]
            if fd == _STDOUT:
                room = self._max_stdout - len(self._stdout)
                if length > room:
                    self._stdout += data[:room]
                    self.stdout_overflowed = True
                    raise OutputLimitExceeded
                self._stdout += data
            else:
                self._stderr += data
                excess = len(self._stderr) - self._max_stderr
                if excess > 0:
                    del self._stderr[:excess]
            total += length
        self._put_u32(memory, nwritten_out, total)
        return ESUCCESS

    def fd_close(self, fd: int) -> int:
        if not self._is_open(fd):
            return EBADF
        self._closed.add(fd)
        return ESUCCESS

    def fd_seek(self, fd: int, offset: int, whence: int, newoffset_out: int) -> int:
        # stdio are streams (pipes, in Unix terms): seeking them is ESPIPE, which is
        # what wasi-libc expects when it tries to give back buffered stdin at exit.
        return ESPIPE if self._is_open(fd) else EBADF

    def fd_fdstat_get(self, fd: int, stat_out: int) -> int:
        if not self._is_open(fd):
            return EBADF
        # Not a character device, so wasi-libc's isatty() is false and stdout is fully
        # buffered: one fd_write per buffer instead of one per line.
        rights = _RIGHT_FD_READ if fd == _STDIN else _RIGHT_FD_WRITE
        memory = self._memory()
        stat_out &= _MASK32
        self._check(memory, stat_out, _FDSTAT.size)
        _FDSTAT.pack_into(memory, stat_out, _FILETYPE_UNKNOWN, 0, rights, 0)
        return ESUCCESS

    def fd_prestat_get(self, fd: int, prestat_out: int) -> int:
        # No preopened directories: libc stops scanning at the first EBADF.
        return EBADF

    def fd_prestat_dir_name(self, fd: int, path: int, path_len: int) -> int:
        return EBADF

    # -- clocks, randomness, scheduling, exit ------------------------------------

    def clock_time_get(self, clock_id: int, precision: int, time_out: int) -> int:
        if clock_id == _CLOCK_REALTIME:
            now = time.time_ns()
        elif clock_id == _CLOCK_MONOTONIC:
            now = time.monotonic_ns()
        elif clock_id == _CLOCK_PROCESS_CPUTIME:
            now = time.process_time_ns()
        elif clock_id == _CLOCK_THREAD_CPUTIME:
            now = time.thread_time_ns()
        else:
            return EINVAL
        self._put_u64(self._memory(), time_out, now)
        return ESUCCESS

    def clock_res_get(self, clock_id: int, resolution_out: int) -> int:
        if clock_id not in (
            _CLOCK_REALTIME,
            _CLOCK_MONOTONIC,
            _CLOCK_PROCESS_CPUTIME,
            _CLOCK_THREAD_CPUTIME,
        ):
            return EINVAL
        # Python's *_ns clocks report nanoseconds; claiming 1 µs stays honest on
        # platforms whose clocks are coarser than their unit.
        self._put_u64(self._memory(), resolution_out, 1_000)
        return ESUCCESS

    def random_get(self, buffer: int, length: int) -> int:
        memory = self._memory()
        buffer &= _MASK32
        length &= _MASK32
        self._check(memory, buffer, length)
        memory[buffer : buffer + length] = self._random(length)
        return ESUCCESS

    def sched_yield(self) -> int:
        return ESUCCESS

    def proc_exit(self, code: int) -> None:
        raise ProcExit(code)
