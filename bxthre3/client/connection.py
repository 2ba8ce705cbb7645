"""A request/reply client of the controller, for the CLI (and later the UI).

One DEALER; each request carries a ``req_id`` so a late reply to an earlier request that
timed out is recognised and skipped instead of being taken for the current answer.

Why a request failed is read from the socket's monitor, because ZeroMQ itself only ever says
"no reply yet": a refused or silent TCP connect, a security handshake the controller refused
(a wrong token), or a connection closed while a request waited (the controller stopped or
crashed) each end the request within about two seconds with one line naming what to check.
"""

from __future__ import annotations

import errno
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import zmq

from ..common.errors import Bxthre3Error, ClusterError, ProtocolError
from ..dag.spec import DagSpec
from ..wire import protocol
from ..wire.addresses import Address
from ..wire.security import CurveKeys, secure_client
from ..wire.sockets import configure, is_loopback

if TYPE_CHECKING:
    from ..controller.views import (
        ActivityView,
        CacheStats,
        DagSummary,
        QuarantineView,
        ResultsView,
        RetriedSummary,
        StatusView,
        StructureView,
    )

DEFAULT_REQUEST_TIMEOUT_S = 10.0
"""How long a CLI request waits for the controller's reply once it is connected and trusted."""

MAX_REPLY_BYTES = 2 * 1024 * 1024 * 1024 - 1
"""Largest reply a client accepts (a `results` of many big outputs)."""

VERDICT_S = 2.0
"""How long a name lookup, a TCP connect, or the security handshake after it may take before the
request fails saying which one did not happen (a LAN or loopback needs milliseconds for each)."""

PROBE_S = 0.5
"""After ZeroMQ's connect failed: how long a plain TCP connect may take to learn why (refused, no route)."""

SUSPECT_S = 0.5
"""A connection closed mid-handshake becomes "wrong token" if no failed reconnect shows a dead controller
within this long (ZeroMQ reconnects after 0.1 s)."""

GONE_GRACE_MS = 50
"""After the connection closed: how long to look for a reply the controller sent just before."""

_GONE = "gone"
"""`_read_events`' word for "the connection closed while a request waited"."""

TERMINAL_DAG_STATES = frozenset({"succeeded", "failed", "cancelled"})

FIRST_POLL_S = 0.01
"""`wait`'s first pause between progress polls; it grows by half each poll up to its interval."""

_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


ProblemKind = Literal[
    "unresolvable", "refused", "went_away", "unreachable", "silent", "token_refused", "no_token",
    "plaintext_server", "hung", "gone", "no_reply",
]  # fmt: skip
"""What kept a request from its reply, for code that must tell the cases apart (the TUI's words, which
flag or field fixes it): the message says the same to a person, `kind` says it to a program."""


class ConnectionProblem(ClusterError):
    """A request that could not reach the controller, or that the controller would not let in.

    A `ClusterError` (the CLI prints it as before) that also carries `kind` and `address`, so that
    a caller never has to parse the message to know whether the token or the network is at fault."""

    def __init__(self, message: str, *, kind: ProblemKind, address: Address, detail: str = "") -> None:
        super().__init__(message)
        self.kind: ProblemKind = kind
        self.address = address
        self.detail = detail
        """The system's own words where there are some ("No route to host", the resolver's error)."""

    def again(self) -> ConnectionProblem:
        """A fresh exception with the same verdict (a refusal is final, and is raised at each request)."""
        return ConnectionProblem(str(self), kind=self.kind, address=self.address, detail=self.detail)


