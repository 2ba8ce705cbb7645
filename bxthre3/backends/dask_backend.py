"""`--backend dask://ADDR:PORT`: a DAG's tasks run on an existing Dask distributed cluster.

Only the CLI's process and the Dask workers import this module, and only when that backend is asked
for: nothing else of Bxthre3 imports Dask. The workers need bxthre3 (same version) and its engine
installed; they run each attempt through Bxthre3's executor (`worker_side.run_attempt`), so timeouts,
memory caps, the WASI surface, output limits and failure reasons are the ones a host gives.

How the DAG maps onto Dask (docs/BACKENDS.md has the whole table):

- one Dask task per *attempt* (`Client.submit`, `pure=False`, `retries=0`, a key unique to the run,
  task and attempt), submitted only once its upstream tasks succeeded, with their result futures as
  arguments: Dask moves the bytes worker to worker, and dependencies are futures, never strings that
  might equal a key;
- the retry policy is Bxthre3's (`driver.DagRun`), never Dask's `retries`: the task function returns
  every failure as a value instead of raising;
- modules go to each worker once, by content hash, through a `WorkerPlugin` whose `setup` writes them
  into the device's module cache (it also reaches workers that join later); tasks carry only the hash;
- progress comes from the futures as they finish, in the shape the progress bar already reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from distributed import Client, Future, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..common.digests import sha256_hex
from ..common.errors import ClusterError
from ..common.failures import FailureReason
from ..dag.spec import DagSpec
from .driver import AttemptSpec, DagRun
from .opening import BackendURL
from .worker_side import engine_from_probes, failed_outcome, probe_worker, run_attempt, store_modules

log = logging.getLogger(__name__)

POLL_S = 0.2
"""Longest wait for a finished attempt before backoffs are looked at again."""

PROGRESS_EVERY_S = 0.1
"""The progress bar is fed at most this often (and once at the end)."""

CONNECT_TIMEOUT_S = 10.0
"""How long `dask://HOST:PORT` waits for the scheduler to answer."""

MEMORY_RESOURCE = "MEMORY"
"""The Dask worker resource (in MB) that `memory:` reserves, where workers declare it
(`dask worker --resources MEMORY=4096`). Dask has no memory resource of its own."""


class ModulesPlugin(WorkerPlugin):
    """Puts a DAG's modules into each worker's module cache: once per worker, and on workers that join later."""

    idempotent = True
    """A second registration under the same name (the same set of modules) is ignored: nothing is resent."""

    def __init__(self, modules: dict[str, bytes]) -> None:
        self.modules = modules

    def setup(self, worker: Any) -> None:
        store_modules(self.modules)


_plugin_lock = threading.Lock()
_plugin_users: dict[str, int] = {}
"""Runs in this process using each modules plugin (the Python API runs several DAGs at once)."""


def plugin_name(spec: DagSpec) -> str:
    """Named by the modules' hashes: a DAG run again with the same modules registers nothing new."""
    return "bxthre3-modules-" + sha256_hex("\n".join(sorted(spec.modules)).encode())[:16]


