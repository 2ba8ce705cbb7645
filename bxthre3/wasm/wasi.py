"""`wasi_snapshot_preview1`, all of it, implemented in Python for both engines.

pywasm3 bundles no WASI and wasmtime's would reach the real filesystem, so one shim serves
both: Wasm3 links these functions with `Module.link_function`, wasmtime through raw
callbacks (:func:`forwarders`). One implementation is what makes a task behave identically
on either engine. The names are exactly :data:`bxthre3.wasm.abi.SUPPORTED_WASI_IMPORTS`: every
preview-1 function links, so no WASI program is refused at submission; what a task cannot
do answers with the errno the WASI spec (or POSIX, where the spec is silent) gives.

What a task sees:

- argv, environ, stdin (bytes given), stdout (captured, capped) and stderr (its tail).
  stdio reports filetype `unknown` without seek/tell rights, as a pipe does: wasi-libc's
  `isatty` is then false and stdout fully buffered, so output is byte-identical to a
  native build writing to a pipe. Seeking stdio is ESPIPE.
- A read-only `/in` (fd 3: the job's input files) and a writable, initially empty
  `/out` (fd 4), both in memory (:mod:`bxthre3.wasm.vfs`); the regular files left under
  `/out` are the run's `files`. `/in`'s rights hold no write, create or remove right, so
  creating, truncating, renaming or removing there is ENOTCAPABLE; wasi-libc masks the
  rights it asks for with the directory's, so `open("/in/x", O_RDWR)` opens read-only
  and writes to it are EBADF (as writing a descriptor not open for writing is in POSIX).
- Clocks, random bytes, `sched_yield`, `poll_oneoff` (clock subscriptions sleep, but
  never past the task's deadline: :class:`DeadlineExceeded` then ends the run as a
  timeout; stdio and files are always ready), `proc_exit`, and `proc_raise`, which traps.
- Sockets: none exist, so `sock_*` is EBADF for a closed descriptor, else ENOTSOCK.
- In a deterministic run (`seed` given: a verified task, whose replicas on other devices must
  write the same bytes) nothing a task reads depends on the device, the engine or real time:
  every clock is a logical one (:class:`LogicalClock`), `random_get` a stream seeded from the
  task id (:class:`SeededRandom`), and `poll_oneoff` moves the logical clock to the deadline
  instead of sleeping.

Nothing is set up for a task that never touches a file: the descriptor table and the
filesystem are built on first use, and stdio has a fast path without them.

This module does not import wasm3: it only needs objects with `get_memory` and
`link_function`, which keeps it testable against a plain `bytearray`.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from bxthre3.common import limits
from bxthre3.common.failures import FailureReason
from bxthre3.wasm import abi
from bxthre3.wasm.vfs import (
    EEXIST,
    EINVAL,
    EISDIR,
    ENAMETOOLONG,
    ENOTCAPABLE,
    ENOTDIR,
    Directory,
    File,
    OutputBudget,
    OutputLimitExceeded,
    Vfs,
    VfsError,
)

# WASI errno values (wasi_snapshot_preview1 `errno`) the shim returns itself.
ESUCCESS = 0
EBADF = 8
EFAULT = 21
EMFILE = 33
ENOTSOCK = 57
ESPIPE = 70
__all__ = [  # errnos from vfs are re-exported: the shim's callers and tests name them all here
    "DeadlineExceeded", "OutputLimitExceeded", "ProcExit", "ProcRaise", "WasiShim", "forwarders", "shim_ending",
    "DETERMINISTIC_EPOCH_NS", "DETERMINISTIC_STEP_NS", "LogicalClock", "SeededRandom", "task_seed",
    "EBADF", "EEXIST", "EFAULT", "EINVAL", "EISDIR", "EMFILE", "ENAMETOOLONG", "ENOTCAPABLE", "ENOTDIR",
    "ENOTSOCK", "ESPIPE", "ESUCCESS",
]  # fmt: skip

# `filetype` values.
FILETYPE_UNKNOWN = 0
FILETYPE_DIRECTORY = 3
FILETYPE_REGULAR_FILE = 4

# `rights` bits.
RIGHT_FD_DATASYNC = 1 << 0
RIGHT_FD_READ = 1 << 1
RIGHT_FD_SEEK = 1 << 2
RIGHT_FD_FDSTAT_SET_FLAGS = 1 << 3
RIGHT_FD_SYNC = 1 << 4
RIGHT_FD_TELL = 1 << 5
RIGHT_FD_WRITE = 1 << 6
RIGHT_FD_ADVISE = 1 << 7
RIGHT_FD_ALLOCATE = 1 << 8
RIGHT_PATH_CREATE_DIRECTORY = 1 << 9
RIGHT_PATH_CREATE_FILE = 1 << 10
RIGHT_PATH_LINK_SOURCE = 1 << 11
RIGHT_PATH_LINK_TARGET = 1 << 12
RIGHT_PATH_OPEN = 1 << 13
RIGHT_FD_READDIR = 1 << 14
RIGHT_PATH_READLINK = 1 << 15
RIGHT_PATH_RENAME_SOURCE = 1 << 16
RIGHT_PATH_RENAME_TARGET = 1 << 17
RIGHT_PATH_FILESTAT_GET = 1 << 18
RIGHT_PATH_FILESTAT_SET_SIZE = 1 << 19
RIGHT_PATH_FILESTAT_SET_TIMES = 1 << 20
RIGHT_FD_FILESTAT_GET = 1 << 21
RIGHT_FD_FILESTAT_SET_SIZE = 1 << 22
RIGHT_FD_FILESTAT_SET_TIMES = 1 << 23
RIGHT_PATH_SYMLINK = 1 << 24
RIGHT_PATH_REMOVE_DIRECTORY = 1 << 25
RIGHT_PATH_UNLINK_FILE = 1 << 26
RIGHT_POLL_FD_READWRITE = 1 << 27

_STDIN_RIGHTS = RIGHT_FD_READ | RIGHT_POLL_FD_READWRITE | RIGHT_FD_FILESTAT_GET | RIGHT_FD_FDSTAT_SET_FLAGS
_STDOUT_RIGHTS = RIGHT_FD_WRITE | RIGHT_POLL_FD_READWRITE | RIGHT_FD_FILESTAT_GET | RIGHT_FD_FDSTAT_SET_FLAGS
"""A pipe's rights: no seek or tell (wasi-libc's isatty looks at those) and no size or times."""

DIR_RIGHTS_IN = (
    RIGHT_PATH_OPEN | RIGHT_FD_READDIR | RIGHT_PATH_READLINK | RIGHT_PATH_FILESTAT_GET | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FDSTAT_SET_FLAGS | RIGHT_FD_SYNC | RIGHT_FD_DATASYNC
)  # fmt: skip
FILE_RIGHTS_IN = (
    RIGHT_FD_READ | RIGHT_FD_SEEK | RIGHT_FD_TELL | RIGHT_FD_ADVISE | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FDSTAT_SET_FLAGS | RIGHT_FD_SYNC | RIGHT_FD_DATASYNC | RIGHT_POLL_FD_READWRITE
)  # fmt: skip
DIR_RIGHTS_OUT = DIR_RIGHTS_IN | (
    RIGHT_PATH_CREATE_DIRECTORY | RIGHT_PATH_CREATE_FILE | RIGHT_PATH_LINK_SOURCE | RIGHT_PATH_LINK_TARGET
    | RIGHT_PATH_RENAME_SOURCE | RIGHT_PATH_RENAME_TARGET | RIGHT_PATH_FILESTAT_SET_SIZE
    | RIGHT_PATH_FILESTAT_SET_TIMES | RIGHT_FD_FILESTAT_SET_TIMES | RIGHT_PATH_SYMLINK
    | RIGHT_PATH_REMOVE_DIRECTORY | RIGHT_PATH_UNLINK_FILE
)  # fmt: skip
FILE_RIGHTS_OUT = FILE_RIGHTS_IN | (
    RIGHT_FD_WRITE | RIGHT_FD_ALLOCATE | RIGHT_FD_FILESTAT_SET_SIZE | RIGHT_FD_FILESTAT_SET_TIMES
)  # fmt: skip
"""Rights of directories and files in /in (read-only) and /out; a preopen inherits both kinds."""

# fdflags, oflags, fstflags, whence, clocks, subscriptions.
FDFLAGS_APPEND = 1
_FDFLAGS_ALL = 0x1F  # append, dsync, nonblock, rsync, sync: only append changes anything in memory
O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC = 1, 2, 4, 8
_FST_ATIM, _FST_ATIM_NOW, _FST_MTIM, _FST_MTIM_NOW = 1, 2, 4, 8
_WHENCE_SET, _WHENCE_CUR, _WHENCE_END = 0, 1, 2
_CLOCK_REALTIME = 0
_CLOCK_MONOTONIC = 1
_CLOCK_PROCESS_CPUTIME = 2
_CLOCK_THREAD_CPUTIME = 3
_CLOCKS = frozenset((_CLOCK_REALTIME, _CLOCK_MONOTONIC, _CLOCK_PROCESS_CPUTIME, _CLOCK_THREAD_CPUTIME))
_EVENTTYPE_CLOCK, _EVENTTYPE_FD_READ, _EVENTTYPE_FD_WRITE = 0, 1, 2
_SUBCLOCK_ABSTIME = 1
_EVENTRWFLAGS_HANGUP = 1
_ADVICE_MAX = 5
_SIGNAL_MAX = 30

_STDIN, _STDOUT, _STDERR = 0, 1, 2
PREOPENS: dict[int, str] = dict(enumerate(abi.PREOPEN_DIRECTORIES, start=3))
"""Preopened descriptors: fd -> the directory name wasi-libc sees (3: /in, 4: /out)."""

MAX_OPEN_FDS = 1024
"""Most descriptors open at once; one more path_open is EMFILE (as RLIMIT_NOFILE would give)."""

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U32_PAIR = struct.Struct("<II")
_FDSTAT = struct.Struct("<BxHxxxxQQ")  # filetype, flags, rights_base, rights_inheriting: 24 bytes
_FILESTAT = struct.Struct("<QQBxxxxxxxQQQQQ")  # dev, ino, filetype, nlink, size, atim, mtim, ctim: 64
_PRESTAT = struct.Struct("<BxxxI")  # tag 0 (dir), name length
_DIRENT = struct.Struct("<QQIBxxx")  # d_next, d_ino, d_namlen, d_type: 24, then the name
_SUBSCRIPTION = struct.Struct("<QBxxxxxxxIxxxxQQHxxxxxx")  # 48 bytes (clock variant; fd is the same u32)
_EVENT = struct.Struct("<QHBxxxxxQHxxxxxx")  # userdata, error, type, nbytes, flags: 32 bytes

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF

SIGNATURES: dict[str, str] = {
    "args_get": "i(ii)",
    "args_sizes_get": "i(ii)",
    "environ_get": "i(ii)",
    "environ_sizes_get": "i(ii)",
    "clock_res_get": "i(ii)",
    "clock_time_get": "i(iIi)",
    "fd_advise": "i(iIIi)",
    "fd_allocate": "i(iII)",
    "fd_close": "i(i)",
    "fd_datasync": "i(i)",
    "fd_fdstat_get": "i(ii)",
    "fd_fdstat_set_flags": "i(ii)",
    "fd_fdstat_set_rights": "i(iII)",
    "fd_filestat_get": "i(ii)",
    "fd_filestat_set_size": "i(iI)",
    "fd_filestat_set_times": "i(iIIi)",
    "fd_pread": "i(iiiIi)",
    "fd_prestat_get": "i(ii)",
    "fd_prestat_dir_name": "i(iii)",
    "fd_pwrite": "i(iiiIi)",
    "fd_read": "i(iiii)",
    "fd_readdir": "i(iiiIi)",
    "fd_renumber": "i(ii)",
    "fd_seek": "i(iIii)",
    "fd_sync": "i(i)",
    "fd_tell": "i(ii)",
    "fd_write": "i(iiii)",
    "path_create_directory": "i(iii)",
    "path_filestat_get": "i(iiiii)",
    "path_filestat_set_times": "i(iiiiIIi)",
    "path_link": "i(iiiiiii)",
    "path_open": "i(iiiiiIIii)",
    "path_readlink": "i(iiiiii)",
    "path_remove_directory": "i(iii)",
    "path_rename": "i(iiiiii)",
    "path_symlink": "i(iiiii)",
    "path_unlink_file": "i(iii)",
    "poll_oneoff": "i(iiii)",
    "proc_exit": "v(i)",
    "proc_raise": "i(i)",
    "random_get": "i(ii)",
    "sched_yield": "i()",
    "sock_accept": "i(iii)",
    "sock_recv": "i(iiiiii)",
    "sock_send": "i(iiiii)",
    "sock_shutdown": "i(ii)",
}
"""pywasm3 signature of every WASI preview-1 function (`I` is i64), keyed by name.

