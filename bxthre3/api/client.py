"""`Client` and `DagHandle`: submit a DAG to a controller, follow it, fetch typed results.

A thin layer over `client.connection.ControllerClient` (the CLI's), so the connection errors are
the CLI's `ClusterError`s with the same one-line causes. One connection per `Client`: a lock makes
each request whole, so a `DagHandle` may be used from several threads (one request at a time).

Async: `submit_async`, `wait_async` and `results_async` run the blocking call in a worker thread
(`asyncio.to_thread`); they free the event loop, they do not multiplex the socket.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..common.errors import ClusterError
from .results import DAG_END_STATES, TASK_END_STATES, ClusterStatus, DagResults, DagStatus, TaskResult

if TYPE_CHECKING:
    from ..backends.connection import BackendConnection
    from ..client.connection import ControllerClient
    from ..dag.spec import DagSpec
    from ..wire.addresses import Address
    from ..wire.security import CurveKeys
    from .dag import Dag, Task

R = TypeVar("R")

FIRST_POLL_S = 0.01
"""`as_completed`'s first pause between polls; it grows by half each poll up to its `interval`."""


class Client:
    """A connection to a controller: ``Client("192.168.1.10:5000", token=...)``.

    `controller` defaults to $BXTHRE3_CONTROLLER, else this device (127.0.0.1, port 5000); `token`
    to $BXTHRE3_TOKEN, else the token of a controller on this device, as for the CLI. `insecure`
    talks plaintext to a controller on loopback (`bxthre3 controller --insecure`).

    ``Client(backend="dask://10.0.0.5:8786")`` runs the DAGs it submits on that Dask cluster instead
    (``ray://HOST:PORT``, ``ray:auto``; ``dask:local`` / ``ray:local`` start one on 127.0.0.1 with
    `workers` x `threads`, closed with the Client), as `bxthre3 run --backend` does: the same handles,
    with `engine` and `ram_mb` as a host's; `retry` is not available there (docs/BACKENDS.md)."""

    def __init__(
        self,
        controller: str | None = None,
        token: str | None = None,
        *,
        insecure: bool = False,
        timeout: float = 10.0,
        backend: str | None = None,
        engine: str = "auto",
        ram_mb: int = 128,
        workers: int = 2,
        threads: int = 1,
    ) -> None:
        if backend is not None:
            self._open_backend(backend, engine=engine, ram_mb=ram_mb, workers=workers, threads=threads)
            return
        from ..wire.addresses import DEFAULT_PORT, Address, controller_from_env_or
        from ..wire.security import CurveKeys, default_state_dir, resolve_token

        address = controller_from_env_or(controller) or Address("127.0.0.1", DEFAULT_PORT)
        keys = None if insecure else CurveKeys.from_token(resolve_token(token, state_dir=default_state_dir()))
        self._open(address, keys, timeout)

    @classmethod
    def _connect(cls, address: Address, keys: CurveKeys | None, timeout: float = 10.0) -> Client:
        client = cls.__new__(cls)
        client._open(address, keys, timeout)
        return client

    def _open(self, address: Address, keys: CurveKeys | None, timeout: float) -> None:
        from ..client.connection import ControllerClient

        self._lock = threading.RLock()
        self._conn: ControllerClient | None = ControllerClient(address, timeout=timeout, keys=keys)
        self._owns_conn = True
        self.address = str(address)
        self._one_device = False
        """Connected to a LocalCluster: a task verified on N > 1 devices could only wait forever there."""

    def _open_backend(self, backend: str, *, engine: str, ram_mb: int, workers: int, threads: int) -> None:
        from ..backends.connection import BackendConnection
        from ..backends.opening import parse_backend
        from ..common.errors import Bxthre3Error
        from ..wasm.choice import CHOICES

        url = parse_backend(backend)
        if engine not in CHOICES:
            raise Bxthre3Error(f"engine={engine!r}: choose one of {', '.join(CHOICES)}")
        connection = BackendConnection(url, engine=engine, ram_mb=ram_mb, workers=workers, threads=threads)
        self._use_backend(connection, owns=True)

    @classmethod
    def _on_backend(cls, connection: BackendConnection) -> Client:
        """A Client on a backend connection someone else owns (a LocalCluster's): closing it leaves that open."""
        client = cls.__new__(cls)
        client._use_backend(connection, owns=False)
        return client

    def _use_backend(self, connection: BackendConnection, *, owns: bool) -> None:
        self._lock = threading.RLock()
        # The backend's connection answers every call DagHandle makes of a ControllerClient.
        self._conn = cast("ControllerClient", connection)
        self._owns_conn = owns
        self.address = str(connection.url)
        self._one_device = False

    def _call(self, request: Callable[[ControllerClient], R]) -> R:
        with self._lock:
            if self._conn is None:
                raise ClusterError("this Client is closed")
            return request(self._conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._owns_conn:
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.address}{' closed' if self._conn is None else ''}>"

    def submit(self, dag: Dag | DagSpec | str | os.PathLike[str], *, priority: int | None = None) -> DagHandle:
        """Send a DAG (a `Dag`, a `DagSpec`, or the path of a YAML file) and return its handle."""
        spec = _spec_of(dag, priority)
        if self._one_device:
            _refuse_verified(spec)
        dag_id = self._call(lambda c: c.submit(spec))
        return DagHandle(self, dag_id, spec.name, len(spec.tasks))

    async def submit_async(self, dag: Dag | DagSpec | str | os.PathLike[str], **kw: Any) -> DagHandle:
        import asyncio  # here: asyncio costs ~50 ms to import, and most scripts never await

        return await asyncio.to_thread(self.submit, dag, **kw)

    def dag(self, dag_id: str) -> DagHandle:
        """A handle on a DAG submitted before (by id, as `bxthre3 submit` prints it)."""
        status = DagStatus.from_view(self._call(lambda c: c.progress(dag_id)))
        return DagHandle(self, status.id, status.name, status.total)

    def status(self) -> ClusterStatus:
        """The cluster: devices, hosts, slots, running attempts and every DAG's status."""
        return ClusterStatus.from_view(self._call(lambda c: c.status()))


