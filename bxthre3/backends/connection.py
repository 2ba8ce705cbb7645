"""What the Python API's `Client(backend=...)` talks to: a backend wearing the controller connection's shape.

`api.Client` and `api.DagHandle` speak to a `client.connection.ControllerClient` (submit, progress, results,
cancel, status). :class:`BackendConnection` answers the same calls from `driver.DagRun`s that run on a Dask
or Ray cluster, one thread per submitted DAG, so a script switches from Bxthre3's controller to a Dask
cluster by one argument and keeps `wait(progress=True)`, `as_completed`, `results` and `cancel`.

Threads: each DAG's run is changed only by its own thread (the backend's loop); the calls here read it
(a summary or results built from its task records) and ask for a cancel through `cancel_requested`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, cast

from ..common.errors import ClusterError, DagError
from .driver import Policy
from .opening import BackendURL, new_run, open_backend

if TYPE_CHECKING:
    from ..controller.views import DagSummary, ResultsView, RetriedSummary, StatusView
    from ..dag.spec import DagSpec
    from .driver import DagRun
    from .opening import Backend

CANCEL_WAIT_S = 5.0
"""How long `cancel` waits for the run's thread to stop its attempts before answering."""

CLOSE_WAIT_S = 10.0
"""How long `close` waits for each run's thread after cancelling it."""


class BackendConnection:
    """`ControllerClient`'s calls, answered by DAG runs on another engine's cluster."""

    def __init__(self, url: BackendURL, *, engine: str, ram_mb: int = 128, workers: int = 2, threads: int = 1) -> None:
        self.url = url
        self.policy = Policy(engine=engine, ram_mb=ram_mb)
        self._backend: Backend | None = open_backend(url, workers=workers, threads=threads)
        self._backend.__enter__()
        self._runs: dict[str, DagRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._errors: dict[str, BaseException] = {}

    def submit(self, spec: DagSpec) -> str:
        backend = self._open()
        task = max(spec.tasks, key=lambda t: t.verify)
        if task.verify > 1:
            raise DagError(
                f"verify={task.verify} needs {task.verify} distinct Bxthre3 devices, which a {self.url.kind} cluster "
                "does not have: set verify=1, or submit it to a Bxthre3 controller",
                file=spec.source,
                task=task.id,
                field="verify",
            )
        run = new_run(spec, self.policy)
        self._runs[run.dag_id] = run

        def follow() -> None:
            try:
                backend.run(run)
            except BaseException as exc:  # shown to the caller by its next call about this DAG
                self._errors[run.dag_id] = exc

        thread = threading.Thread(target=follow, name=f"bxthre3-{self.url.kind}-{run.dag_id}", daemon=True)
        self._threads[run.dag_id] = thread
        thread.start()
        return run.dag_id

    def progress(self, dag_id: str) -> DagSummary:
        return cast("DagSummary", self._run(dag_id).summary(time.time()))

    def results(
        self, dag_id: str, *, with_output: bool = True, task_id: str = "", limit: int = 0, with_files: bool = False
    ) -> ResultsView:
        view = self._run(dag_id).results(time.time(), with_files=with_files)
        tasks: list[dict[str, Any]] = view["tasks"]
        if task_id:
            tasks = [t for t in tasks if t["task_id"] == task_id]
        if not with_output:
            tasks = [{**t, "output": None, "stderr": b""} for t in tasks]
        if limit:
            tasks = tasks[:limit]
        view["tasks"] = tasks
        return cast("ResultsView", view)

    def cancel(self, dag_id: str) -> DagSummary:
        run = self._run(dag_id)
        run.cancel_requested = True
        self._threads[dag_id].join(CANCEL_WAIT_S)
        return cast("DagSummary", run.summary(time.time()))

    def retry(self, dag_id: str) -> RetriedSummary:
        self._run(dag_id)
        raise ClusterError(f"retry is not available on --backend {self.url}: submit the DAG again")

    def status(self) -> StatusView:
        now = time.time()
        dags = [run.summary(now) for run in self._runs.values()]
        running = sum(d["counts"]["running"] for d in dags)
        succeeded = sum(d["counts"]["succeeded"] for d in dags)
        failed = sum(d["counts"]["failed"] for d in dags)
        totals = {
            "devices": 0, "hosts": 0, "slots": 0, "ram_mb": 0, "running": running, "ready": 0, "dags": len(dags),
            "succeeded": succeeded, "failed": failed, "tasks_per_s": 0.0,
        }  # fmt: skip
        view = {"format": 1, "totals": totals, "waiting": [], "hosts": [], "devices": {}, "dags": dags}
        return cast("StatusView", view | {"quarantined": []})

    def close(self) -> None:
        """Cancel the DAGs still running, wait for their threads, close the backend (and a cluster it started)."""
        for run in self._runs.values():
            run.cancel_requested = True
        for thread in self._threads.values():
            thread.join(CLOSE_WAIT_S)
        if self._backend is not None:
            backend, self._backend = self._backend, None
            backend.__exit__(None, None, None)

    def _open(self) -> Backend:
        if self._backend is None:
            raise ClusterError("this Client is closed")
        return self._backend

    def _run(self, dag_id: str) -> DagRun:
        run = self._runs.get(dag_id)
        if run is None:
            raise ClusterError(f"no DAG {dag_id!r} was submitted through this Client (--backend {self.url})")
        error = self._errors.get(dag_id)
        if error is not None:
            if isinstance(error, ClusterError | DagError):
                raise error
            raise ClusterError(f"DAG {dag_id} on --backend {self.url} stopped: {type(error).__name__}: {error}")
        return run
