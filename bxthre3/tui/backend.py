"""What the TUI talks to, injectable so tests drive the real app against anything.

A `Backend` opens controller clients and starts roles as child processes. Every method blocks:
call them only from thread workers. Each worker opens its own client (ZeroMQ sockets are
not thread-safe).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ..client.connection import ControllerClient
from ..dag.spec import DagSpec
from ..wire.addresses import Address
from ..wire.security import TOKEN_ENV, CurveKeys, TokenError
from .role_process import RoleProcess
from .roles import RoleConfig

if TYPE_CHECKING:
    from ..controller.views import ActivityView, DagSummary, ResultsView, RetriedSummary, StatusView, StructureView

log = logging.getLogger(__name__)

UI_REQUEST_TIMEOUT_S = 3.0
"""A poll that gets no answer in this long reports the controller unreachable, then retries."""


class Client(Protocol):
    def status(self) -> StatusView: ...
    def results(
        self, dag_id: str, *, with_output: bool = True, task_id: str = "", limit: int = 0, with_files: bool = False
    ) -> ResultsView: ...
    def submit(self, spec: DagSpec) -> str: ...
    def cancel(self, dag_id: str) -> DagSummary: ...
    def retry(self, dag_id: str) -> RetriedSummary: ...
    def watch(self, lease: float = 10.0) -> dict[str, Any]: ...
    def next_update(self, timeout: float) -> StatusView | None: ...
    def activity(self, window_s: float = 120.0) -> ActivityView: ...
    def structure(self, dag_id: str) -> StructureView: ...
    def close(self) -> None: ...


class Backend:
    """The real thing: ControllerClient over ZeroMQ, roles as `bxthre3` child processes.

    ``role_args`` adds arguments per role (tests bind to loopback, keep state in a temp dir,
    listen for beacons on 127.255.255.255); ``hosts`` caps the node manager of "All".
    """

    def __init__(
        self,
        *,
        hosts: int | None = None,
        port: int | None = None,
        role_args: Mapping[str, list[str]] | None = None,
        env: Mapping[str, str] | None = None,
        token: str | None = None,
        insecure: bool = False,
    ) -> None:
        self.hosts = hosts
        self.port = port
        self.role_args = dict(role_args or {})
        self.env = env
        self.token = token
        """The cluster token the monitor presents and the roles get in their environment (never argv)."""
        self.insecure = insecure
        self._lock = threading.Lock()
        self._processes: list[RoleProcess] = []
        self._closed = False

    def connect(self, address: Address) -> Client:
        if self.token is None and not self.insecure:
            raise TokenError(
                "no cluster token: enter it in the UI Node form, or start the UI with --token or BXTHRE3_TOKEN"
            )
        keys = CurveKeys.from_token(self.token) if self.token else None
        return ControllerClient(address, timeout=UI_REQUEST_TIMEOUT_S, keys=keys)

    def start_role(self, config: RoleConfig) -> RoleProcess:
        """Start the role as a child process; its screen follows it through the returned handle."""
        if self.port is not None and config.role in ("controller", "all"):
            config = replace(config, port=self.port)
        argv = config.argv()
        if config.role == "all" and self.hosts is not None:
            argv += ["--max-nodes", str(self.hosts)]
        argv += self.role_args.get(config.role, [])
        if self.insecure and "--insecure" not in argv:
            argv.append("--insecure")
        env = dict(self.env or {})
        if self.token:
            env[TOKEN_ENV] = self.token
        with self._lock:
            if self._closed:
                raise RuntimeError("the UI is shutting down")
            process = RoleProcess(config.role, argv, env=env)
            self._processes.append(process)
        return process

    def host_pids(self) -> list[int]:
        with self._lock:
            return [pid for p in self._processes for pid in p.host_pids()]

    def close(self) -> None:
        """Stop everything this backend started (idempotent), newest first."""
        with self._lock:
            self._closed = True
            processes, self._processes = self._processes, []
        for process in reversed(processes):
            log.info("stopping %s (pid %d)", process.role, process.pid)
            process.stop()