class DagHandle:
    """A submitted DAG: follow it (`status`, `wait`, `as_completed`), read it (`results`), steer it
    (`cancel`, `retry`)."""

    def __init__(self, client: Client, dag_id: str, name: str, total: int) -> None:
        self.client = client
        self.id = dag_id
        self.name = name
        self.total = total

    def __repr__(self) -> str:
        return f"<DagHandle {self.id} {self.name!r}>"

    def status(self) -> DagStatus:
        return DagStatus.from_view(self.client._call(lambda c: c.progress(self.id)))

    def wait(self, *, progress: bool = False, timeout: float | None = None, interval: float = 0.1) -> DagStatus:
        """Block until the DAG ends (succeeded, failed or cancelled) and return its status; a failed
        DAG is no exception (look at `status.ok`). `progress=True` draws the CLI's progress bar on
        stderr (plain lines when stderr is no terminal), with why the DAG waits when it stalls.
        ClusterError after `timeout` seconds."""
        if not progress:
            return self._poll(None, timeout, interval)
        from ..client.progress import DagProgress, describe_stall

        def explain(idle_s: float) -> list[str]:
            try:
                results = self.client._call(lambda c: c.results(self.id, with_output=False, limit=50))
                status = self.client._call(lambda c: c.status())
            except ClusterError as exc:
                return [f"no progress for {idle_s:.0f} s, and the controller does not say why: {exc}"]
            return describe_stall(results, status, idle_s)

        with DagProgress(self.name, self.total, explain=explain) as bar:
            return self._poll(bar.update, timeout, interval)

    def _poll(self, on_progress: Callable[[Any], None] | None, timeout: float | None, interval: float) -> DagStatus:
        """`ControllerClient.wait`'s loop, taking the connection for one request at a time: another
        thread may `cancel` (or submit) while this one waits."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = min(FIRST_POLL_S, interval)
        while True:
            view = self.client._call(lambda c: c.progress(self.id))
            if on_progress is not None:
                on_progress(view)
            if view["state"] in DAG_END_STATES:
                return DagStatus.from_view(view)
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(f"DAG {self.id} still {view['state']} after {timeout:g}s")
            time.sleep(pause)
            pause = min(interval, pause * 1.5)

    async def wait_async(self, **kw: Any) -> DagStatus:
        """`wait` in a worker thread (`asyncio.to_thread`): ``status = await handle.wait_async()``."""
        import asyncio  # here: asyncio costs ~50 ms to import, and most scripts never await

        return await asyncio.to_thread(self.wait, **kw)

    def results(self, *, files: bool = True) -> DagResults:
        """Every task's state, attempts, stdout and stderr as they are now (after `wait()`: the final ones);
        with `files`, the named outputs of the tasks that succeeded too (one request per such task: they
        can be 16 MiB each)."""
        view = self.client._call(lambda c: c.results(self.id))
        named: dict[str, dict[str, bytes]] = {}
        if files:
            for task in view["tasks"]:
                if task.get("state") == "succeeded" and task.get("files"):
                    named[task["task_id"]] = self._files(task["task_id"])
        return DagResults.from_view(view, named)

    async def results_async(self, **kw: Any) -> DagResults:
        import asyncio  # here: asyncio costs ~50 ms to import, and most scripts never await

        return await asyncio.to_thread(self.results, **kw)

    def result(self, task: Task | str) -> TaskResult:
        """One task, with its stdout and named outputs."""
        task_id = task if isinstance(task, str) else task.id
        view = self.client._call(lambda c: c.results(self.id, task_id=task_id, with_files=True))
        found = [t for t in view["tasks"] if t["task_id"] == task_id]
        if not found:
            raise ClusterError(f"DAG {self.id} has no task {task_id!r}")
        return TaskResult.from_view(found[0])

    def _files(self, task_id: str) -> dict[str, bytes]:
        view = self.client._call(lambda c: c.results(self.id, task_id=task_id, with_files=True))
        return {f["name"]: f.get("data", b"") for t in view["tasks"] for f in t.get("files", [])}

    def as_completed(self, *, timeout: float | None = None, interval: float = 0.2) -> Iterator[TaskResult]:
        """Each task once it ends (succeeded, failed, upstream_failed or cancelled), in the order they
        end as seen by polling every `interval` seconds, with its stdout and named outputs; stops when
        the DAG has ended and every task was yielded. ClusterError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: set[str] = set()
        pause = FIRST_POLL_S
        while True:
            view = self.client._call(lambda c: c.results(self.id, with_output=False))
            ended = view["state"] in DAG_END_STATES
            for task in view["tasks"]:
                task_id = task["task_id"]
                if task_id not in seen and (task["state"] in TASK_END_STATES or ended):
                    seen.add(task_id)
                    yield self.result(task_id)
            if ended:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(f"DAG {self.id} still {view['state']} after {timeout:g}s")
            time.sleep(pause)
            pause = min(interval, pause * 1.5)

    def cancel(self) -> DagStatus:
        """Stop the DAG: running attempts are aborted, the rest will not start."""
        return DagStatus.from_view(self.client._call(lambda c: c.cancel(self.id)))

    def retry(self) -> int:
        """Start the DAG's failed and cancelled tasks (and those they held back) again; returns how many."""
        return int(self.client._call(lambda c: c.retry(self.id))["retried"])


