"""The executor child: runs one module at a time for its host (`python -m bxthre3.executor`).

This is the only process that imports an engine (through :func:`bxthre3.wasm.choice.runner`); the host
drives it through :class:`bxthre3.executor.parent.Executor`, which never imports this module. It reads
jobs from one pipe and writes results to another (frames of :mod:`bxthre3.executor.pipe_framing`), caches
prepared module bytes by content hash, caps its own address space and retires past a resident size.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from bxthre3.common import limits
from bxthre3.common.digests import sha256_hex
from bxthre3.common.errors import ModuleError
from bxthre3.common.failures import FailureReason
from bxthre3.common.processes import die_with_parent
from bxthre3.executor.parent import MAX_PIPE_FRAME_BYTES, ExecJob, ExecResult
from bxthre3.executor.pipe_framing import FrameDecoder, SendBuffer, encode_frame, write_frame_now, write_some
from bxthre3.wasm import choice as engines

MODULE_CACHE_ENTRIES = 64
"""Most distinct modules the child keeps in memory."""

MODULE_CACHE_BYTES = 256 * limits.MiB
"""Most module bytes the child keeps in memory."""

RETIRE_RSS_BYTES = 512 * limits.MiB
"""Resident size past which the child retires after its current job, in bytes.

pywasm3 leaks a little per run (and much more if its private layout ever changes and
the engine cannot free runtimes); a fresh child costs one process start. The child
reads an override from the environment variable BXTHRE3_EXECUTOR_RETIRE_RSS_BYTES.
"""


class _ModuleUnavailable(Exception):
    """The module file is missing, unreadable, too big or not what its sha says."""


class _ModuleCache:
    """Module bytes by sha256, least recently used evicted first.

    Returning the same bytes object for every run of a module also matters to the
    engine: pywasm3 keeps a reference to the bytes it parses.
    """

    def __init__(
        self, max_entries: int = MODULE_CACHE_ENTRIES, max_bytes: int = MODULE_CACHE_BYTES, engine: str = engines.WASM3
    ) -> None:
        self.engine = engine
        """The engine the prepared bytes are checked for (wasm.sandbox.prepare_module)."""
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes

    def get(self, sha: str, path: str, memory_limit_bytes: int = 0) -> bytes:
        """The module's bytes as the engine runs them: normalised, and memory-capped when a limit is given.

        Prepared once per (module, limit) and cached (the decode is pure Python).
        Raises MemoryLimitError when its initial memory is already over the limit and
        ModuleError when it cannot be rewritten or this engine cannot run it.
        """
        key = f"{sha}/{memory_limit_bytes}"
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
            return data
        try:
            with open(path, "rb") as file:
                data = file.read(limits.MAX_MODULE_BYTES + 1)
        except OSError as exc:
            raise _ModuleUnavailable(f"cannot read module {path}: {exc.strerror}") from exc
        if len(data) > limits.MAX_MODULE_BYTES:
            raise _ModuleUnavailable(f"module {path} exceeds {limits.MAX_MODULE_BYTES} bytes")
        actual = sha256_hex(data)
        if actual != sha.lower():
            raise _ModuleUnavailable(f"module {path} has sha256 {actual}, expected {sha}")
        from bxthre3.wasm.sandbox import prepare_module  # the child's business: the host never loads it

        # Both engines run the same normalised bytes (no custom sections, canonical LEB128).
        data = prepare_module(data, engine=self.engine, limit_bytes=memory_limit_bytes, name=os.path.basename(path))
        self._entries[key] = data
        self._bytes += len(data)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)
        return data


def _limit_address_space(extra_mb: int, engine: str = engines.WASM3) -> None:
    """Cap what this process may map at what it maps now plus ``extra_mb`` (and guard pages' room).

    RLIMIT_AS counts all of the process's mappings (the Python runtime alone maps far
    more than it has resident), so the cap is measured from the current size rather
    than set absolutely. Beyond it, mmap/malloc fail: Wasm3 cannot grow memory and
    Python raises MemoryError, both reported as memory_limit. Nothing escapes the cap.

    wasmtime's guard pages reserve 4 GiB of address space per instance (none of it
    writable until the module's memory grows into it), which a cap at the RAM budget
    cannot hold. Where the kernel bounds writable memory instead (RLIMIT_DATA: private
    writable mappings, Linux 4.7+), that bound takes the budget and the address-space
    cap grows by the guard pages' room: a runaway still cannot write more than the
    budget. Where it does not, the cap stays tight and the engine, finding no room,
    reserves memory at the memory limit with bounds checks instead (slower, as safe).
    """
    extra = extra_mb * limits.MiB
    if engine == engines.WASMTIME and _limit_writable(extra):
        from bxthre3.wasm.wasmtime import GUARD_PAGE_ROOM_BYTES  # this child runs wasmtime: already loaded

        extra += GUARD_PAGE_ROOM_BYTES
    try:
        import resource

        cap = _status_bytes("VmSize") + extra
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (OSError, ValueError, IndexError, ImportError) as exc:
        print(f"executor: cannot limit address space: {exc}", file=sys.stderr)


def _limit_writable(extra: int) -> bool:
    """Cap private writable memory (RLIMIT_DATA) at what is mapped now plus `extra`; True when enforced.

    Linux before 4.7 applies RLIMIT_DATA to the heap break only, where malloc's mmap and
    wasmtime's memory escape it: a mapping bigger than the headroom, which the limit must
    refuse, tells. Not enforced, the old limit is put back and False returned.
    """
    try:
        import mmap
        import resource

        before = resource.getrlimit(resource.RLIMIT_DATA)
        cap = _status_bytes("VmData") + extra
        cap = min([cap] + [limit for limit in before if limit != resource.RLIM_INFINITY])  # never raised
        resource.setrlimit(resource.RLIMIT_DATA, (cap, before[1]))  # the hard limit stays: the probe may undo it
    except (OSError, ValueError, IndexError, ImportError) as exc:
        print(f"executor: cannot limit writable memory: {exc}", file=sys.stderr)
        return False
    flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20) | getattr(mmap, "MAP_NORESERVE", 0)
    try:
        probe = mmap.mmap(-1, extra + _PROBE_SLACK_BYTES, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError:
        return True  # refused: the limit holds for mappings too
    probe.close()
    try:
        resource.setrlimit(resource.RLIMIT_DATA, before)
    except (OSError, ValueError):
        pass
    return False


_PROBE_SLACK_BYTES = 64 * limits.MiB
"""How far past the writable headroom the probe mapping reaches: more than anything mapped meanwhile."""


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmSize: all mappings, VmData: private writable ones), in bytes."""
    with open("/proc/self/status", "rb") as file:
        for line in file:
            if line.startswith(field.encode() + b":"):
                return int(line.split()[1]) * 1024  # kB
    raise ValueError(f"no {field} in /proc/self/status")


