"""`--backend dask://ADDR:PORT`: a DAG's tasks run on an existing Dask distributed cluster (prototype).

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

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from distributed import Client, Future, get_worker, wait
from distributed.diagnostics.plugin import WorkerPlugin

from ..common.digests import sha256_hex
from ..common.failures import FailureReason
from ..dag.spec import DagSpec
from . import BackendURL
from .driver import DagRun, Policy
from .worker_side import AttemptSpec, run_attempt, store_modules

POLL_S = 0.2
"""Longest wait for a future before the progress bar is refreshed and backoffs are looked at."""


class ModulesPlugin(WorkerPlugin):
    """Puts a DAG's modules into each worker's module cache: once per worker, and on workers that join later."""

    idempotent = True
    """A second registration under the same name (the same set of modules) is ignored: nothing is resent."""

    def __init__(self, modules: dict[str, bytes]) -> None:
        self.modules = modules

    def setup(self, worker: Any) -> None:
        store_modules(self.modules)


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
    return {
        "reason": reason.value, "error": f"{name}: {exc}"[:500], "exit_code": None, "stdout": b"", "stderr": b"",
        "files": {}, "duration": 0.0,
    }  # fmt: skip


def run_dag(
    spec: DagSpec,
    client: Client,
    policy: Policy,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> DagRun:
    """Run the DAG to its end on the client's cluster; the finished run (its `results()` prints as usual)."""
    dag_id = uuid.uuid4().hex[:12]
    run = DagRun(spec, dag_id, policy, clock())
    name = plugin_name(spec)
    client.register_plugin(ModulesPlugin(dict(spec.modules)), name=name)
    succeeded: dict[str, Future] = {}
    """Futures of succeeded tasks, kept while the run lasts: the cluster holds their outputs for dependents."""
    live: dict[Future, tuple[str, int]] = {}
    try:
        while True:
            now = clock()
            for attempt in run.startable(now):
                future = client.submit(
                    _attempt_on_worker,
                    attempt,
                    *(succeeded[u] for u in attempt.upstream_ids),
                    key=f"bxthre3-{dag_id}-{attempt.task_id}-{attempt.attempt}",
                    pure=False,
                    retries=0,
                )
                live[future] = (attempt.task_id, attempt.attempt)
            if on_progress is not None:
                on_progress(run.summary(now))
            if run.done:
                return run
            wakeup = run.next_wakeup()
            timeout = POLL_S if wakeup is None else max(0.0, min(POLL_S, wakeup - now))
            if not live:
                time.sleep(timeout)
                continue
            try:
                done, _ = wait(list(live), timeout=timeout, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            finished = [f for f in done if f.status == "finished"]
            values = dict(zip(finished, client.gather(finished), strict=True))  # one round trip for the batch
            for future in done:
                task_id, attempt_no = live.pop(future)
                outcome = values[future] if future in values else _lost(future)
                if outcome.get("reason") is None:
                    succeeded[task_id] = future
                run.finished(task_id, attempt_no, outcome, outcome.get("node_id"), clock())
    finally:
        if live:
            client.cancel(list(live))
        client.unregister_worker_plugin(name)


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
            from distributed import LocalCluster

            self.cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=self.threads, processes=True,
                host="127.0.0.1", scheduler_port=0, dashboard_address=None, silence_logs=logging.WARNING,
            )  # fmt: skip
            self.client = Client(self.cluster)
        else:
            self.client = Client(f"tcp://{self.url.address}", timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def run(self, spec: DagSpec, policy: Policy, on_progress: Callable[[dict[str, Any]], None] | None = None) -> DagRun:
        assert self.client is not None, "use DaskBackend as a context manager"
        return run_dag(spec, self.client, policy, on_progress)