def _spec_of(dag: object, priority: int | None) -> DagSpec:
    import dataclasses

    from ..common.errors import DagError
    from ..dag.fields import priority_problem
    from ..dag.spec import DagSpec
    from .dag import Dag

    if isinstance(dag, Dag):
        spec = dag.spec()
    elif isinstance(dag, DagSpec):
        spec = dag
    elif isinstance(dag, (str, os.PathLike)):
        from ..dag.yaml_loader import load_dag

        spec = load_dag(dag)
    else:
        raise TypeError(f"submit takes a Dag, a DagSpec or a YAML file's path, not {type(dag).__name__}")
    if priority is not None:
        problem = priority_problem(priority)
        if problem:
            raise DagError(f"{problem}, not {priority!r}", file=spec.source, field="priority")
        spec = dataclasses.replace(spec, priority=priority)
    return spec


def _refuse_verified(spec: DagSpec) -> None:
    """`verify: N` needs N distinct devices; a LocalCluster is this one (as `bxthre3 run` refuses it)."""
    from ..common.errors import DagError

    task = max(spec.tasks, key=lambda t: t.verify)
    if task.verify > 1:
        raise DagError(
            f"verify={task.verify} runs it on {task.verify} distinct devices, and a LocalCluster is one device: "
            "submit it to a cluster of that many devices, or set verify=1 to run it here unverified",
            file=spec.source,
            task=task.id,
            field="verify",
        )