def _peak_resident_bytes() -> int:
    """The most this process has had resident; 0 when unknown (then it never retires).

    The peak, not the current size: one getrusage call per job instead of reading
    /proc (a tenth of a trivial job's cost), and a child whose memory once grew that
    far has fragmented or leaked its heap, so retiring it is right either way.
    """
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux and Android
    except (ImportError, OSError, ValueError):
        return 0


def _current_resident_bytes() -> int:
    """What this process has resident now (/proc/self/statm), 0 when unknown (then it never retires)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _resident_probe(retire_rss: int) -> Callable[[], int]:
    """How this child measures itself against `retire_rss`: its peak, unless that peak was inherited.

    Linux carries a parent's high-water RSS into a child it forks (and through exec): an executor
    started by a process that once held more than the limit (a test runner, an embedding program)
    reported that peak from its first job and retired after every job, ~100x slower. A child that
    starts above half the limit cannot have grown there itself (it holds ~30 MB), so it reads its
    current size instead (one small /proc read per job).
    """
    if _peak_resident_bytes() <= retire_rss // 2:
        return _peak_resident_bytes
    return _current_resident_bytes


def _run_job(job: ExecJob, cache: _ModuleCache, run_module: Callable[..., Any]) -> ExecResult:
    from bxthre3.wasm.sandbox import MemoryLimitError

    def failed(reason: FailureReason, error: str) -> ExecResult:
        return ExecResult(job.job_id, None, b"", b"", reason, error, 0.0)

    try:
        wasm = cache.get(job.module_sha, job.module_path, job.memory_limit_bytes)
    except _ModuleUnavailable as exc:
        # Host-side trouble (a bad cache file), not the module's fault: retryable.
        return failed(FailureReason.INTERNAL, str(exc))
    except MemoryLimitError as exc:
        return failed(FailureReason.MEMORY_LIMIT, exc.message)
    except ModuleError as exc:
        return failed(FailureReason.INVALID_MODULE, f"invalid module: {exc.message}")
    try:
        run = run_module(
            wasm,
            args=job.args,
            stdin=job.stdin,
            env=job.env,
            max_stdout=job.max_stdout,
            program_name=job.program_name,
            memory_limit_bytes=job.memory_limit_bytes or None,
            timeout_s=job.timeout_s or None,
            files=job.files,
            deterministic=job.deterministic,
        )
    except Exception as exc:  # run_module must not raise; if it does, that is our bug
        return failed(FailureReason.INTERNAL, f"engine error: {exc!r}")
    return ExecResult(
        job.job_id, run.exit_code, run.stdout, run.stderr, run.reason, run.error, run.duration, files=run.files
    )


class _ChildPipes:
    """The child's ends of the two pipes.

    Sending a result never waits on a parent that is itself writing: while the result
    pipe is full, the child keeps reading the job pipe (jobs pile up in memory, at most
    the parent's pipeline depth of them), so the parent's write always makes progress
    and it gets round to reading. Blocking writes both ways deadlocked as soon as a job
    and a result were both larger than a pipe.
    """

    def __init__(self, jobs_fd: int, results_fd: int) -> None:
        self.jobs_fd = jobs_fd
        self.results_fd = results_fd
        os.set_blocking(results_fd, False)  # a full pipe must not stop us reading jobs
        self.decoder = FrameDecoder(MAX_PIPE_FRAME_BYTES)
        self.jobs: deque[Any] = deque()
        """Job frames received and not run yet."""
        self.jobs_closed = False

    def next_job(self) -> Any:
        """The next job frame, waiting for it; None once the parent closed the pipe between frames."""
        while not self.jobs:
            if self.jobs_closed or not self._read_jobs():
                if self.decoder.buffered:
                    raise EOFError(f"stream ended inside a frame ({self.decoder.buffered} bytes in)")
                return None
        return self.jobs.popleft()

    def _read_jobs(self) -> bool:
        """One read of the job pipe (blocking); False at EOF. Raises ValueError on garbage."""
        chunk = os.read(self.jobs_fd, self.decoder.read_size())
        if not chunk:
            self.jobs_closed = True
            return False
        self.jobs.extend(self.decoder.feed(chunk))
        return True

    def send(self, payload: Any) -> bool:
        """Write one result frame; False when the parent is gone or closed the job pipe meanwhile."""
        out = SendBuffer()
        header, body = encode_frame(payload)
        try:
            if write_frame_now(self.results_fd, header, body, out):
                return True
        except BrokenPipeError:
            return False
        poller: select.poll | None = None
        while True:
            try:
                if write_some(self.results_fd, out):
                    return True
            except BrokenPipeError:
                return False
            if poller is None:
                poller = select.poll()
                poller.register(self.results_fd, select.POLLOUT)
                if not self.jobs_closed:
                    poller.register(self.jobs_fd, select.POLLIN)
            for fd, _ in poller.poll():
                if fd == self.jobs_fd and not self._read_jobs():
                    return False  # the parent is closing: it reads no more results


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry point: `python -m bxthre3.executor JOBS_FD RESULTS_FD PARENT_PID [MB [ENGINE]]`."""
    args = sys.argv[1:] if argv is None else list(argv)
    defaults = ["0", engines.WASM3]
    if 3 <= len(args) < 5:
        args += defaults[len(args) - 3 :]
    if len(args) != 5 or args[4] not in (engines.WASM3, engines.WASMTIME):
        print(
            "usage: python -m bxthre3.executor JOBS_FD RESULTS_FD PARENT_PID [ADDRESS_SPACE_MB [wasm3|wasmtime]]",
            file=sys.stderr,
        )
        return 2
    jobs_fd, results_fd, parent_pid, address_space_mb = (int(a) for a in args[:4])
    # The parent owns our lifetime: Ctrl-C in its terminal must not kill a job midway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    try:  # import the engine now, not during the first job
        run_module = engines.runner(args[4])
    except ImportError as exc:
        print(f"executor: cannot load engine {args[4]}: {exc}", file=sys.stderr)
        return 4

    if address_space_mb > 0:
        _limit_address_space(address_space_mb, args[4])
    cache = _ModuleCache(engine=args[4])
    retire_rss = int(os.environ.get("BXTHRE3_EXECUTOR_RETIRE_RSS_BYTES") or RETIRE_RSS_BYTES)
    resident = _resident_probe(retire_rss)
    pipes = _ChildPipes(jobs_fd, results_fd)
    while True:
        try:
            frame = pipes.next_job()
        except (EOFError, ValueError) as exc:
            print(f"executor: bad job frame: {exc}", file=sys.stderr)
            return 3
        if frame is None:  # the parent closed the pipe: a polite shutdown
            return 0
        try:
            job = ExecJob.from_wire(frame)
        except ValueError as exc:
            print(f"executor: {exc}", file=sys.stderr)
            return 3
        result = _run_job(job, cache, run_module)
        retire = resident() > retire_rss
        if retire:
            result = dataclasses.replace(result, retired=True)
        try:
            if not pipes.send(result.to_wire()):
                return 0  # the parent is gone or shutting down
        except ValueError as exc:
            print(f"executor: bad job frame: {exc}", file=sys.stderr)
            return 3
        if retire:
            return 0