def _attempt_on_worker(spec: AttemptSpec, *upstreams: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: one attempt, with the worker's address; stops when Dask cancels the task."""
    worker = get_worker()
    key = worker.get_current_task()

    def cancelled() -> bool:
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state in ("cancelled", "released", "forgotten")

    outcome = run_attempt(spec, *upstreams, should_stop=cancelled)
    outcome["node_id"] = worker.address
    return outcome


def _lost(future: Future) -> dict[str, Any]:
    """An attempt that ended without a value: its worker died (Dask's KilledWorker) or Dask cancelled it."""
    try:
        exc = future.exception(timeout=5)
    except Exception as err:  # CancelledError, TimeoutError
        exc = err
    name = type(exc).__name__
    reason = (
        FailureReason.HOST_LOST
        if name in ("KilledWorker", "CancelledError", "FutureCancelledError")
        else FailureReason.INTERNAL
    )
    return failed_outcome(reason, f"{name}: {exc}"[:500])


def _gathered(client: Client, futures: list[Future]) -> dict[Any, dict[str, Any]]:
    """The finished attempts' outcomes by key: one `gather` for the batch; each on its own if that fails (a
    result lost with its worker after it finished is `host_lost`: the attempt runs again)."""
    try:
        return dict(zip((f.key for f in futures), client.gather(futures), strict=True))
    except Exception:
        outcomes: dict[Any, dict[str, Any]] = {}
        for future in futures:
            try:
                outcomes[future.key] = client.gather(future)
            except Exception as exc:
                error = f"result lost: {type(exc).__name__}: {exc}"[:500]
                outcomes[future.key] = failed_outcome(FailureReason.HOST_LOST, error)
        return outcomes


def check_workers(client: Client, url: object, engine: str) -> tuple[dict[str, Any], str]:
    """Refuse, in one line, a cluster that cannot run the DAG: no workers, workers without bxthre3 (or another
    version of it), or, for `--engine wasmtime`, without wasmtime. Returns the scheduler's view of the workers
    (for `memory:`) and the engine to run: `auto` is wasmtime only when every worker loads it, else Wasm3."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    if not workers:
        raise ClusterError(f"--backend {url}: the Dask scheduler has no workers; start some (dask worker ADDRESS)")
    answers = client.run(probe_worker, engine, on_error="return")  # an exception per worker that failed
    engine, warning = engine_from_probes(url, engine, answers)
    if warning:
        log.warning("%s", warning)
    return dict(workers), engine


def check_memory(spec: DagSpec, workers: dict[str, Any], url: object) -> bool:
    """Can every task's `memory:` be met? True: the workers declare a MEMORY resource and tasks reserve it.

    A task asking more than any worker offers would wait forever on Dask, so the run is refused up front.
    Without declared MEMORY resources the check is against the workers' memory limits, and `memory:` only
    raises the module's cap (it cannot steer placement)."""
    biggest = max((t.memory or 0 for t in spec.tasks), default=0)
    if biggest == 0:
        return False
    declared = [w.get("resources", {}).get(MEMORY_RESOURCE) for w in workers.values()]
    if any(d is not None for d in declared):
        offer = max(float(d) for d in declared if d is not None)
        where = f"the largest Dask worker declares {MEMORY_RESOURCE}={offer:g}"
        uses_resource = True
    else:
        limits_mb = [int(w.get("memory_limit") or 0) // 2**20 for w in workers.values()]
        offer = max(limits_mb) if all(limits_mb) else float("inf")
        where = f"the largest Dask worker's memory limit is {offer:g} MB"
        uses_resource = False
    for task in spec.tasks:
        if (task.memory or 0) > offer:
            raise ClusterError(
                f"{spec.source}: task {task.id!r}: memory: {task.memory} MB, but {where}; lower memory: "
                f"or start workers with more (dask worker --resources {MEMORY_RESOURCE}=MB)"
            )
    return uses_resource


def run_dag(
    run: DagRun,
    client: Client,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    clock: Callable[[], float] = time.time,
    url: object = "dask",
) -> DagRun:
    """Run the DAG to its end on the client's cluster; returns `run`, ended (its `results()` print as usual).

    Finished attempts arrive through each future's done callback on a queue (no scan over every live
    future per turn), their values are fetched in one `gather` per batch, and a task's future is
    released once no attempt can read its output any more, so a 10,000-task DAG does not hold every
    output on the workers until the end."""
    spec = run.spec
    workers, engine = check_workers(client, url, run.policy.engine)
    run.policy = dataclasses.replace(run.policy, engine=engine)
    reserve_memory = check_memory(spec, workers, url)
    dag_id = run.dag_id
    name = plugin_name(spec)
    with _plugin_lock:  # DAGs of one Client may share modules: the last one to end unregisters them
        if _plugin_users.get(name, 0) == 0:
            client.register_plugin(ModulesPlugin(dict(spec.modules)), name=name)
        _plugin_users[name] = _plugin_users.get(name, 0) + 1
    succeeded: dict[str, Future] = {}
    """Futures of succeeded tasks whose outputs an attempt may still read (the workers hold those bytes)."""
    live: dict[str, tuple[str, int, Future]] = {}
    """Live attempts by Dask key."""
    done_keys: queue.SimpleQueue[str] = queue.SimpleQueue()
    last_progress = 0.0
    try:
        while True:
            now = clock()
            run.cancel_if_requested(now)
            for attempt in run.startable(now):
                key = f"bxthre3-{dag_id}-{attempt.task_id}-{attempt.attempt}"
                resources = {MEMORY_RESOURCE: attempt.memory_mb} if reserve_memory and attempt.memory_mb else None
                future = client.submit(
                    _attempt_on_worker,
                    attempt,
                    *(succeeded[u] for u in attempt.upstream_ids),
                    key=key,
                    pure=False,
                    retries=0,
                    resources=resources,
                )
                live[key] = (attempt.task_id, attempt.attempt, future)
                future.add_done_callback(lambda f: done_keys.put(f.key))
            if run.done:
                break
            if on_progress is not None and now - last_progress >= PROGRESS_EVERY_S:
                on_progress(run.summary(now))
                last_progress = now
            try:
                keys = [done_keys.get(timeout=run.wait_at_most(now, POLL_S))]
            except queue.Empty:
                continue
            while len(keys) < 10_000:  # everything else already finished: one gather for the batch
                try:
                    keys.append(done_keys.get_nowait())
                except queue.Empty:
                    break
            done = [live.pop(k) for k in keys if k in live]
            finished = [entry for entry in done if entry[2].status == "finished"]
            outcomes = _gathered(client, [entry[2] for entry in finished])
            for task_id, attempt_no, future in done:
                outcome = outcomes.get(future.key) or _lost(future)
                if outcome.get("reason") is None:
                    succeeded[task_id] = future
                run.finished(task_id, attempt_no, outcome, outcome.get("node_id"), clock())
                for unneeded in run.unneeded_outputs(task_id):
                    old = succeeded.pop(unneeded, None)
                    if old is not None:
                        old.release()
        if on_progress is not None:
            on_progress(run.summary(clock()))
        return run
    finally:
        if live:
            client.cancel([entry[2] for entry in live.values()])
        with _plugin_lock:
            _plugin_users[name] -= 1
            if _plugin_users[name] == 0:
                del _plugin_users[name]
                client.unregister_worker_plugin(name)


def _close_half_started(clusters: set[Any]) -> None:
    """Close the clusters an interrupt (Ctrl-C, SIGTERM) stopped while they started, quietly, and take them
    off Dask's list: its exit handler would otherwise close them again and print a traceback on the way out
    (workers caught half-started fail its assertion)."""
    from distributed.deploy.spec import SpecCluster

    for logger in (logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")):
        logger.setLevel(logging.CRITICAL + 1)
    for cluster in clusters:
        with contextlib.suppress(BaseException):
            cluster.close(timeout=5)
        SpecCluster._instances.discard(cluster)


class DaskBackend:
    """`dask://HOST:PORT` (a Client on that scheduler) or `dask:local` (a LocalCluster on 127.0.0.1 of `workers`
    processes x `threads` threads, started for this run and closed after it)."""

    def __init__(self, url: BackendURL, *, workers: int = 2, threads: int = 1) -> None:
        self.url = url
        self.workers = workers
        self.threads = threads
        self.cluster: Any = None
        self.client: Client | None = None

    def __enter__(self) -> DaskBackend:
        logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines are not the run's output
        if self.url.mode == "local":
            import dask
            from distributed import LocalCluster

            # worker-saturation inf: the scheduler hands every submitted attempt to a worker at once instead
            # of holding "root tasks" back (its default, 1.1, keeps workers waiting on it between tasks). The
            # driver submits only attempts that may start now, so there is no big graph to pace: 1,000
            # trivial tasks took 2.1-2.4 s instead of 2.9-3.0 s here. Operators of a dask:// cluster set it.
            from distributed.deploy.spec import SpecCluster

            started_before = set(SpecCluster._instances)
            try:
                with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
                    # silence_logs: the worker processes' own log lines (a heartbeat that met the scheduler
                    # closing, an attempt cancelled by Ctrl-C) are not the run's output: the run says what
                    # happened to each attempt in its own words.
                    self.cluster = LocalCluster(
                        n_workers=self.workers, threads_per_worker=self.threads, processes=True, host="127.0.0.1",
                        scheduler_port=0, dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL,
                    )  # fmt: skip
            except (KeyboardInterrupt, SystemExit):
                _close_half_started(set(SpecCluster._instances) - started_before)
                raise
            except Exception as exc:
                # Dask starts each worker process by re-importing the caller's __main__ (multiprocessing's spawn):
                # a script read from stdin cannot be, and one without a main guard starts its cluster again there.
                raise ClusterError(
                    f"--backend {self.url}: Dask could not start its worker processes ({type(exc).__name__}: {exc}); "
                    "it re-imports the script that started it: run it from a file, with its code under "
                    '`if __name__ == "__main__":`'
                ) from exc
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(f"tcp://{self.url.address}", timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(
                    f"--backend {self.url}: no Dask scheduler answered at {self.url.address} within "
                    f"{CONNECT_TIMEOUT_S:g} s (is `dask scheduler` running there, and the port open?)"
                ) from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            # Our own cluster going away is not news: its scheduler is still forgetting the run's keys when the
            # workers stop, and says so at WARNING and CRITICAL (a screenful after a 10,000-task run).
            quiet = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
            levels = [logger.level for logger in quiet]
            for logger in quiet:
                logger.setLevel(logging.CRITICAL + 1)
            try:
                self.cluster.close()
            finally:
                for logger, level in zip(quiet, levels, strict=True):
                    logger.setLevel(level)

    def run(self, run: DagRun, on_progress: Callable[[dict[str, Any]], None] | None = None) -> DagRun:
        assert self.client is not None, "use DaskBackend as a context manager"
        return run_dag(run, self.client, on_progress, url=self.url)
