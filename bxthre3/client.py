"""A request/reply client of the controller, for the CLI (and later the UI).

One DEALER; each request carries a ``req_id`` so a late reply to an earlier request that
timed out is recognised and skipped instead of being taken for the current answer.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable
from typing import Any

import zmq

from . import protocol
from .addresses import Address
from .dag_model import DagSpec
from .errors import Bxthre3Error, ClusterError, ProtocolError
from .security import CurveKeys, secure_client
from .zmq_util import configure, is_loopback

DEFAULT_REQUEST_TIMEOUT_S = 10.0
"""How long a CLI request waits for the controller before saying it is unreachable."""

MAX_REPLY_BYTES = 2 * 1024 * 1024 * 1024 - 1
"""Largest reply a client accepts (a `results` of many big outputs)."""

HANDSHAKE_VERDICT_MS = 1000
"""After a request timed out: how long to wait for the socket to report a refused handshake."""

TERMINAL_DAG_STATES = frozenset({"succeeded", "failed", "cancelled"})

FIRST_POLL_S = 0.01
"""`wait`'s first pause between progress polls; it grows by half each poll up to its interval."""


def _check_resolvable(address: Address) -> None:
    """Fail now with the real cause; ZeroMQ would retry an unknown name silently forever."""
    try:
        socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ClusterError(f"cannot resolve controller host {address.host!r}: {exc}") from exc


class ControllerClient:
    def __init__(
        self,
        address: Address,
        *,
        timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
        context: zmq.Context | None = None,
        keys: CurveKeys | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        if keys is None and not is_loopback(address.host):
            raise Bxthre3Error(f"--insecure talks plaintext to a controller on loopback only, not {address}")
        _check_resolvable(address)
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.sock = configure(self.context.socket(zmq.DEALER))
        # Replies come from the controller we chose to trust; results of a big DAG may
        # exceed the frame limit that protects the controller from strangers.
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY_BYTES)
        if ":" in address.host:
            self.sock.setsockopt(zmq.IPV6, 1)
        if keys is not None:
            secure_client(self.sock, keys)
        self.keys = keys
        self._handshake = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_DISCONNECTED)
        self.sock.connect(address.endpoint)
        self._ids = itertools.count(1)
        self._latest_update: dict[str, Any] | None = None
        """A pushed update that arrived while a request waited for its reply: kept, not lost."""

    def close(self) -> None:
        self._handshake.close(linger=0)
        self.sock.close(linger=0)
        if self._own_context:
            self.context.term()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, make: Callable[[int], protocol.Message]) -> dict[str, Any]:
        """Send one request, wait for its reply; ClusterError on timeout or refusal."""
        req_id = next(self._ids)
        self.sock.send(protocol.encode(make(req_id)))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(left * 1000, zmq.POLLIN):
                raise ClusterError(self._why_no_answer())
            try:
                reply = protocol.decode(self.sock.recv())
            except ProtocolError:
                continue
            if isinstance(reply, protocol.Update):
                self._latest_update = reply.data
                continue
            if isinstance(reply, protocol.Reply) and reply.req_id == req_id:
                if not reply.ok:
                    raise ClusterError(reply.error)
                return reply.data

    def _why_no_answer(self) -> str:
        """Tell a wrong token (the controller hangs up during the handshake) from no controller."""
        from zmq.utils.monitor import recv_monitor_message

        refused = 0
        if not self._handshake.poll(HANDSHAKE_VERDICT_MS):  # a busy machine may report the hang-up late
            return self._unreachable()
        for _ in range(10_000):
            try:
                recv_monitor_message(self._handshake, zmq.NOBLOCK)
            except zmq.Again:
                break
            refused += 1
        if refused:
            what = (
                "the cluster token is not this controller's (or it runs --insecure)"
                if self.keys
                else "it expects the cluster token"
            )
            return (
                f"the controller at {self.address} closed the connection during the security handshake "
                f"{refused} time(s): {what} (`bxthre3 token` on the controller prints it; pass --token "
                "or set BXTHRE3_TOKEN)"
            )
        return self._unreachable()

    def _unreachable(self) -> str:
        return (
            f"no answer from the controller at {self.address} within {self.timeout:g}s "
            "(is `bxthre3 controller` running there?)"
        )

    def submit(self, spec: DagSpec) -> str:
        data = self.request(lambda r: protocol.Submit(r, spec.to_wire()))
        return str(data["dag_id"])

    def status(self) -> dict[str, Any]:
        return self.request(lambda r: protocol.StatusRequest(r))

    def progress(self, dag_id: str) -> dict[str, Any]:
        return self.request(lambda r: protocol.ProgressRequest(r, dag_id))

    def results(
        self, dag_id: str, *, with_output: bool = True, task_id: str = "", limit: int = 0, with_files: bool = False
    ) -> dict[str, Any]:
        """One DAG's tasks; ``with_output=False`` leaves out outputs, ``task_id`` asks for one task only,
        ``limit`` caps the tasks sent (unfinished and failed first, then the most recently finished),
        ``with_files`` adds the contents of named outputs (ask per task: they can be 16 MiB each)."""
        return self.request(lambda r: protocol.ResultsRequest(r, dag_id, with_output, task_id, limit, with_files))

    def watch(self, lease: float = 10.0) -> dict[str, Any]:
        """Subscribe to pushed updates; call again before ``lease`` seconds pass to keep them coming."""
        return self.request(lambda r: protocol.WatchRequest(r, lease))

    def next_update(self, timeout: float) -> dict[str, Any] | None:
        """The newest pushed status within ``timeout`` seconds (older queued ones are skipped), or None."""
        latest, self._latest_update = self._latest_update, None
        deadline = time.monotonic() + timeout
        while True:
            wait_ms = 0 if latest is not None else max(0.0, deadline - time.monotonic()) * 1000
            if not self.sock.poll(wait_ms, zmq.POLLIN):
                return latest
            try:
                msg = protocol.decode(self.sock.recv())
            except ProtocolError:
                continue
            if isinstance(msg, protocol.Update):
                latest = msg.data

    def cancel(self, dag_id: str) -> dict[str, Any]:
        return self.request(lambda r: protocol.CancelRequest(r, dag_id))

    def retry(self, dag_id: str) -> dict[str, Any]:
        """Start the DAG's failed and cancelled tasks again; the reply is its summary plus ``retried``."""
        return self.request(lambda r: protocol.RetryRequest(r, dag_id))

    def wait(
        self,
        dag_id: str,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        *,
        interval: float = 0.1,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll progress until the DAG ends; returns the last progress snapshot.

        Polls every 10 ms at first, backing off to ``interval``: a small DAG ends within
        milliseconds of its last result, not up to a whole interval later.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = min(FIRST_POLL_S, interval)
        while True:
            snapshot = self.progress(dag_id)
            if on_progress is not None:
                on_progress(snapshot)
            if snapshot.get("state") in TERMINAL_DAG_STATES:
                return snapshot
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(f"DAG {dag_id} still {snapshot.get('state')} after {timeout:g}s")
            time.sleep(pause)
            pause = min(interval, pause * 1.5)