The keys are the single source of what the shim implements; a test checks they equal
:data:`bxthre3.wasm.abi.SUPPORTED_WASI_IMPORTS`.
"""


DETERMINISTIC_EPOCH_NS = 946_684_800 * 1_000_000_000
"""The realtime clock's first reading in a deterministic run: 2000-01-01T00:00:00Z, in ns since 1970."""

DETERMINISTIC_STEP_NS = 1_000_000
"""How far the logical clock moves at each `clock_time_get` in a deterministic run: 1 ms (also what
`clock_res_get` answers). A loop that waits for time to pass by reading the clock still ends: waiting
for one second costs a thousand reads."""


def task_seed(task_id: str) -> bytes:
    """The seed of a deterministic run of task `task_id`: sha256 of its UTF-8 bytes. Every replica
    of the task, on any device and engine, gets the same one."""
    return hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).digest()


class SeededRandom:
    """`random_get`'s bytes in a deterministic run: SHA-256 in counter mode.

    Block i is sha256(seed || i as 8 little-endian bytes), i = 0, 1, 2, ...; the blocks are
    concatenated and handed out in order, however the task splits its requests. Nothing depends on
    Python's `random` (whose streams may change between versions) or on the platform.
    """

    __slots__ = ("_seed", "_counter", "_pending")

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._pending = b""

    def __call__(self, length: int) -> bytes:
        pending = self._pending
        if len(pending) < length:
            blocks = -(-(length - len(pending)) // 32)
            start, seed = self._counter, self._seed
            pending += b"".join(hashlib.sha256(seed + _U64.pack(i)).digest() for i in range(start, start + blocks))
            self._counter = start + blocks
        self._pending = pending[length:]
        return pending[:length]


class LogicalClock:
    """Every clock of a deterministic run: `now` nanoseconds since the run's logical start.

    Each `clock_time_get` answers the current value and then moves it on by DETERMINISTIC_STEP_NS;
    `poll_oneoff` moves it to the deadline it would have slept until. realtime reads
    DETERMINISTIC_EPOCH_NS + now; monotonic, process and thread CPU time read `now`.
    """

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def read(self, clock_id: int) -> int:
        now = self.now
        self.now = now + DETERMINISTIC_STEP_NS
        return DETERMINISTIC_EPOCH_NS + now if clock_id == _CLOCK_REALTIME else now


class ProcExit(Exception):
    """Raised by `proc_exit` to unwind the module: an exception stops a pywasm3 call.

    Control flow between the shim and the engine only; it never leaves `run_module`.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ProcRaise(Exception):
    """Raised by `proc_raise`: a signal without handlers ends the program, which the engines report as a trap."""

    def __init__(self, signal: int) -> None:
        super().__init__(signal)
        self.signal = signal


class DeadlineExceeded(Exception):
    """`poll_oneoff` would sleep past the task's timeout: the run ends as a timeout right there.

    A sleeping host call is out of reach of wasmtime's epoch interruption (and of nothing
    at all in Wasm3 but the host's kill), so the shim itself stops at the deadline.
    """


Ending = tuple[int | None, FailureReason | None, str]
"""A run's end as an engine's `finish` takes it: exit code, failure reason, error text."""


def shim_ending(exc: BaseException, timeout_s: float | None) -> Ending | None:
    """How a run ended if `exc` is one of the shim's own exceptions, else None.

    Both engines unwind the module with these exceptions and must report them in the same
    reasons and words (the parity tests compare them), so the mapping lives here, next to
    the exceptions, rather than in each engine; the engines keep only what is their own
    (traps, the memory-limit flag). Here, not in `engine`, because importing `engine`
    loads pywasm3, which a wasmtime executor must not.
    """
    if isinstance(exc, ProcExit):
        if exc.code == 0:
            return 0, None, ""
        return exc.code, FailureReason.EXIT_CODE, f"exited with code {exc.code}"
    if isinstance(exc, OutputLimitExceeded):
        return None, FailureReason.OUTPUT_LIMIT, str(exc)
    if isinstance(exc, ProcRaise):
        return None, FailureReason.TRAP, f"trap: raised signal {exc.signal}"
    if isinstance(exc, DeadlineExceeded):
        return None, FailureReason.TIMEOUT, f"stopped after the {timeout_s:g}s timeout"
    return None


class _Fault(Exception):
    """A pointer or length outside linear memory: the call returns EFAULT."""


ERRNO_EXCEPTIONS: tuple[type[Exception], ...] = (_Fault, VfsError)
"""What a shim method raises to answer an errno instead of ending the run (see :func:`errno_of`)."""


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
        self.functions: dict[str, Callable[..., int | None]] = {name: self._forwarder(name) for name in SIGNATURES}

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
            except VfsError as error:
                return error.errno

        forward.__name__ = name
        return forward


_local = threading.local()


def _trampolines() -> _Trampolines:
    """This thread's trampolines (runs on different threads must not share them)."""
    trampolines: _Trampolines | None = getattr(_local, "trampolines", None)
    if trampolines is None:
        trampolines = _local.trampolines = _Trampolines()
    return trampolines


class BoundShim(Protocol):
    """Where this thread's bound shim is found: `current` (None between runs)."""

    current: WasiShim | None


def host_method(name: str) -> tuple[Callable[..., int | None], BoundShim]:
    """The shim method behind WASI function `name`, and the holder of this thread's bound shim.

    For an engine whose own callback already costs a Python frame (Wasm3's raw calls): it calls
    ``method(holder.current, *params)`` itself, answering EBADF while no shim is bound and
    :func:`errno_of` for the exceptions in :data:`ERRNO_EXCEPTIONS`, exactly as the forwarders do,
    one frame (~0.1 µs of a ~1.5 µs call) cheaper.
    """
    return getattr(WasiShim, name), _trampolines()


def errno_of(error: Exception) -> int:
    """The errno a WASI call answers for one of :data:`ERRNO_EXCEPTIONS`."""
    return EFAULT if isinstance(error, _Fault) else error.errno  # type: ignore[attr-defined]


def forwarders() -> dict[str, Callable[..., int | None]]:
    """This thread's one function per WASI import, each reaching the shim bound by `WasiShim.bind`.

    For engines that link imports once and reuse them for every run (wasmtime's Linker).
    """
    return _trampolines().functions


def _encode_strings(items: Sequence[str]) -> list[bytes]:
    """NUL-terminated UTF-8, as C's argv/environ expect. Lone surrogates survive."""
    return [item.encode("utf-8", "surrogateescape") + b"\0" for item in items]


def _signed64(value: int) -> int:
    """An i64 parameter as a signed number (engines hand over either form)."""
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


class _Descriptor:
    """One open descriptor: a stdio stream (0, 1, 2), a file or a directory, with its rights.

    `preopen` names the preopened directory it came from (fd_prestat_get reports it);
    `position` is the file offset (files only).
    """

    __slots__ = ("node", "rights", "inheriting", "flags", "position", "preopen")

    def __init__(
        self, node: int | File | Directory, rights: int, inheriting: int = 0, flags: int = 0, preopen: str = ""
    ) -> None:
        self.node = node
        self.rights = rights
        self.inheriting = inheriting
        self.flags = flags
        self.position = 0
        self.preopen = preopen


class WasiShim:
    """The WASI state of one module run: argv, environ, stdio, descriptors and filesystem.

    One shim serves one run. stdout and the files under /out share an output budget of
    `max_stdout` bytes (passing it stops the run); stderr keeps only its last
    `max_stderr` bytes, because the tail of a log is what explains a failure. `files`
    become the read-only /in; `timeout_s` bounds how long `poll_oneoff` may sleep. With
    `seed` (:func:`task_seed`) the run is deterministic: logical clocks, seeded random bytes.
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
        "_max_stderr",
        "_budget",
        "_inputs",
        "_fds",
        "_vfs",
        "_deadline",
        "_runtime",
        "_random",
        "_clock",
        "_logical_limit",
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
        files: Mapping[str, bytes] | None = None,
        timeout_s: float | None = None,
        seed: bytes | None = None,
    ) -> None:
        self._args = _encode_strings(args)
        self._args_size = sum(len(a) for a in self._args)
        self._env = _encode_strings([f"{key}={value}" for key, value in env.items()])
        self._env_size = sum(len(e) for e in self._env)
        self._stdin = memoryview(stdin)
        self._stdin_pos = 0
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._max_stderr = max_stderr
        self._budget = OutputBudget(max_stdout)
        self._inputs = files or {}
        self._fds: dict[int, _Descriptor] | None = None
        """The descriptor table, built on first use; until then fds 0-2 are the open stdio."""
        self._vfs: Vfs | None = None
        self._deadline = time.monotonic() + timeout_s if timeout_s and timeout_s > 0 else None
        self._runtime: Runtime | None = None
        self._random: Callable[[int], bytes] = random if seed is None else SeededRandom(seed)
        self._clock = None if seed is None else LogicalClock()
        """The logical clock of a deterministic run (`seed` given); None: the device's clocks."""
        self._logical_limit: int | None = None
        """The task's timeout on the logical clock: sleeping past it ends a deterministic run as a timeout.
        None at or past MAX_TIMEOUT_S, as wasmtime's watchdog, so both engines end the same runs."""
        if self._clock is not None and timeout_s is not None and 0 < timeout_s < limits.MAX_TIMEOUT_S:
            self._logical_limit = round(timeout_s * 1e9)
        self.stdout_overflowed = False
        """True once the module tried to write more output than the budget allows."""

    @property
    def stdout(self) -> bytes:
        """Everything written to stdout, at most the output budget."""
        return bytes(self._stdout)

    @property
    def stderr(self) -> bytes:
        """The last `max_stderr` bytes written to stderr."""
        return bytes(self._stderr)

    @property
    def files(self) -> dict[str, bytes]:
        """Every regular file under /out now: relative '/'-path -> contents."""
        return {} if self._vfs is None else self._vfs.output_files()

    def link(self, module: LinkableModule, runtime: Runtime, names: Iterable[str] | None = None) -> None:
        """Link the WASI functions `names` (default: all) into `module` and make this shim the active one.

        Linking a name the module does not import is harmless in wasm3, but each call
        costs a run ~0.2 µs, so the engine passes the names the module imports. Until
        :meth:`unbind`, calls from any module linked on this thread reach this shim: one
        run at a time per thread, which is all pywasm3 allows anyway.
        """
        self.bind(runtime)
        functions = _trampolines().functions
        for name in SIGNATURES if names is None else names:
            signature = SIGNATURES.get(name)
            if signature is not None:
                module.link_function(abi.WASI_MODULE, name, signature, functions[name])

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
        _U64.pack_into(memory, pointer, value & _MASK64)

    def _put(self, memory: memoryview, pointer: int, layout: struct.Struct, *values: int) -> None:
        pointer &= _MASK32
        self._check(memory, pointer, layout.size)
        layout.pack_into(memory, pointer, *values)

    def _bytes(self, memory: memoryview, pointer: int, length: int) -> bytes:
        pointer &= _MASK32
        length &= _MASK32
        self._check(memory, pointer, length)
        return bytes(memory[pointer : pointer + length])

    def _path(self, memory: memoryview, pointer: int, length: int) -> bytes:
        if length & _MASK32 > limits.MAX_PATH_BYTES:
            raise VfsError(ENAMETOOLONG)
        return self._bytes(memory, pointer, length)

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

    # -- descriptors ---------------------------------------------------------------

    def _table(self) -> dict[int, _Descriptor]:
        """The descriptor table, building it (and the filesystem) on first use.

        Input files are placed only then, so a task that never looks at its files pays nothing
        for them. An input path that is not a plain relative path (the controller refuses those)
        raises ValueError here, which the engines report as an internal error.
        """
        if self._fds is None:
            vfs = self._vfs = Vfs(self._inputs, self._budget)
            self._fds = {
                _STDIN: _Descriptor(_STDIN, _STDIN_RIGHTS),
                _STDOUT: _Descriptor(_STDOUT, _STDOUT_RIGHTS),
                _STDERR: _Descriptor(_STDERR, _STDOUT_RIGHTS),
                3: _Descriptor(vfs.in_root, DIR_RIGHTS_IN, DIR_RIGHTS_IN | FILE_RIGHTS_IN, preopen=PREOPENS[3]),
                4: _Descriptor(vfs.out_root, DIR_RIGHTS_OUT, DIR_RIGHTS_OUT | FILE_RIGHTS_OUT, preopen=PREOPENS[4]),
            }
        return self._fds

    def _fd(self, fd: int) -> _Descriptor:
        """The open descriptor `fd`, or EBADF."""
        entry = (self._fds if self._fds is not None else self._table()).get(fd)
        if entry is None:
            raise VfsError(EBADF)
        return entry

    def _file(self, fd: int, right: int, missing: int = ENOTCAPABLE) -> tuple[_Descriptor, File]:
        """Descriptor `fd` as a regular file holding `right`.

        Streams are ESPIPE (they have no offset or size), directories EISDIR, and a missing
        right is `missing`: EBADF for reading and writing, as POSIX says; ENOTCAPABLE else.
        """
        entry = self._fd(fd)
        node = entry.node
        if type(node) is int:
            raise VfsError(ESPIPE)
        if not isinstance(node, File):
            raise VfsError(EISDIR)
        if not entry.rights & right:
            raise VfsError(missing)
        return entry, node

    def _dir(self, fd: int, right: int) -> Directory:
        """Descriptor `fd` as a directory holding `right`: ENOTDIR for anything else."""
        entry = self._fd(fd)
        node = entry.node
        if not isinstance(node, Directory):
            raise VfsError(ENOTDIR)
        if not entry.rights & right:
            raise VfsError(ENOTCAPABLE)
        return node

    def _fs(self) -> Vfs:
        if self._vfs is None:
            self._table()
        assert self._vfs is not None
        return self._vfs

    def _close(self, entry: _Descriptor) -> None:
        if isinstance(entry.node, File):
            self._fs().release(entry.node)

    def _filestat(self, node: int | File | Directory) -> tuple[int, ...]:
        if type(node) is int:
            return (0, 0, FILETYPE_UNKNOWN, 1, 0, 0, 0, 0)
        device = Vfs.OUT_DEVICE if node.writable else Vfs.IN_DEVICE  # type: ignore[union-attr]
        if isinstance(node, File):
            size = len(node.data)
            return (device, node.ino, FILETYPE_REGULAR_FILE, int(node.linked), size, node.atim, node.mtim, node.ctim)
        assert isinstance(node, Directory)
        links = 0 if node.removed else 2 + sum(isinstance(c, Directory) for c in node.entries.values())
        return (device, node.ino, FILETYPE_DIRECTORY, links, 0, node.atim, node.mtim, node.ctim)

    def _set_times(self, node: File | Directory, atim: int, mtim: int, flags: int) -> None:
        flags &= _MASK32
        if flags & _FST_ATIM and flags & _FST_ATIM_NOW or flags & _FST_MTIM and flags & _FST_MTIM_NOW:
            raise VfsError(EINVAL)
        if flags & ~0xF:
            raise VfsError(EINVAL)
        if not node.writable:
            raise VfsError(ENOTCAPABLE)
        vfs = self._fs()
        stamp = vfs.tick()  # "now" is the logical clock too: reproducible
        if flags & (_FST_ATIM | _FST_ATIM_NOW):
            node.atim = atim & _MASK64 if flags & _FST_ATIM else stamp
        if flags & (_FST_MTIM | _FST_MTIM_NOW):
            node.mtim = mtim & _MASK64 if flags & _FST_MTIM else stamp
        node.ctim = stamp

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

    # -- reading and writing -----------------------------------------------------

    def fd_read(self, fd: int, iovs: int, iovs_len: int, nread_out: int) -> int:
        if self._fds is None and fd == _STDIN:
            return self._read_stdin(iovs, iovs_len, nread_out)
        entry = self._fd(fd)
        node = entry.node
        if type(node) is int:
            if node != _STDIN:
                return EBADF
            return self._read_stdin(iovs, iovs_len, nread_out)
        if isinstance(node, Directory):
            return EISDIR
        if not entry.rights & RIGHT_FD_READ:
            return EBADF
        assert isinstance(node, File)
        entry.position += self._read_file(node, entry.position, iovs, iovs_len, nread_out)
        return ESUCCESS

    def _read_stdin(self, iovs: int, iovs_len: int, nread_out: int) -> int:
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

    def _read_file(self, node: File, offset: int, iovs: int, iovs_len: int, nread_out: int) -> int:
        memory = self._memory()
        data = node.data
        total = 0
        for pointer, length in self._iovecs(memory, iovs, iovs_len):
            chunk = data[offset + total : offset + total + length]
            memory[pointer : pointer + len(chunk)] = chunk
            total += len(chunk)
            if len(chunk) < length:
                break
        self._put_u32(memory, nread_out, total)
        return total

    def fd_pread(self, fd: int, iovs: int, iovs_len: int, offset: int, nread_out: int) -> int:
        _, node = self._file(fd, RIGHT_FD_READ, EBADF)
        self._read_file(node, offset & _MASK64, iovs, iovs_len, nread_out)
        return ESUCCESS

    def fd_write(self, fd: int, iovs: int, iovs_len: int, nwritten_out: int) -> int:
        if self._fds is None and (fd == _STDOUT or fd == _STDERR):
            return self._write_stream(fd, iovs, iovs_len, nwritten_out)
        entry = self._fd(fd)
        node = entry.node
        if type(node) is int:
            if node == _STDIN:
                return EBADF
            return self._write_stream(node, iovs, iovs_len, nwritten_out)
        if not entry.rights & RIGHT_FD_WRITE:
            return EBADF
        if isinstance(node, Directory):
            return EISDIR
        assert isinstance(node, File)
        if entry.flags & FDFLAGS_APPEND:
            entry.position = len(node.data)
        entry.position += self._write_file(node, entry.position, iovs, iovs_len, nwritten_out)
        return ESUCCESS

    def _write_stream(self, stream: int, iovs: int, iovs_len: int, nwritten_out: int) -> int:
        memory = self._memory()
        total = 0
        for pointer, length in self._iovecs(memory, iovs, iovs_len):
            data = memory[pointer : pointer + length]
            if stream == _STDOUT:
                room = self._budget.room()
                if length > room:
                    self._stdout += data[:room]
                    self._budget.used += room
                    self.stdout_overflowed = True
                    raise OutputLimitExceeded(self._budget.message())
                self._stdout += data
                self._budget.used += length
            else:
                self._stderr += data
                excess = len(self._stderr) - self._max_stderr
                if excess > 0:
                    del self._stderr[:excess]
            total += length
        self._put_u32(memory, nwritten_out, total)
        return ESUCCESS

    def _write_file(self, node: File, offset: int, iovs: int, iovs_len: int, nwritten_out: int) -> int:
        memory = self._memory()
        data = b"".join(memory[pointer : pointer + length] for pointer, length in self._iovecs(memory, iovs, iovs_len))
        self._put_u32(memory, nwritten_out, len(data))
        try:
            self._fs().write(node, offset, data)
        except OutputLimitExceeded:
            self.stdout_overflowed = True
            raise
        return len(data)

    def fd_pwrite(self, fd: int, iovs: int, iovs_len: int, offset: int, nwritten_out: int) -> int:
        entry, node = self._file(fd, RIGHT_FD_WRITE, EBADF)
        # Linux appends whatever the offset when the file is in append mode; so do we.
        offset = len(node.data) if entry.flags & FDFLAGS_APPEND else offset & _MASK64
        self._write_file(node, offset, iovs, iovs_len, nwritten_out)
        return ESUCCESS

    def fd_seek(self, fd: int, offset: int, whence: int, newoffset_out: int) -> int:
        # stdio are streams (pipes, in Unix terms): seeking them is ESPIPE, which is
        # what wasi-libc expects when it tries to give back buffered stdin at exit.
        if self._fds is None and 0 <= fd <= _STDERR:
            return ESPIPE  # without building the table: every program that reads stdin ends here
        offset = _signed64(offset)
        whence &= _MASK32
        telling = whence == _WHENCE_CUR and offset == 0
        entry, node = self._file(fd, RIGHT_FD_TELL if telling else RIGHT_FD_SEEK)
        if whence == _WHENCE_SET:
            position = offset
        elif whence == _WHENCE_CUR:
            position = entry.position + offset
        elif whence == _WHENCE_END:
            position = len(node.data) + offset
        else:
            return EINVAL
        if not 0 <= position < 1 << 63:
            return EINVAL
        self._put_u64(self._memory(), newoffset_out, position)
        entry.position = position
        return ESUCCESS

    def fd_tell(self, fd: int, offset_out: int) -> int:
        if self._fds is None and 0 <= fd <= _STDERR:
            return ESPIPE
        entry, _ = self._file(fd, RIGHT_FD_TELL)
        self._put_u64(self._memory(), offset_out, entry.position)
        return ESUCCESS

    # -- descriptor state ----------------------------------------------------------

    def fd_close(self, fd: int) -> int:
        table = self._table()
        entry = table.pop(fd, None)
        if entry is None:
            return EBADF
        self._close(entry)
        return ESUCCESS

    def fd_renumber(self, fd: int, to: int) -> int:
        table = self._table()
        if fd not in table or to not in table:
            return EBADF
        if fd != to:
            self._close(table[to])
            table[to] = table.pop(fd)
        return ESUCCESS

    def fd_fdstat_get(self, fd: int, stat_out: int) -> int:
        if self._fds is None and 0 <= fd <= _STDERR:  # stdio before any file use: no table needed
            rights = _STDIN_RIGHTS if fd == _STDIN else _STDOUT_RIGHTS
            self._put(self._memory(), stat_out, _FDSTAT, FILETYPE_UNKNOWN, 0, rights, 0)
            return ESUCCESS
        entry = self._fd(fd)
        # stdio is "unknown" (a pipe) with no seek/tell rights: wasi-libc's isatty() is then
        # false and stdout fully buffered, exactly as a native program writing to a pipe.
        filetype = self._filestat(entry.node)[2]
        self._put(self._memory(), stat_out, _FDSTAT, filetype, entry.flags, entry.rights, entry.inheriting)
        return ESUCCESS

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> int:
        entry = self._fd(fd)
        if not entry.rights & RIGHT_FD_FDSTAT_SET_FLAGS:
            return ENOTCAPABLE
        flags &= _MASK32
        if flags & ~_FDFLAGS_ALL:
            return EINVAL
        entry.flags = flags
        return ESUCCESS

    def fd_fdstat_set_rights(self, fd: int, rights: int, inheriting: int) -> int:
        entry = self._fd(fd)
        rights &= _MASK64
        inheriting &= _MASK64
        if rights & ~entry.rights or inheriting & ~entry.inheriting:
            return ENOTCAPABLE  # rights can only be dropped
        entry.rights, entry.inheriting = rights, inheriting
        return ESUCCESS

    def fd_filestat_get(self, fd: int, stat_out: int) -> int:
        entry = self._fd(fd)
        if not entry.rights & RIGHT_FD_FILESTAT_GET:
            return ENOTCAPABLE
        self._put(self._memory(), stat_out, _FILESTAT, *self._filestat(entry.node))
        return ESUCCESS

    def fd_filestat_set_size(self, fd: int, size: int) -> int:
        entry = self._fd(fd)
        if type(entry.node) is int:
            return EINVAL  # ftruncate on a pipe
        _, node = self._file(fd, RIGHT_FD_FILESTAT_SET_SIZE)
        size &= _MASK64
        if size >= 1 << 63:
            return EINVAL
        self._fs().resize(node, size)
        return ESUCCESS

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, flags: int) -> int:
        entry = self._fd(fd)
        if not entry.rights & RIGHT_FD_FILESTAT_SET_TIMES:
            return ENOTCAPABLE
        assert isinstance(entry.node, (File, Directory))
        self._set_times(entry.node, atim, mtim, flags)
        return ESUCCESS

    def fd_allocate(self, fd: int, offset: int, length: int) -> int:
        _, node = self._file(fd, RIGHT_FD_ALLOCATE)
        end = (offset & _MASK64) + (length & _MASK64)
        if end >= 1 << 63:
            return EINVAL
        if end > len(node.data):
            self._fs().resize(node, end)
        return ESUCCESS

    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> int:
        if advice & _MASK32 > _ADVICE_MAX:
            return EINVAL
        self._file(fd, RIGHT_FD_ADVISE)
        return ESUCCESS  # advice is only advice; memory needs none

    def fd_datasync(self, fd: int) -> int:
        return self._sync(fd, RIGHT_FD_DATASYNC)

    def fd_sync(self, fd: int) -> int:
        return self._sync(fd, RIGHT_FD_SYNC)

    def _sync(self, fd: int, right: int) -> int:
        entry = self._fd(fd)
        if type(entry.node) is int:
            return EINVAL  # fsync on a pipe
        if not entry.rights & right:
            return ENOTCAPABLE
        return ESUCCESS  # memory is as durable as it gets

    def fd_prestat_get(self, fd: int, prestat_out: int) -> int:
        if self._fds is None:  # wasi-libc scans fd 3, 4, 5... at start-up: answer without building anything
            name = PREOPENS.get(fd, "")
        else:
            entry = self._fds.get(fd)
            name = entry.preopen if entry is not None else ""
        if not name:
            return EBADF  # not a preopen: wasi-libc's scan stops here
        self._put(self._memory(), prestat_out, _PRESTAT, 0, len(name))
        return ESUCCESS

    def fd_prestat_dir_name(self, fd: int, path: int, path_len: int) -> int:
        if self._fds is None:
            name = PREOPENS.get(fd, "")
        else:
            entry = self._fds.get(fd)
            name = entry.preopen if entry is not None else ""
        if not name:
            return EBADF
        encoded = name.encode()
        if path_len & _MASK32 < len(encoded):
            return ENAMETOOLONG
        memory = self._memory()
        path &= _MASK32
        self._check(memory, path, len(encoded))
        memory[path : path + len(encoded)] = encoded
        return ESUCCESS

    def fd_readdir(self, fd: int, buf: int, buf_len: int, cookie: int, bufused_out: int) -> int:
        directory = self._dir(fd, RIGHT_FD_READDIR)
        memory = self._memory()
        buf &= _MASK32
        buf_len &= _MASK32
        self._check(memory, buf, buf_len)
        cookie &= _MASK64
        out = bytearray()
        for next_cookie, name, node in self._fs().listing(directory, cookie):
            encoded = name.encode("utf-8")
            filetype = FILETYPE_DIRECTORY if isinstance(node, Directory) else FILETYPE_REGULAR_FILE
            out += _DIRENT.pack(next_cookie, node.ino, len(encoded), filetype) + encoded
            if len(out) >= buf_len:
                break
        used = min(len(out), buf_len)  # a cut-off last entry tells libc to retry with a bigger buffer
        memory[buf : buf + used] = out[:used]
        self._put_u32(memory, bufused_out, used)
        return ESUCCESS

    # -- paths -----------------------------------------------------------------------

    def path_open(
        self,
        fd: int,
        dirflags: int,
        path: int,
        path_len: int,
        oflags: int,
        rights: int,
        inheriting: int,
        fdflags: int,
        fd_out: int,
    ) -> int:
        entry = self._fd(fd)
        base = self._dir(fd, RIGHT_PATH_OPEN)
        memory = self._memory()
        raw = self._path(memory, path, path_len)
        oflags &= _MASK32
        fdflags &= _MASK32
        rights &= _MASK64
        inheriting &= _MASK64
        if oflags & ~0xF or fdflags & ~_FDFLAGS_ALL:
            return EINVAL
        if oflags & O_CREAT and not entry.rights & RIGHT_PATH_CREATE_FILE:
            return ENOTCAPABLE
        if oflags & O_TRUNC and not entry.rights & RIGHT_PATH_FILESTAT_SET_SIZE:
            return ENOTCAPABLE
        if rights & RIGHT_FD_WRITE and not entry.inheriting & RIGHT_FD_WRITE:
            return ENOTCAPABLE  # write access below /in (wasi-libc never asks: it masks first)
        table = self._table()
        if len(table) >= MAX_OPEN_FDS:
            return EMFILE
        node = self._fs().open(
            base,
            raw,
            create=bool(oflags & O_CREAT),
            exclusive=bool(oflags & O_EXCL),
            directory=bool(oflags & O_DIRECTORY),
            truncate=bool(oflags & O_TRUNC),
        )
        if isinstance(node, Directory):
            if rights & RIGHT_FD_WRITE:
                return EISDIR
            granted = rights & entry.inheriting & (DIR_RIGHTS_OUT if node.writable else DIR_RIGHTS_IN)
        else:
            granted = rights & entry.inheriting & (FILE_RIGHTS_OUT if node.writable else FILE_RIGHTS_IN)
            node.opens += 1
        new_fd = 0
        while new_fd in table:  # the lowest free number, as POSIX allocates
            new_fd += 1
        table[new_fd] = _Descriptor(node, granted, inheriting & entry.inheriting, fdflags)
        try:
            self._put_u32(memory, fd_out, new_fd)
        except _Fault:
            self._close(table.pop(new_fd))
            raise
        return ESUCCESS

    def path_create_directory(self, fd: int, path: int, path_len: int) -> int:
        base = self._dir(fd, RIGHT_PATH_CREATE_DIRECTORY)
        self._fs().mkdir(base, self._path(self._memory(), path, path_len))
        return ESUCCESS

    def path_remove_directory(self, fd: int, path: int, path_len: int) -> int:
        base = self._dir(fd, RIGHT_PATH_REMOVE_DIRECTORY)
        self._fs().rmdir(base, self._path(self._memory(), path, path_len))
        return ESUCCESS

    def path_unlink_file(self, fd: int, path: int, path_len: int) -> int:
        base = self._dir(fd, RIGHT_PATH_UNLINK_FILE)
        self._fs().unlink(base, self._path(self._memory(), path, path_len))
        return ESUCCESS

    def path_rename(self, fd: int, old_path: int, old_len: int, new_fd: int, new_path: int, new_len: int) -> int:
        old_base = self._dir(fd, RIGHT_PATH_RENAME_SOURCE)
        new_base = self._dir(new_fd, RIGHT_PATH_RENAME_TARGET)
        memory = self._memory()
        old = self._path(memory, old_path, old_len)
        new = self._path(memory, new_path, new_len)
        self._fs().rename(old_base, old, new_base, new)
        return ESUCCESS

    def path_filestat_get(self, fd: int, flags: int, path: int, path_len: int, stat_out: int) -> int:
        base = self._dir(fd, RIGHT_PATH_FILESTAT_GET)
        memory = self._memory()
        node = self._fs().lookup(base, self._path(memory, path, path_len))
        self._put(memory, stat_out, _FILESTAT, *self._filestat(node))
        return ESUCCESS

    def path_filestat_set_times(
        self, fd: int, flags: int, path: int, path_len: int, atim: int, mtim: int, fst_flags: int
    ) -> int:
        base = self._dir(fd, RIGHT_PATH_FILESTAT_SET_TIMES)
        node = self._fs().lookup(base, self._path(self._memory(), path, path_len))
        self._set_times(node, atim, mtim, fst_flags)
        return ESUCCESS

    def path_link(
        self, old_fd: int, old_flags: int, old_path: int, old_len: int, new_fd: int, new_path: int, new_len: int
    ) -> int:
        old_base = self._dir(old_fd, RIGHT_PATH_LINK_SOURCE)
        new_base = self._dir(new_fd, RIGHT_PATH_LINK_TARGET)
        memory = self._memory()
        old = self._path(memory, old_path, old_len)
        self._fs().link(old_base, old, new_base, self._path(memory, new_path, new_len))
        return ESUCCESS  # pragma: no cover  (link always raises)

    def path_symlink(self, old_path: int, old_len: int, fd: int, new_path: int, new_len: int) -> int:
        base = self._dir(fd, RIGHT_PATH_SYMLINK)
        memory = self._memory()
        self._path(memory, old_path, old_len)
        self._fs().symlink(base, self._path(memory, new_path, new_len))
        return ESUCCESS  # pragma: no cover  (symlink always raises)

    def path_readlink(self, fd: int, path: int, path_len: int, buf: int, buf_len: int, bufused_out: int) -> int:
        base = self._dir(fd, RIGHT_PATH_READLINK)
        self._fs().readlink(base, self._path(self._memory(), path, path_len))
        return ESUCCESS  # pragma: no cover  (nothing is a link)

    # -- polling -----------------------------------------------------------------------

    def poll_oneoff(self, subscriptions: int, events: int, count: int, nevents_out: int) -> int:
        """Wait for the first subscription: stdio and files are ready at once, clocks sleep.

        A sleep never passes the task's deadline: there the run ends as a timeout. In a
        deterministic run nothing sleeps: the logical clock moves to the earliest deadline
        (a deadline past the task's timeout on that clock ends the run as a timeout at once).
        """
        memory = self._memory()
        subscriptions &= _MASK32
        events &= _MASK32
        count &= _MASK32
        if count == 0:
            return EINVAL
        self._check(memory, subscriptions, _SUBSCRIPTION.size * count)
        self._check(memory, events, _EVENT.size * count)
        ready: list[tuple[int, int, int, int, int]] = []  # userdata, error, type, nbytes, flags
        clocks: list[tuple[int, int]] = []  # (deadline in monotonic ns, or logical ns, userdata)
        logical = self._clock
        now = time.monotonic_ns() if logical is None else logical.now
        for index in range(count):
            userdata, tag, ident, timeout, _precision, flags = _SUBSCRIPTION.unpack_from(
                memory, subscriptions + _SUBSCRIPTION.size * index
            )
            if tag == _EVENTTYPE_CLOCK:
                if ident == _CLOCK_MONOTONIC:
                    deadline = timeout if flags & _SUBCLOCK_ABSTIME else now + timeout
                elif ident == _CLOCK_REALTIME and logical is not None:
                    deadline = timeout - DETERMINISTIC_EPOCH_NS if flags & _SUBCLOCK_ABSTIME else now + timeout
                elif ident == _CLOCK_REALTIME:
                    deadline = now + (timeout - time.time_ns() if flags & _SUBCLOCK_ABSTIME else timeout)
                else:
                    ready.append((userdata, EINVAL, tag, 0, 0))
                    continue
                clocks.append((deadline, userdata))
            elif tag in (_EVENTTYPE_FD_READ, _EVENTTYPE_FD_WRITE):
                ready.append((userdata, *self._poll_fd(ident, tag)))
            else:
                return EINVAL
        if not ready and clocks:
            wake = min(deadline for deadline, _ in clocks)
            if logical is not None:  # no sleep: the logical clock jumps to the wake-up time
                if self._logical_limit is not None and wake > self._logical_limit:
                    raise DeadlineExceeded
                logical.now = now = max(now, wake)
            else:
                self._sleep_until(wake)
                now = time.monotonic_ns()
        ready += [(userdata, 0, _EVENTTYPE_CLOCK, 0, 0) for deadline, userdata in clocks if deadline <= now]
        for index, event in enumerate(ready):
            _EVENT.pack_into(memory, events + _EVENT.size * index, *event)
        self._put_u32(memory, nevents_out, len(ready))
        return ESUCCESS

    def _poll_fd(self, fd: int, tag: int) -> tuple[int, int, int, int]:
        """(error, type, nbytes, flags) of an fd subscription: everything here is always ready."""
        entry = (self._fds if self._fds is not None else self._table()).get(fd)
        if entry is None:
            return (EBADF, tag, 0, 0)
        node = entry.node
        reading = tag == _EVENTTYPE_FD_READ
        if type(node) is int:
            if reading != (node == _STDIN):
                return (EBADF, tag, 0, 0)
            if not reading:
                return (0, tag, self._budget.room(), 0)
            left = len(self._stdin) - self._stdin_pos
            return (0, tag, left, 0 if left else _EVENTRWFLAGS_HANGUP)
        if not isinstance(node, File) or not entry.rights & (RIGHT_FD_READ if reading else RIGHT_FD_WRITE):
            return (EBADF, tag, 0, 0)
        return (0, tag, max(0, len(node.data) - entry.position) if reading else self._budget.room(), 0)

    def _sleep_until(self, wake_ns: int) -> None:
        deadline = self._deadline
        if deadline is not None and wake_ns / 1e9 >= deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            raise DeadlineExceeded
        while (left := wake_ns - time.monotonic_ns()) > 0:
            time.sleep(min(left / 1e9, 3600.0))  # time.sleep overflows past time_t (a u64 timeout can)

    # -- clocks, randomness, scheduling, signals, exit ------------------------------------

    def clock_time_get(self, clock_id: int, precision: int, time_out: int) -> int:
        if self._clock is not None:
            if clock_id not in _CLOCKS:
                return EINVAL
            self._put_u64(self._memory(), time_out, self._clock.read(clock_id))
            return ESUCCESS
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
        if clock_id not in _CLOCKS:
            return EINVAL
        # Python's *_ns clocks report nanoseconds; claiming 1 µs stays honest on
        # platforms whose clocks are coarser than their unit. A logical clock ticks by its step.
        self._put_u64(self._memory(), resolution_out, 1_000 if self._clock is None else DETERMINISTIC_STEP_NS)
        return ESUCCESS

    def random_get(self, buffer: int, length: int) -> int:
        memory = self._memory()
        buffer &= _MASK32
        length &= _MASK32
        self._check(memory, buffer, length)
        memory[buffer : buffer + length] = self._random(length)
        return ESUCCESS

    def sched_yield(self) -> int:
        if hasattr(os, "sched_yield"):
            os.sched_yield()  # let the other processes on this core run, as the task asked
        return ESUCCESS

    def proc_raise(self, signal: int) -> int:
        signal &= _MASK32
        if signal == 0:
            return ESUCCESS  # the null signal: nothing is sent
        if signal > _SIGNAL_MAX:
            return EINVAL
        raise ProcRaise(signal)  # no handlers here: every signal's action is to end the program

    def proc_exit(self, code: int) -> None:
        raise ProcExit(code)

    # -- sockets: none exist -----------------------------------------------------------

    def _not_a_socket(self, fd: int) -> int:
        self._fd(fd)
        return ENOTSOCK

    def sock_accept(self, fd: int, flags: int, fd_out: int) -> int:
        return self._not_a_socket(fd)

    def sock_recv(self, fd: int, ri_data: int, ri_len: int, ri_flags: int, ro_len_out: int, ro_flags_out: int) -> int:
        return self._not_a_socket(fd)

    def sock_send(self, fd: int, si_data: int, si_len: int, si_flags: int, so_len_out: int) -> int:
        return self._not_a_socket(fd)

    def sock_shutdown(self, fd: int, how: int) -> int:
        return self._not_a_socket(fd)
