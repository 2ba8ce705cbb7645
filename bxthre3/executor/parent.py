"""The executor's parent-side handle: a long-lived child process that runs modules (`child.py`), seen from its host.

pywasm3 holds the GIL and cannot be interrupted, so a host that ran modules in its own
process could neither heartbeat nor enforce a timeout while a task computes. The host
therefore runs them in this child, which it can SIGKILL at any moment. The child is
reused across tasks because spawning a Python process per task is too slow, and it
caches module bytes by content hash.

Parent and child talk over two dedicated pipes (never the child's fd 1 or 2, which
wasm3 scribbles on): frames of a 4-byte big-endian length followed by msgpack
(`bxthre3.executor.pipe_framing`). The child runs one job at a time; the parent may queue up to
`depth` behind it. Neither side ever waits for the other to read: the parent's ends are
non-blocking (its loop must keep heartbeating), and the child reads jobs while a result
waits for room, so jobs and results of any size up to the limits cannot deadlock. The
parent side (this module) imports only the standard library, msgpack and light leaves of bxthre3, so
the host never loads wasm3 itself; the child is `python -m bxthre3.executor` (`child.py`).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bxthre3.common import limits
from bxthre3.common.errors import Bxthre3Error
from bxthre3.common.failures import FailureReason
from bxthre3.common.processes import PACKAGE_ROOT as _PACKAGE_ROOT
from bxthre3.common.processes import child_env
from bxthre3.executor.pipe_framing import FrameDecoder, SendBuffer, encode_frame, write_frame_now, write_some
from bxthre3.wasm import choice as engines

MAX_PIPE_FRAME_BYTES = 2 * limits.MAX_FRAME_BYTES
"""Largest frame either side accepts on the pipes, in bytes.

A job carries at most one wire frame's worth of stdin; a result at most
MAX_OUTPUT_BYTES of stdout. A larger length prefix means the stream is corrupt.
"""

CLOSE_TIMEOUT_S = 2.0
"""How long `close` waits for the child to exit on its own before killing it."""

_READS_PER_CALL = 64
"""Most reads one `take_results` call makes: a child writing fast must not hold the host's loop."""


class ExecutorDied(Bxthre3Error):
    """The executor child is gone (killed, crashed) or sent something unreadable."""


