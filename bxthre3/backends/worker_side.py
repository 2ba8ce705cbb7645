"""One attempt of one task, run inside a Dask (or Ray) worker through Bxthre3's own executor.

This is what a host does with an assignment (`host/session.py` `_launch`, `host/slots.py` deadlines), minus
the controller protocol: the worker's task function calls :func:`run_attempt`, which builds the task's
stdin and `/in` files from its upstream results, runs the module in a long-lived executor child of this
worker thread (Wasm3 cannot be interrupted: a task past its timeout has its child SIGKILLed; wasmtime stops
itself at its epoch deadline, with the same half-second grace a host gives it), and returns the outcome as
a plain dict. It never raises for a task's own failure: the engine around it must not retry anything by
itself, because which failures are retried is Bxthre3's decision (`FailureReason.retryable` and the DAG's
`retries`), taken by the driver in the user's process.

Modules are not arguments: they reach each worker once, by content hash, into the device's module cache
(`host/module_cache.py`, the one hosts share), before any task needs them (for Dask, a worker plugin:
`dask_backend.ModulesPlugin`). A task only names its module's sha256.

Nothing of Dask or Ray is imported here.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from ..common import limits
from ..common.failures import FailureReason
from ..dag.spec import InputKind, TaskInput
from ..executor.parent import ExecJob, ExecResult, Executor, ExecutorDied
from ..host.module_cache import ModuleCache, default_cache_dir
from ..wasm import choice as engines
from ..wasm.abi import INPUT_SIZES_ENV, TASK_ID_ENV
from .driver import AttemptSpec

EXECUTOR_OVERHEAD_MB = 512
"""Address space an executor may map beyond the module's memory cap (as `host.session.EXECUTOR_OVERHEAD_MB`)."""

STOP_POLL_S = 0.1
"""How often a running attempt looks at `should_stop` (the engine's cancellation)."""

INTERRUPT_GRACE_S = 0.5
"""Past a timeout, how long wasmtime gets to stop a run itself before its child is killed (as a host)."""


class _MissingInput(Exception):
    pass


_local = threading.local()
_cache_lock = threading.Lock()
_cache: ModuleCache | None = None
_job_ids = itertools.count(1)


