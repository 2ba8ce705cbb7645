"""`LocalCluster`: the embedded loopback cluster of `bxthre3 run`, for scripts, notebooks and tests.

A controller thread on 127.0.0.1 (a free port) and `hosts` host subprocesses, with a token of its
own; `client()` connects a `Client` to it. Everything stops on `close()` or leaving the `with`
block (hosts by PID; they also die with this process).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ..common.errors import ClusterError

if TYPE_CHECKING:
    from ..backends.connection import BackendConnection
    from ..commands.local_cluster import LocalCluster as _Embedded
    from .client import Client


class LocalCluster:
    """``with LocalCluster(hosts=2) as cluster: client = cluster.client()``.

    `engine` is auto (wasmtime when it loads, else Wasm3), wasm3 or wasmtime; each host has `slots`
    slots and a RAM limit of `ram_mb` MB. One device: its clients refuse a DAG with a task verified on more than one.

    ``LocalCluster(hosts=2, backend="dask:local")`` (or ``"ray:local"``) starts a Dask (Ray) cluster on
    127.0.0.1 instead, of `hosts` workers x `slots` threads, and its clients run their DAGs there
    (docs/BACKENDS.md); it has no token, and `address` is the backend's name."""

    def __init__(
        self,
        hosts: int = 2,
        *,
        engine: str = "auto",
        slots: int = 1,
        ram_mb: int = 128,
        log_dir: str | Path | None = None,
        backend: str | None = None,
    ) -> None:
        if isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 1:
            raise ClusterError(f"a LocalCluster needs at least one host, not {hosts!r}")
        if backend is not None:
            from ..backends.opening import parse_backend

            if parse_backend(backend).mode != "local":
                raise ClusterError(
                    f"LocalCluster(backend={backend!r}) starts a cluster of its own: use dask:local or ray:local, "
                    f"or Client(backend={backend!r}) to run on that existing cluster"
                )
        self.hosts = hosts
        self.engine = engine
        self.slots = slots
        self.ram_mb = ram_mb
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.backend = backend
        self._embedded: _Embedded | None = None
        self._on_backend: BackendConnection | None = None
        self._clients: list[Client] = []

    def start(self) -> LocalCluster:
        """Start the controller and the hosts, and wait until every host has registered."""
        from ..commands.local_cluster import LocalCluster as Embedded
        from ..wasm.choice import resolve

        if self._embedded is not None or self._on_backend is not None:
            return self
        if self.backend is not None:
            from ..backends.connection import BackendConnection
            from ..backends.opening import parse_backend
            from ..wasm.choice import CHOICES

            if self.engine not in CHOICES:
                raise ClusterError(f"engine={self.engine!r}: choose one of {', '.join(CHOICES)}")
            self._on_backend = BackendConnection(
                parse_backend(self.backend), engine=self.engine, ram_mb=self.ram_mb, workers=self.hosts,
                threads=self.slots,
            )  # fmt: skip
            return self
        embedded = Embedded(
            hosts=self.hosts, slots=self.slots, ram_mb=self.ram_mb, log_dir=self.log_dir, engine=resolve(self.engine)
        )
        try:
            embedded.start()
        except BaseException:
            embedded.close()
            raise
        self._embedded = embedded
        return self

    @property
    def address(self) -> str:
        """The controller's address (127.0.0.1:PORT); on a backend, its name (dask:local, ray:local)."""
        if self._on_backend is not None:
            return str(self._on_backend.url)
        return str(self._running().address)

    @property
    def token(self) -> str:
        """The cluster's own token: `Client(cluster.address, token=cluster.token)` works too."""
        if self._on_backend is not None:
            raise ClusterError(f"a LocalCluster on {self.backend} has no token: connect with cluster.client()")
        return self._running().token

    def client(self, *, timeout: float = 10.0) -> Client:
        """A new `Client` connected to this cluster (closed with it)."""
        from .client import Client

        if self._on_backend is not None:
            on_backend = Client._on_backend(self._on_backend)
            self._clients.append(on_backend)
            return on_backend
        embedded = self._running()
        assert embedded.address is not None
        client = Client._connect(embedded.address, embedded.keys, timeout)
        client._one_device = True
        self._clients.append(client)
        return client

    def _running(self) -> _Embedded:
        if self._embedded is None:
            raise ClusterError("the LocalCluster is not running: use `with LocalCluster() as cluster:` or start()")
        return self._embedded

    def close(self) -> None:
        """Close its clients, stop the hosts and the controller, remove its temporary files."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._embedded is not None:
            self._embedded.close()
            self._embedded = None
        if self._on_backend is not None:
            self._on_backend.close()
            self._on_backend = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f" at {self.address}" if self._embedded is not None or self._on_backend is not None else " (stopped)"
        return f"<LocalCluster {self.hosts} hosts{where}>"