@dataclass(frozen=True, slots=True)
class ExecJob:
    """One module run to perform. `env` is exactly the module's environment."""

    job_id: int
    module_sha: str
    """Hex sha256 of the module; the child verifies the file against it."""
    module_path: str
    """Where the child reads the module on a cache miss (made absolute on submit)."""
    args: tuple[str, ...]
    stdin: bytes
    env: dict[str, str]
    max_stdout: int = limits.MAX_OUTPUT_BYTES
    program_name: str = "task"
    """argv[0] as the module sees it; hosts pass the task id."""
    memory_limit_bytes: int = 0
    """Cap on the module's linear memory (0: none); outgrowing it fails with memory_limit."""
    timeout_s: float = 0.0
    """The task's timeout (0: none); engines that can interrupt a run stop it themselves."""
    files: dict[str, bytes] = field(default_factory=dict)
    """The task's read-only `/in` directory: relative path ('/'-separated) -> contents."""
    deterministic: bool = False
    """Run with logical clocks and random bytes seeded from `program_name` (a verified task)."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "program_name": self.program_name,
            "memory_limit_bytes": self.memory_limit_bytes,
            "job_id": self.job_id,
            "module_sha": self.module_sha,
            "module_path": self.module_path if os.path.isabs(self.module_path) else os.path.abspath(self.module_path),
            "args": list(self.args),
            "stdin": self.stdin,
            "env": self.env,
            "max_stdout": self.max_stdout,
            "timeout_s": self.timeout_s,
            "files": self.files,
            "deterministic": self.deterministic,
        }

    @classmethod
    def from_wire(cls, data: Any) -> ExecJob:
        try:
            job = cls(
                job_id=data["job_id"],
                module_sha=data["module_sha"],
                module_path=data["module_path"],
                args=tuple(data["args"]),
                stdin=data["stdin"],
                env=dict(data["env"]),
                max_stdout=data["max_stdout"],
                program_name=data.get("program_name", "task"),
                memory_limit_bytes=data.get("memory_limit_bytes", 0),
                timeout_s=float(data.get("timeout_s", 0.0)),
                files=dict(data.get("files", {})),
                deterministic=data.get("deterministic", False),
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"malformed job: {exc!r}") from exc
        _check_types(
            (job.job_id, int),
            (job.module_sha, str),
            (job.module_path, str),
            (job.stdin, bytes),
            (job.max_stdout, int),
            (job.program_name, str),
            (job.memory_limit_bytes, int),
            (job.deterministic, bool),
        )
        if not all(isinstance(a, str) for a in job.args) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in job.env.items()
        ):
            raise ValueError("malformed job: args and env must be strings")
        if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in job.files.items()):
            raise ValueError("malformed job: files must map names to bytes")
        return job


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How one job ended; mirrors :class:`bxthre3.wasm.contract.RunResult` plus the job id."""

    job_id: int
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    reason: FailureReason | None
    error: str
    duration: float
    retired: bool = field(default=False, compare=False)
    """The child exited after this job (it had grown too large); already restarted."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Every regular file the module left under `/out`: relative path ('/'-separated) -> contents."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "job_id": self.job_id,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "reason": None if self.reason is None else self.reason.value,
            "error": self.error,
            "duration": self.duration,
            "retired": self.retired,
        }

    @classmethod
    def from_wire(cls, data: Any) -> ExecResult:
        try:
            reason = None if data["reason"] is None else FailureReason(data["reason"])
            result = cls(
                job_id=data["job_id"],
                exit_code=data["exit_code"],
                stdout=data["stdout"],
                stderr=data["stderr"],
                reason=reason,
                error=data["error"],
                duration=float(data["duration"]),
                retired=bool(data["retired"]),
                files=dict(data.get("files", {})),
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"malformed result: {exc!r}") from exc
        _check_types(
            (result.job_id, int),
            (result.stdout, bytes),
            (result.stderr, bytes),
            (result.error, str),
        )
        if result.exit_code is not None and not isinstance(result.exit_code, int):
            raise ValueError("malformed result: exit_code")
        if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in result.files.items()):
            raise ValueError("malformed result: files must map names to bytes")
        return result


def _check_types(*pairs: tuple[object, type]) -> None:
    for value, expected in pairs:
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValueError(f"malformed frame: expected {expected.__name__}, got {value!r:.40}")


# -- pipes (both sides) ----------------------------------------------------------


PIPE_BUFFER_BYTES = limits.MiB
"""Capacity asked for each pipe (Linux's default is 64 KiB; 1 MiB is what an unprivileged
process may set): a large job or result crosses in 16 times fewer writes and loop turns."""


def _enlarge_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or over /proc/sys/fs/pipe-max-size
        pass


# -- parent side -----------------------------------------------------------------


class Executor:
    """Parent-side handle of one executor child.

    Typical use in a host loop: `start()`, `submit()` a job, register `fileno()` in a
    poller for reading and, while `wants_write`, `write_fileno()` for writing; call
    `take_results()` when the first is readable and `flush()` when the second is
    writable. Neither ever blocks, whatever the size of jobs and results, so the loop
    keeps heartbeating while megabytes cross the pipes. On a timeout, `kill()` then
    `start()`. `fileno()` keeps the same number across restarts (the pipe behind it is
    swapped with dup2), so a poll()-based poller such as zmq.Poller can register it once;
    an epoll-based selector must re-register it after `start()`. `write_fileno()` changes
    with every start.

    `read_result()` is the blocking convenience for scripts and tests.
    """

    def __init__(
        self,
        *,
        log_path: str | os.PathLike[str] | None = None,
        address_space_mb: int = 0,
        engine: str = engines.WASM3,
        depth: int = 1,
    ) -> None:
        self._log_path = log_path
        self.depth = max(1, depth)
        """Most jobs in flight at once (1: submit the next only after reading a result)."""
        self.engine = engine
        """Which engine the child runs modules in (see :mod:`bxthre3.wasm.choice`)."""
        self._address_space_mb = address_space_mb
        """Extra virtual memory the child may map beyond its start-up size (0: unlimited)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._jobs_fd: int | None = None
        """Write end of the job pipe (non-blocking); a new one with every child."""
        self._results_fd: int | None = None
        """Stable fd number handed out by fileno(); open from the first start to close."""
        self._parked_write_fd: int | None = None
        """Write end of the idle pipe behind `_results_fd` while no child runs."""
        self._in_flight: deque[ExecJob] = deque()
        """Jobs submitted to the child and not answered yet, oldest (the running one) first."""
        self._outbox = SendBuffer()
        """Job frames (or their tails) the job pipe has not taken yet."""
        self._decoder = FrameDecoder(MAX_PIPE_FRAME_BYTES)
        """The result being received, however many reads it takes."""
        self._eof: BaseException | None = None
        """The child's results pipe ended (or broke) right after results were returned; raised next."""
        self._ready: deque[ExecResult] = deque()
        """Results `read_result` took from the pipe and has not returned yet."""

    @property
    def pid(self) -> int | None:
        """The child's process id, or None when no child is running."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Spawn the child unless one is already running; cheap to call after `kill`.

        The child asks the kernel to SIGKILL it when the thread that spawned it exits
        (PR_SET_PDEATHSIG), so a host killed with -9 leaves no module spinning: call
        `start` from a long-lived thread.
        """
        if self._process is not None and self._process.poll() is None:
            return
        self._reap()
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        log = open(self._log_path, "ab") if self._log_path is not None else subprocess.DEVNULL
        try:
            env = child_env()
            env.pop("BXTHRE3_TOKEN", None)  # the WebAssembly side never needs it (defence in depth)
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bxthre3.executor",
                    str(jobs_read),
                    str(results_write),
                    str(os.getpid()),
                    str(self._address_space_mb),
                    self.engine,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(jobs_read, results_write),
                cwd=_PACKAGE_ROOT,
                env=env,
            )
        except BaseException:
            for fd in (jobs_read, jobs_write, results_read, results_write):
                os.close(fd)
            raise
        finally:
            if not isinstance(log, int):  # a file, not subprocess.DEVNULL
                log.close()
        os.close(jobs_read)
        os.close(results_write)
        for fd in (jobs_write, results_read):  # our ends only: the child's ends stay blocking
            _enlarge_pipe(fd)
            os.set_blocking(fd, False)
        self._jobs_fd = jobs_write
        self._install_results_fd(results_read)

    def fileno(self) -> int:
        """The fd that becomes readable when a result (or the child's death) is ready."""
        if self._results_fd is None:
            raise ExecutorDied("executor not started")
        return self._results_fd

    def write_fileno(self) -> int:
        """The fd to watch for writability while `wants_write` (it changes with every start)."""
        if self._jobs_fd is None:
            raise ExecutorDied("executor not running")
        return self._jobs_fd

    @property
    def wants_write(self) -> bool:
        """Job bytes wait for room in the pipe: call `flush()` once `write_fileno()` is writable."""
        return bool(self._outbox)

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not answered yet: the running one and those queued behind it."""
        return len(self._in_flight)

    def holds(self, job_id: int) -> bool:
        """Whether the job was submitted and not answered yet (a job is lost when its child dies or retires)."""
        return any(job.job_id == job_id for job in self._in_flight)

    def submit(self, job: ExecJob) -> None:
        """Hand a job to the child; it runs after those already submitted (at most `depth` in flight).

        Never blocks: what the pipe does not take now waits for `flush()`. Queuing the next
        job in the pipe lets the child start it the moment the current one ends, instead of
        a parent round trip later.
        """
        if self._process is None or self._jobs_fd is None:
            raise ExecutorDied("executor not running")
        if len(self._in_flight) >= self.depth:
            raise RuntimeError(f"{len(self._in_flight)} job(s) already in flight in this executor")
        if self._eof is not None and self._in_flight:
            self._outbox.add_frame(*encode_frame(job.to_wire()))  # never written: the job ahead reports the death
            self._in_flight.append(job)
            return
        if not self._in_flight and (self._eof is not None or self._process.poll() is not None):
            # It died idle (or right after its last result): it owes nothing, so this job is not its
            # victim. A fresh child takes it instead of the job failing with executor_crashed.
            self.kill()
            self.start()
        self._send(job)

    def _send(self, job: ExecJob) -> None:
        assert self._jobs_fd is not None
        header, body = encode_frame(job.to_wire())
        self._in_flight.append(job)
        try:
            write_frame_now(self._jobs_fd, header, body, self._outbox)
        except OSError as exc:  # EPIPE: the child is gone
            raise ExecutorDied(self._bury(exc)) from exc

    def flush(self) -> bool:
        """Write what the job pipe takes now; True when nothing waits. Raises ExecutorDied."""
        if self._jobs_fd is None:
            return not self._outbox
        return self._write()

    def _write(self) -> bool:
        assert self._jobs_fd is not None
        try:
            return write_some(self._jobs_fd, self._outbox)
        except OSError as exc:  # EPIPE: the child is gone
            raise ExecutorDied(self._bury(exc)) from exc

    def take_results(self) -> list[ExecResult]:
        """Read what the child wrote so far and return the results it completes, oldest first.

        Never blocks: call when `fileno()` is readable; a result larger than the pipe comes
        over several calls. Raises ExecutorDied when the child died (its pipe reached EOF)
        or sent garbage; then `kill()` (or just `start()`) before the next job.
        """
        if self._process is None or self._results_fd is None:
            raise ExecutorDied("executor not running")
        if self._eof is not None:
            raise ExecutorDied(self._bury(self._eof))
        frames: list[Any] = []
        ended: BaseException | None = None
        try:
            for _ in range(_READS_PER_CALL):  # bounded: a child writing fast must not hold the loop
                size = self._decoder.read_size()
                chunk = os.read(self._results_fd, size)
                if not chunk:
                    ended = EOFError(
                        f"stream ended inside a frame ({self._decoder.buffered} bytes in)"
                        if self._decoder.buffered
                        else "no result"
                    )
                    break
                frames += self._decoder.feed(chunk)
                if len(chunk) < size:
                    break  # drained for now
        except BlockingIOError:
            pass
        except (ValueError, OSError) as exc:
            ended = exc
        results: list[ExecResult] = []
        for frame in frames:
            try:
                result = ExecResult.from_wire(frame)
                expected = self._in_flight[0].job_id if self._in_flight else None
                if result.job_id != expected:
                    raise ValueError(f"result for job {result.job_id}, expected {expected}")
            except ValueError as exc:
                raise ExecutorDied(self._bury(exc)) from exc
            self._in_flight.popleft()
            results.append(result)
            if result.retired:
                self._replace_retired()
                return results  # the retired child wrote nothing after it; its EOF is expected
        if ended is not None:
            if not results:
                raise ExecutorDied(self._bury(ended))
            self._eof = ended  # report these first; the next call (the fd stays readable) buries it
        return results

    def _replace_retired(self) -> None:
        """The child exited after its last result (it had grown too large): start another, resend the queue."""
        queued = list(self._in_flight)  # written (maybe in part) to the retired child, never read by it
        assert self._process is not None
        try:
            self._process.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._reap()
        self.start()
        try:
            for job in queued:
                self._send(job)
        except ExecutorDied:
            self.kill()  # the caller sees no job in flight and submits again

    def read_result(self, timeout: float | None = None) -> ExecResult:
        """Wait for the result of the oldest job in flight (writing queued job bytes meanwhile).

        For scripts and tests; a loop that must stay responsive uses `take_results`.
        Raises ExecutorDied as `take_results` does, TimeoutError after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._ready:
                return self._ready.popleft()
            self._ready.extend(self.take_results())
            if self._ready:
                continue
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if wait == 0.0:
                raise TimeoutError(f"no result within {timeout} s")
            write = [self._jobs_fd] if self.wants_write and self._jobs_fd is not None else []
            _, writable, _ = select.select([self.fileno()], write, [], wait)
            if writable:
                self.flush()

    def kill(self) -> None:
        """SIGKILL the child and reap it. Safe to call twice, and when already dead."""
        if self._process is not None:
            try:
                self._process.kill()
            except ProcessLookupError:
                pass
        self._reap()

    def close(self) -> None:
        """Ask the child to exit (EOF on its job pipe), kill it if it lingers, free fds."""
        if self._process is not None and self._jobs_fd is not None:
            os.close(self._jobs_fd)
            self._jobs_fd = None
            try:
                self._process.wait(timeout=CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        for fd in (self._results_fd, self._parked_write_fd):
            if fd is not None:
                os.close(fd)
        self._results_fd = self._parked_write_fd = None

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _bury(self, exc: BaseException) -> str:
        """Kill and reap a child that died or garbled its pipe; say what happened."""
        process = self._process
        pid = self.pid
        if process is not None and isinstance(exc, (EOFError, BrokenPipeError)):
            try:  # EOF comes a moment before the exit status: let it arrive
                process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        code = None if process is None else process.returncode
        if code is None:
            status = ""
        elif code < 0:
            status = f" (killed by signal {-code})"
        else:
            status = f" (exit code {code})"
        return f"executor {pid} died{status}: {exc}"

    def _reap(self) -> None:
        """Forget the child (already dead or killed) and park the results fd."""
        if self._process is not None:
            self._process.wait()
            self._process = None
        if self._jobs_fd is not None:
            os.close(self._jobs_fd)
            self._jobs_fd = None
        self._in_flight.clear()
        self._ready.clear()
        self._outbox.clear()
        self._decoder = FrameDecoder(MAX_PIPE_FRAME_BYTES)
        self._eof = None
        if self._results_fd is not None and self._parked_write_fd is None:
            # Swap in an empty pipe whose write end we hold: never readable, so a
            # poller that still watches fileno() does not spin on the dead child's EOF.
            idle_read, self._parked_write_fd = os.pipe()
            self._install_results_fd(idle_read)

    def _install_results_fd(self, new_fd: int) -> None:
        """Put `new_fd` behind the stable results fd number (or make it that number)."""
        if self._results_fd is None:
            self._results_fd = new_fd
        else:
            os.dup2(new_fd, self._results_fd, inheritable=False)
            os.close(new_fd)
        if self._process is not None and self._parked_write_fd is not None:
            os.close(self._parked_write_fd)
            self._parked_write_fd = None