def module_cache() -> ModuleCache:
    """This process's view of the device's module cache (one per process, shared by its threads)."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = ModuleCache(default_cache_dir())
        return _cache


def store_modules(modules: dict[str, bytes]) -> None:
    """Put modules into the cache (a worker plugin's setup calls this once per worker)."""
    cache = module_cache()
    for sha, data in modules.items():
        if not cache.has(sha):
            cache.put(sha, data)


def _executor(engine: str, ram_mb: int) -> Executor:
    """This thread's executor (the child dies with the thread that started it: PR_SET_PDEATHSIG)."""
    key = (engine, ram_mb)
    current: Executor | None = getattr(_local, "executor", None)
    if current is not None and getattr(_local, "key", None) != key:
        current.close()
        current = None
    if current is None:
        current = Executor(address_space_mb=ram_mb + EXECUTOR_OVERHEAD_MB, engine=engine, depth=1)
        _local.executor, _local.key = current, key
    current.start()
    return current


def _input_bytes(item: TaskInput, upstreams: dict[str, dict[str, Any]]) -> bytes:
    if item.kind is not InputKind.OUTPUT:
        return item.data
    upstream = upstreams[item.value]
    if not item.output:
        return upstream["stdout"]
    data = upstream["files"].get(item.output)
    if data is None:
        written = sorted(upstream["files"])
        wrote = f"it wrote {', '.join(repr(n) for n in written[:5])}" if written else "it wrote no files"
        raise _MissingInput(
            f"input {item.text!r}: task {item.value!r} wrote no file {item.output!r} under /out ({wrote})"
        )
    return data


def failed_outcome(reason: FailureReason, error: str, duration: float = 0.0, stderr: bytes = b"") -> dict[str, Any]:
    """An attempt's outcome that is a failure with no output (the shape `run_attempt` returns): the worker's
    own refusals here, and what the engines' loops make up for an attempt that came back without a value."""
    return {
        "reason": reason.value, "error": error, "exit_code": None, "stdout": b"", "stderr": stderr,
        "files": {}, "duration": duration,
    }  # fmt: skip


def run_attempt(
    spec: AttemptSpec, *upstream_results: dict[str, Any], should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Run one attempt; the outcome as a dict (reason None on success). Never raises for the task's failure.

    `should_stop` is asked every STOP_POLL_S while the module runs: True (the engine cancelled the task)
    kills the executor child, which is the only way to stop a Wasm3 run."""
    upstreams = dict(zip(spec.upstream_ids, upstream_results, strict=True))
    try:
        parts = [_input_bytes(item, upstreams) for item in spec.stdin_inputs]
        files = {f.path: _input_bytes(f.source, upstreams) for f in spec.files}
    except _MissingInput as exc:
        return failed_outcome(FailureReason.MISSING_INPUT, str(exc))
    size = sum(map(len, parts)) + sum(map(len, files.values()))
    if size > limits.MAX_TASK_INPUT_BYTES:
        what = "stdin and /in files add" if files else "inputs add"
        return failed_outcome(
            FailureReason.INPUT_LIMIT,
            f"{what} up to {size:,} bytes, over the {limits.MAX_TASK_INPUT_BYTES:,}-byte limit",
        )
    cache = module_cache()
    if not cache.has(spec.module_sha):  # retryable, as on a host: another worker may have it
        return failed_outcome(FailureReason.INTERNAL, "module missing from this worker's cache")
    job = ExecJob(
        job_id=next(_job_ids),
        module_sha=spec.module_sha,
        module_path=cache.path_text(spec.module_sha),
        args=spec.args,
        stdin=b"".join(parts),
        env={INPUT_SIZES_ENV: ",".join(str(len(p)) for p in parts), TASK_ID_ENV: spec.task_id},
        program_name=spec.task_id,
        memory_limit_bytes=spec.ram_mb * limits.MiB,
        timeout_s=spec.timeout_s,
        files=files,
        deterministic=spec.deterministic,
    )
    executor = _executor(spec.engine, spec.ram_mb)
    grace = INTERRUPT_GRACE_S if spec.engine == engines.WASMTIME else 0.0
    started = time.monotonic()
    deadline = started + spec.timeout_s + grace
    try:
        executor.submit(job)
        while True:
            try:
                result: ExecResult = executor.read_result(
                    timeout=max(0.0, min(STOP_POLL_S, deadline - time.monotonic()))
                )
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    executor.kill()  # Wasm3 cannot be interrupted: the child goes, the next attempt starts another
                    error = f"killed after the {spec.timeout_s:g}s timeout"
                    return failed_outcome(FailureReason.TIMEOUT, error, time.monotonic() - started)
                if should_stop is not None and should_stop():
                    executor.kill()
                    return failed_outcome(FailureReason.INTERNAL, "cancelled", time.monotonic() - started)
    except ExecutorDied as exc:
        executor.kill()
        return failed_outcome(FailureReason.EXECUTOR_CRASHED, str(exc), time.monotonic() - started)
    except Exception as exc:  # a bug or a garbled pipe: the child goes, so no job is left in flight for the next
        executor.kill()
        return failed_outcome(FailureReason.INTERNAL, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    except BaseException:  # the engine interrupting the task (Ray's cancel raises KeyboardInterrupt here)
        executor.kill()
        raise
    ok = result.reason is None
    return {
        "reason": None if ok else result.reason.value,  # type: ignore[union-attr]
        "error": result.error,
        "exit_code": result.exit_code,
        "stdout": result.stdout if ok else b"",
        "stderr": result.stderr,
        "files": result.files if ok else {},
        "duration": result.duration,
    }


def probe_worker(engine: str) -> dict[str, Any]:
    """Run on every worker (or node) before the DAG: its bxthre3 version and, unless Wasm3 was asked for,
    whether wasmtime loads there (None: it does)."""
    from .. import __version__

    problem = None if engine == engines.WASM3 else engines.wasmtime_problem()
    return {"version": __version__, "wasmtime_problem": problem, "wasmtime_installed": engines.wasmtime_installed()}


def engine_from_probes(url: object, engine: str, answers: dict[str, Any]) -> tuple[str, str | None]:
    """The engine the run uses, from each worker's `probe_worker` answer (or the exception it raised), and a
    warning to show; refuses, in one line naming the worker and the fix, a worker without bxthre3, with
    another version of it, or without wasmtime when `--engine wasmtime` asked for it. `auto` means wasmtime
    only when every worker loads it: the workers' engines decide, not the user's machine. The warning is
    for a worker where wasmtime is installed but does not load, or missing beside workers that have it."""
    from .. import __version__
    from ..common.errors import ClusterError

    without_wasmtime = []
    for address, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            text = str(answer).strip()
            if "No module named" in text:
                raise ClusterError(
                    f"--backend {url}: worker {address} cannot import bxthre3 ({text[:200]}); "
                    f"pip install bxthre3=={__version__} on every worker"
                )
            raise ClusterError(f"--backend {url}: worker {address} failed bxthre3's probe: {text[:300]}")
        if answer["version"] != __version__:
            raise ClusterError(
                f"--backend {url}: worker {address} has bxthre3 {answer['version']}, this is {__version__}; "
                "install the same version on every worker"
            )
        if answer["wasmtime_problem"]:
            without_wasmtime.append((address, answer["wasmtime_problem"]))
    if engine == engines.WASMTIME and without_wasmtime:
        address, problem = without_wasmtime[0]
        raise ClusterError(
            f"--backend {url}: worker {address} cannot run wasmtime ({problem}); install it there "
            "(pip install 'bxthre3[wasmtime]') or use --engine wasm3"
        )
    if engine != engines.AUTO:
        return engine, None
    if not without_wasmtime:
        return engines.WASMTIME, None
    if not any(isinstance(a, dict) and a.get("wasmtime_installed") for a in answers.values()):
        return engines.WASM3, None  # as on one machine (wasm.choice.resolve): no wasmtime anywhere is no news
    address, problem = without_wasmtime[0]
    return engines.WASM3, f"--engine auto: worker {address} cannot load wasmtime ({problem}); running on wasm3"