def _check_resolvable(address: Address, timeout: float = VERDICT_S) -> None:
    """Fail now with the real cause; ZeroMQ would retry an unknown name silently forever.

    The lookup runs in a thread so that a DNS server that never answers costs ``timeout``
    seconds, not the resolver's own retries (tens of seconds)."""
    outcome: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
            outcome.append(None)
        except (OSError, UnicodeError) as exc:
            outcome.append(exc)

    worker = threading.Thread(target=lookup, name="bxthre3-resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise ConnectionProblem(
            f"cannot resolve controller host {address.host!r}: no answer from DNS within {timeout:g}s "
            "(check the name, or give the controller's IP address)",
            kind="unresolvable",
            address=address,
            detail=f"no answer from DNS within {timeout:g}s",
        )
    if outcome[0] is not None:
        raise ConnectionProblem(
            f"cannot resolve controller host {address.host!r}: {outcome[0]} (check the name, or give its IP address)",
            kind="unresolvable",
            address=address,
            detail=str(outcome[0]),
        ) from outcome[0]


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
        self._monitor = self.sock.get_monitor_socket(zmq.EVENT_ALL)
        self._poller = zmq.Poller()
        self._poller.register(self.sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._up_since: float | None = None
        """When the TCP connection came up (None while there is none)."""
        self._trusted = False
        """The security handshake succeeded on the current connection."""
        self._down_since = time.monotonic()
        """Since when there has been no connection (or since connect())."""
        self._suspect: tuple[float, ConnectionProblem] | None = None
        """A handshake that ended with no word from the controller: since when, and the refusal it may be."""
        self._ever_up = False
        """A connection was up once: a refused connect now means the controller went away."""
        self._refusal: ConnectionProblem | None = None
        """A refused handshake: final for this client (its keys do not change; ZeroMQ may not even retry)."""
        self.sock.connect(address.endpoint)
        self._ids = itertools.count(1)
        self._latest_update: StatusView | None = None
        """A pushed update that arrived while a request waited for its reply: kept, not lost."""

    def close(self) -> None:
        try:  # first: a monitor left attached holds the socket's events, and so its connection, open
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(linger=0)
        self.sock.close(linger=0)
        if self._own_context:
            self.context.term()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, make: Callable[[int], protocol.Message]) -> dict[str, Any]:
        """Send one request, wait for its reply; ClusterError saying why if none can come.

        The reply may take up to ``timeout`` seconds; not reaching the controller, a refused
        handshake or a closed connection end the wait at once (or after VERDICT_S)."""
        req_id = next(self._ids)
        self._read_events(in_flight=False)  # a hang-up before this request is no verdict on it
        if self._refusal is not None:
            raise self._refusal.again()
        self.sock.send(protocol.encode(make(req_id)))
        started = time.monotonic()
        deadline = started + self.timeout
        gone = False
        while True:
            now = time.monotonic()
            verdict = self._stalled(now, started)
            if verdict is not None:
                raise verdict
            if now >= deadline:
                raise self._no_reply()
            ready = dict(self._poller.poll(int(max(0.0, min(deadline - now, 0.1)) * 1000)))
            if gone and self.sock not in ready:
                raise self._gone()
            if self.sock in ready:
                try:
                    reply = protocol.decode(self.sock.recv())
                except ProtocolError:
                    continue
                if isinstance(reply, protocol.Update):
                    self._latest_update = cast("StatusView", reply.data)
                    continue
                if isinstance(reply, protocol.Reply) and reply.req_id == req_id:
                    if not reply.ok:
                        raise ClusterError(reply.error)
                    return reply.data
                continue
            if self._monitor in ready:
                problem = self._read_events(in_flight=True)
                if problem is _GONE and self.sock.poll(GONE_GRACE_MS, zmq.POLLIN):
                    gone = True  # but first the reply it may have sent just before
                elif isinstance(problem, ConnectionProblem):
                    raise problem
                elif problem is not None:
                    raise self._gone()

    def _read_events(self, *, in_flight: bool) -> ConnectionProblem | str | None:
        """Follow the connection's life from the monitor; returns why a request in flight cannot be
        answered (a refused connect or handshake, or ``_GONE`` for a hang-up), else None."""
        from zmq.utils.monitor import recv_monitor_message

        for _ in range(10_000):
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return None
            code = event["event"]
            if code == zmq.EVENT_CONNECTED:
                self._up_since, self._trusted, self._ever_up = time.monotonic(), False, True
            elif code == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._trusted, self._suspect = True, None
            elif code & _HANDSHAKE_FAILED:
                self._lost()
                refusal = self._refused_handshake(code, event["value"])
                if code == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and self._suspect is None:
                    # The connection closed mid-handshake: a controller that cannot decrypt our hello
                    # (a wrong token), or one that died. ZeroMQ's reconnect in 0.1 s tells: the same
                    # again, or a connect that fails (see EVENT_CLOSED).
                    self._suspect = (time.monotonic(), refusal)
                    continue
                self._refusal = refusal
                return refusal.again()
            elif code == zmq.EVENT_DISCONNECTED:
                was_up = self._up_since is not None
                self._lost()
                if in_flight and was_up:
                    return _GONE
            elif code == zmq.EVENT_CLOSED and self._up_since is None and (in_flight or self._suspect is not None):
                why = self._probe()  # a connect attempt failed; ZeroMQ does not say why, a plain connect does
                if why is not None:
                    self._suspect = None
                    return why
        return None

    def _lost(self) -> None:
        if self._up_since is not None:
            self._down_since = time.monotonic()
        self._up_since, self._trusted = None, False

    def _problem(self, kind: ProblemKind, message: str, detail: str = "") -> ConnectionProblem:
        return ConnectionProblem(message, kind=kind, address=self.address, detail=detail)

    def _stalled(self, now: float, started: float) -> ConnectionProblem | None:
        """A connect or a handshake that did not happen within VERDICT_S: say which."""
        if self._suspect is not None and now - self._suspect[0] > SUSPECT_S:
            self._refusal = self._suspect[1]  # it did not die: it keeps hanging up on our handshake
            return self._refusal.again()
        if self._up_since is None and now - max(started, self._down_since) > VERDICT_S - PROBE_S:
            why = self._probe()  # a silent network costs the probe's whole PROBE_S: the verdict stays at VERDICT_S
            return why or self._problem(
                "silent",
                f"no answer from {self.address} to connecting within {VERDICT_S:g}s: the device is off or "
                "unreachable from here, the address is wrong, or a firewall drops the connection",
            )
        if self._up_since is not None and not self._trusted and now - max(started, self._up_since) > VERDICT_S:
            return self._problem(
                "hung",
                f"connected to {self.address}, but it did not complete the ZeroMQ handshake within {VERDICT_S:g}s: "
                "the controller is hung or overloaded (check it and its log), or that port is not a bxthre3 controller",
            )
        return None

    def _probe(self) -> ConnectionProblem | None:
        """Why a TCP connect to the controller fails (one plain attempt), or None if it succeeds now."""
        try:
            with socket.create_connection((self.address.host, self.address.port), timeout=PROBE_S):
                return None
        except TimeoutError:
            return None  # silent: the connect verdict speaks when VERDICT_S has passed
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED and self._ever_up:
                return self._problem(
                    "went_away",
                    f"the controller at {self.address} went away: the connection closed and nothing listens there "
                    "now (connection refused): it stopped or crashed (check that it is running, and its log)",
                )
            if exc.errno == errno.ECONNREFUSED:
                return self._problem(
                    "refused",
                    f"nothing is listening at {self.address} (connection refused): is `bxthre3 controller` "
                    f"running on that device, on port {self.address.port}?",
                )
            return self._problem(
                "unreachable",
                f"cannot reach {self.address} ({exc.strerror or exc}): check the address and that this device "
                "is on the controller's network",
                str(exc.strerror or exc),
            )

    def _refused_handshake(self, code: int, value: object) -> ConnectionProblem:
        mismatch = code == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == getattr(
            zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", object()
        )
        kind: ProblemKind
        if self.keys is None:
            kind, what = "no_token", "it expects the cluster token"
        elif mismatch:
            kind = "plaintext_server"
            what = "it runs --insecure (plaintext): pass --insecure too, or restart it without --insecure"
        else:
            kind, what = "token_refused", "the cluster token is not this controller's"
        return self._problem(
            kind,
            f"the controller at {self.address} refused the security handshake: {what} (`bxthre3 token` on the "
            "controller prints it; pass --token or set BXTHRE3_TOKEN)",
        )

    def _gone(self) -> ConnectionProblem:
        return self._problem(
            "gone",
            f"the controller at {self.address} closed the connection before answering: it stopped or crashed "
            "during the request (check that it is running, and its log)",
        )

    def _no_reply(self) -> ConnectionProblem:
        """The request's whole --timeout passed: say how far it got."""
        if self._up_since is None:
            return self._probe() or self._problem(
                "silent",
                f"no answer from {self.address} to connecting within {self.timeout:g}s: the device is off or "
                "unreachable from here, the address is wrong, or a firewall drops the connection",
            )
        if not self._trusted:
            return self._problem(
                "hung",
                f"connected to {self.address}, but it did not complete the ZeroMQ handshake within "
                f"{self.timeout:g}s: the controller is hung or overloaded, or that port is not a bxthre3 controller",
            )
        return self._problem(
            "no_reply",
            f"the controller at {self.address} accepted the connection but sent no reply within {self.timeout:g}s: "
            "it is overloaded or hung (check its log), or pass a longer --timeout",
        )

    def submit(self, spec: DagSpec) -> str:
        data = self.request(lambda r: protocol.Submit(r, spec.to_wire()))
        return str(data["dag_id"])

    # The replies below are the controller's `views` shapes: the casts name what it sends.

    def status(self) -> StatusView:
        return cast("StatusView", self.request(lambda r: protocol.StatusRequest(r)))

    def progress(self, dag_id: str) -> DagSummary:
        return cast("DagSummary", self.request(lambda r: protocol.ProgressRequest(r, dag_id)))

    def results(
        self, dag_id: str, *, with_output: bool = True, task_id: str = "", limit: int = 0, with_files: bool = False
    ) -> ResultsView:
        """One DAG's tasks; ``with_output=False`` leaves out outputs, ``task_id`` asks for one task only,
        ``limit`` caps the tasks sent (unfinished and failed first, then the most recently finished),
        ``with_files`` adds the contents of named outputs (ask per task: they can be 16 MiB each)."""
        return cast(
            "ResultsView",
            self.request(lambda r: protocol.ResultsRequest(r, dag_id, with_output, task_id, limit, with_files)),
        )

    def watch(self, lease: float = 10.0) -> dict[str, Any]:
        """Subscribe to pushed updates; call again before ``lease`` seconds pass to keep them coming."""
        return self.request(lambda r: protocol.WatchRequest(r, lease))

    def next_update(self, timeout: float) -> StatusView | None:
        """The newest pushed status within ``timeout`` seconds (older queued ones are skipped), or None."""
        latest, self._latest_update = self._latest_update, None
        deadline = time.monotonic() + timeout
        while True:
            wait_ms = 0 if latest is not None else max(0.0, deadline - time.monotonic()) * 1000
            if not self.sock.poll(int(wait_ms), zmq.POLLIN):
                return latest
            try:
                msg = protocol.decode(self.sock.recv())
            except ProtocolError:
                continue
            if isinstance(msg, protocol.Update):
                latest = cast("StatusView", msg.data)

    def cancel(self, dag_id: str) -> DagSummary:
        return cast("DagSummary", self.request(lambda r: protocol.CancelRequest(r, dag_id)))

    def retry(self, dag_id: str) -> RetriedSummary:
        """Start the DAG's failed and cancelled tasks again; the reply is its summary plus ``retried``."""
        return cast("RetriedSummary", self.request(lambda r: protocol.RetryRequest(r, dag_id)))

    def trust(self, device: str) -> QuarantineView:
        """Lift a device's quarantine (its id, a 4+ character prefix of it, or its name if unique);
        the reply is the device as it was. ClusterError if nothing quarantined matches, saying why."""
        return cast("QuarantineView", self.request(lambda r: protocol.TrustRequest(r, device)))

    def cache(self, action: str) -> CacheStats:
        """The result cache's figures (``action`` "stats"), or every entry dropped ("clear")."""
        return cast("CacheStats", self.request(lambda r: protocol.CacheRequest(r, action)))

    def activity(self, window_s: float = 120.0) -> ActivityView:
        """Where the cluster's time went over the last ``window_s`` seconds (1-600; longer is capped):
        finishes and each host's busy fraction per second, each host's latest attempts, `tasks_per_s`.
        ClusterError, from the controller, for a window under 1 s; here for one that is not a finite number
        (the wire carries only finite floats: the controller would drop the frame unanswered)."""
        if isinstance(window_s, bool) or not isinstance(window_s, int | float) or not math.isfinite(window_s):
            raise ClusterError(f"activity: window_s must be a finite number of seconds, not {window_s!r}")
        return cast("ActivityView", self.request(lambda r: protocol.ActivityRequest(r, window_s)))

    def structure(self, dag_id: str) -> StructureView:
        """The DAG's tasks in groups by stage (at most 200 groups), with counts per state."""
        return cast("StructureView", self.request(lambda r: protocol.StructureRequest(r, dag_id)))

    def wait(
        self,
        dag_id: str,
        on_progress: Callable[[DagSummary], None] | None = None,
        *,
        interval: float = 0.1,
        timeout: float | None = None,
    ) -> DagSummary:
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
