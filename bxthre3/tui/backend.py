"""What the TUI talks to, injectable so tests drive the real app against anything.

A `Backend` opens controller clients and starts an embedded cluster. Every method blocks:
call them only from thread workers. Each worker opens its own client (ZeroMQ sockets are
not thread-safe).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from ..addresses import Address
from ..client import ControllerClient
from ..dag_model import DagSpec

log = logging.getLogger(__name__)

UI_REQUEST_TIMEOUT_S = 3.0
"""A poll that gets no answer in this long reports the controller unreachable, then retries."""


class Client(Protocol):
    def status(self) -> dict[str, Any]: ...
    def results(self, dag_id: str, *, with_output: bool = True, task_id: str = "") -> dict[str, Any]: ...
    def submit(self, spec: DagSpec) -> str: ...
    def cancel(self, dag_id: str) -> dict[str, Any]: ...
    def watch(self, lease: float = 10.0) -> dict[str, Any]: ...
    def next_update(self, timeout: float) -> dict[str, Any] | None: ...
    def close(self) -> None: ...


class Backend:
    """The real thing: ControllerClient over ZeroMQ, LocalCluster for the "All components" role."""

    def __init__(self, *, hosts: int = 2) -> None:
        self.hosts = hosts
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._closed = False

    def connect(self, address: Address) -> Client:
        return ControllerClient(address, timeout=UI_REQUEST_TIMEOUT_S)

    def start_cluster(self, ram_per_node: int) -> Address:
        """Start an embedded controller + hosts on loopback; returns the controller's address."""
        from ..local_cluster import LocalCluster  # imports the controller: only for this role

        cluster = LocalCluster(hosts=self.hosts, ram_mb=ram_per_node)
        with self._lock:
            if self._closed:
                cluster.close()
                raise RuntimeError("the UI is shutting down")
            self._cluster = cluster
        cluster.start()
        assert cluster.address is not None
        log.info("embedded cluster at %s with %d hosts", cluster.address, self.hosts)
        return cluster.address

    def host_pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._cluster.procs] if self._cluster is not None else []

    def close(self) -> None:
        """Stop everything this backend started (idempotent)."""
        with self._lock:
            self._closed = True
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            log.info("stopping embedded cluster")
            cluster.close()
