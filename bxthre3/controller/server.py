"""The controller's I/O loop: a ZeroMQ ROUTER turning frames into scheduler events.

Everything here is translation and bookkeeping of connections; policy lives in
:mod:`bxthre3.scheduler`. No frame, however hostile, raises out of :meth:`Controller.serve`.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import zmq

from .. import __version__
from ..common.errors import ClusterError, ProtocolError
from ..common.failures import FailureReason
from ..common.limits import (
    MAX_SUBMISSIONS_QUEUED_BYTES,
    MAX_TASKS_HELD,
    SUBMIT_BURST,
    SUBMIT_RATE,
    SUBMIT_TOTAL_BURST,
    SUBMIT_TOTAL_RATE,
    MiB,
)
from ..common.status_file import StatusFile
from ..common.stop_event import wake_fd
from ..dag.fields import output_files_problem
from ..dag.spec import DagSpec
from ..dag.structure import DagStructure, dag_structure
from ..scheduler import (
    AbortAttempt,
    AckResult,
    Assign,
    AttemptEnded,
    CacheEvicted,
    CacheMissing,
    CacheServed,
    DagCancelled,
    DagFinished,
    DagRecord,
    DagRetried,
    DagSubmitted,
    DeviceTrusted,
    ForgetHost,
    HostJoined,
    HostLeft,
    HostSeen,
    Instruction,
    RefuseHost,
    Scheduler,
    SchedulerConfig,
    ServeCached,
    StoreCached,
    TaskFinished,
    Tick,
)
from ..scheduler.core import REPLACED
from ..wire import protocol
from ..wire.security import CurveKeys, HandshakeGuard, host_key_pin, secure_server
from ..wire.sockets import configure, is_loopback
from . import views
from .quarantine import resolve as resolve_quarantined
from .rate_limit import PerPeerLimit, TokenBucket
from .store import DEFAULT_CACHE_BYTES, DISK_FULL, MEMORY, JournalWriteError, PrunePolicy, Store
from .submissions import DECODE_OFF_LOOP_BYTES, SubmissionWorker, SubmitJob, SubmitOutcome, is_submit

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger("bxthre3.controller")  # the name log lines show: kept from before the move to packages

TICK_INTERVAL_S = 0.1
"""How often liveness is checked and idle hosts are sent heartbeats at most."""

HOST_SAID_GOODBYE = "said goodbye"

PUSH_INTERVAL_S = 0.25
"""At most this often a subscriber gets a pushed update (bursts of changes coalesce)."""

RATE_PUSH_S = 1.0
"""While only `tasks_per_s` changes (it decays for up to 10 s after work stops), a push at most this often."""

MAX_WATCHERS = 64
"""Most UI clients subscribed at once."""

PRUNE_INTERVAL_S = 60.0
"""How often finished DAGs are checked against the prune policy."""

MIN_HOST_KEY_BYTES = 16
MAX_HOST_KEY_BYTES = 64
"""A `register`'s `key` (hosts send 32 random bytes): short keys could be guessed, long ones waste memory."""

MAX_BATCH = 2000
"""Frames handled per wake-up before timers get a turn, so a flood cannot starve liveness."""

MAX_TURN_S = 0.05
"""Also stop reading after this long: replies, acks and assignments go out only after the turn's commit,
and 2,000 frames of hosts' `batch`es were up to 10,000 results and 3.5 s in which no host heard a word
(1,000 simulated hosts; their heartbeats would have timed out, and they sat idle waiting for work)."""

_TURN_CHECK = 32
"""Frames between two looks at the clock while reading."""

LISTEN_BACKLOG = 4096
"""Pending TCP connections the controller's port queues (see `bind`)."""

MAX_HEARD_LAG_S = 30.0
"""Silence is counted up to when the inbound queue was last empty (`Tick.heard_until`), but never more than
this far back: a queue that never empties (a flood) must not keep dead hosts alive forever."""

JOURNAL_RETRY_S = 1.0
"""While the journal cannot be written (disk full), how often a commit is tried again."""

JOURNAL_LOG_EVERY_S = 60.0
"""While it cannot, how often the log says so (one line, not one per batch)."""

_FREE_KINDS = (protocol.Welcome, protocol.Reject, protocol.Reregister, protocol.Heartbeat)
"""Frames that promise nothing the journal holds: they go out even while it cannot be written."""

_READ_REQUESTS = (
    protocol.StatusRequest,
    protocol.WatchRequest,
    protocol.ProgressRequest,
    protocol.ResultsRequest,
    protocol.ActivityRequest,
    protocol.StructureRequest,
)
_WRITE_REQUESTS = (protocol.Submit, protocol.CancelRequest, protocol.RetryRequest, protocol.TrustRequest)

HostMessage: TypeAlias = protocol.Register | protocol.Heartbeat | protocol.Result | protocol.Bye
"""What hosts send (the host protocol, docs/protocol.md)."""
ReadRequest: TypeAlias = (
    protocol.StatusRequest
    | protocol.ProgressRequest
    | protocol.ResultsRequest
    | protocol.ActivityRequest
    | protocol.StructureRequest
)
WriteRequest: TypeAlias = protocol.Submit | protocol.CancelRequest | protocol.RetryRequest | protocol.TrustRequest


class Controller:
    """Serve one ROUTER socket until told to stop."""

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int = 5000,
        config: SchedulerConfig | None = None,
        context: zmq.Context | None = None,
        clock: Callable[[], float] = time.time,
        state_dir: Path | str = MEMORY,
        prune: PrunePolicy | None = None,
        metrics: Metrics | None = None,
        status_file: StatusFile | None = None,
        keys: CurveKeys | None = None,
        cache_size: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.bind_host = host
        self.keys = keys
        """The cluster's CURVE keys; None only with --insecure on loopback (checked in `bind`)."""
        self.token: str | None = None
        """The token the keys come from, shown to the local UI through the status file (mode 0600)."""
        self.guard: HandshakeGuard | None = None
        self.port = port
        self.cache_size = max(0, cache_size)
        """Bytes the result cache may hold (`--cache-size`); 0 turns the cache off."""
        self.config = dataclasses.replace(config or SchedulerConfig(), result_cache=self.cache_size > 0)
        self.scheduler = Scheduler(self.config)
        self._cache_asks: deque[ServeCached] = deque()
        """ServeCached instructions not answered yet: answered one by one by the outermost `_apply` (a long
        chain of cached tasks would otherwise recurse once per task)."""
        self._answering = False
        self.clock = clock
        """Wall-clock seconds: times are journalled and must mean something after a restart."""
        self.state_dir = state_dir
        self.prune_policy = prune or PrunePolicy()
        self.store: Store | None = None
        self.outbox: list[tuple[bytes, bytes]] = []
        """Frames of this batch, sent only after the journal commit that makes them true."""
        self._next_prune = 0.0
        self.metrics = metrics
        self.status_file = status_file
        self.status_extra: Callable[[], dict[str, Any]] | None = None
        """More state for the status file (the node manager's, when one runs in this process)."""
        self.started_at = clock()
        self.submit_limit = PerPeerLimit(SUBMIT_RATE, SUBMIT_BURST)
        self.submit_total = TokenBucket(SUBMIT_TOTAL_RATE, SUBMIT_TOTAL_BURST, SUBMIT_TOTAL_BURST, 0.0)
        """All connections together: members are trusted, but a runaway script opening connections is not."""
        self.watchers: dict[bytes, float] = {}
        self._structures: dict[str, tuple[DagSpec, DagStructure]] = {}
        """DAG id -> (its spec, its groups and stages): see `_structure_of`."""
        """Subscribed UI clients: identity -> lease end."""
        self._watch_seq = 0
        self._last_pushed: Any = None
        self._pushed_rate: float | None = None
        self._rate_pushed_at = 0.0
        self._next_push = 0.0
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.sock: zmq.Socket | None = None
        self.modules: dict[str, bytes] = {}
        self.identities: dict[str, bytes] = {}
        self.dropped_frames = 0
        self._drop_log_at = 0.0
        self._beat_due: deque[tuple[float, str]] = deque()
        """(when, host id) of the next stamped heartbeat each host gets, in time order: a host that joins is
        appended due at once, and each one sent is appended due an interval later, so a tick sends only
        what is due (10,000 hosts: ~1,000 a tick, not 10,000 every tenth tick and a walk over all each)."""
        self._heard_until: float | None = None
        """When the inbound queue was last seen empty (see `Tick.heard_until`): liveness counts silence to here."""
        self._beat_at: dict[str, float] = {}
        """Host id -> the time of its one current entry in `_beat_due` (others are stale: it joined again)."""
        self.journal_error: JournalWriteError | None = None
        """Why the last commit failed (disk full), until one succeeds: writes are refused meanwhile."""
        self.held: list[tuple[bytes, bytes]] = []
        """Frames that need a commit that failed (acks, assignments, accepted requests): sent after the next."""
        self._journal_failed_at = 0.0
        self._journal_retry_at = 0.0
        self._journal_logged_at = float("-inf")
        self._handling_read = False
        self._quarantine_logged: set[str] = set()
        """Quarantined device ids the log has told of (a new one gets a warning at the next flush)."""
        self.ready = threading.Event()
        """Set once the socket is bound; ``port`` then holds the real port."""
        self.submissions = SubmissionWorker()
        """Decodes and validates submissions off the loop, in arrival order (see `submissions`)."""
        self.owns_process = False
        """True for the `controller` role: big DAGs' objects may then be frozen out of the GC's reach
        (`gc.freeze`), which an embedding process (tests, `bxthre3 run`) would not want."""

    # ------------------------------------------------------------------ lifecycle

    def open_state(self) -> int:
        """Open the journal and restore what it holds; returns the number of DAGs restored."""
        if self.store is not None:
            return 0
        store = Store(self.state_dir)
        store.cache_cap = self.cache_size
        now = self.clock()
        try:
            restored = store.load(self.scheduler, now)
            self.modules.update(store.modules())
        except BaseException:  # a damaged journal: nothing half-restored may survive a retry (--reset-state)
            store.close()
            self.scheduler = Scheduler(self.config)
            self.modules.clear()
            raise
        self.store = store
        if restored and self.owns_process:
            # Restored DAGs live until pruned and hold no cycles: frozen, the GC's full collections
            # stop walking them (~0.25 s of stalled loop each with a 100,000-task DAG; see submissions.py).
            gc.freeze()
        if restored:
            running = sum(1 for d in self.scheduler.dags.values() if d.state.value == "running")
            log.info("restored %d DAG(s) from %s (%d still running)", restored, self.state_dir, running)
        if self.scheduler.quarantined:
            self._quarantine_logged = set(self.scheduler.quarantined)
            names = ", ".join(f"{q.device!r} ({q.device_id})" for q in self.scheduler.quarantined.values())
            log.warning("%d device(s) still quarantined: %s; `bxthre3 hosts trust DEVICE` lets one back",
                        len(self.scheduler.quarantined), names)  # fmt: skip
        return restored

    def bind(self) -> int:
        if self.keys is None and not is_loopback(self.bind_host):
            raise ClusterError(
                f"refusing to serve plaintext on {self.bind_host}: --insecure is for loopback only "
                "(drop --insecure to use the cluster token)"
            )
        self.open_state()
        sock = configure(self.context.socket(zmq.ROUTER))
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # Connections waiting to be accepted: ZeroMQ's default of 100 overflowed when thousands of hosts
        # (re)connect at once (a controller restart), and each dropped SYN costs its host 1, 3, 7 s... of TCP
        # backoff. The kernel caps it at net.core.somaxconn (4096 on current Linux).
        sock.setsockopt(zmq.BACKLOG, LISTEN_BACKLOG)
        if self.keys is not None:
            self.guard = HandshakeGuard(self.context, self.keys)
            self.guard.bind_zap()  # answered by `serve`'s loop: see `HandshakeGuard.bind_zap`
            secure_server(sock, self.keys)
            self.guard.watch(sock)
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        if ":" in self.bind_host:
            sock.setsockopt(zmq.IPV6, 1)
        try:
            if self.port == 0:
                self.port = sock.bind_to_random_port(f"tcp://{host}", min_port=20000, max_port=60000)
            else:
                sock.bind(f"tcp://{host}:{self.port}")
        except zmq.ZMQError as exc:
            sock.close()
            raise ClusterError(f"cannot listen on {host}:{self.port}: {exc}") from exc
        self.sock = sock
        self.ready.set()
        security = f"CURVE, keys {self.keys.fingerprint()}" if self.keys else "PLAINTEXT (--insecure)"
        log.info("controller listening on %s:%d (%s)", host, self.port, security)
        return self.port

    def close(self) -> None:
        self.submissions.close()
        if self.guard is not None:
            self.guard.stop()
            self.guard = None
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._own_context:
            self.context.term()

    def serve(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; checks it at least every TICK_INTERVAL_S."""
        if self.sock is None:
            self.bind()
        assert self.sock is not None
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        stop_fd = wake_fd(stop)
        if stop_fd is not None:
            poller.register(stop_fd, zmq.POLLIN)  # stop at once, not at the next tick
        next_tick = self.clock()
        if self.guard is not None and self.guard.monitor is not None:
            poller.register(self.guard.monitor, zmq.POLLIN)
        if self.guard is not None and self.guard.zap is not None:
            poller.register(self.guard.zap, zmq.POLLIN)
        self.submissions.freeze = self.owns_process
        self.submissions.start()
        poller.register(self.submissions.fileno(), zmq.POLLIN)
        while not stop.is_set():
            timeout_ms = max(0.0, (next_tick - self.clock()) * 1000)
            events = dict(poller.poll(int(timeout_ms)))
            if self.sock in events:
                self._drain()
            else:
                self._heard_until = self.clock()  # nothing waiting: every frame that came is handled
            if self.submissions.fileno() in events:
                for outcome in self.submissions.take():
                    try:
                        self._accept(outcome)
                    except Exception:  # a bug (or the journal failing) must not take the controller down
                        log.exception("internal error accepting a DAG")
                        error = "internal error while accepting the DAG (see the controller log)"
                        self._send(outcome.job.identity, protocol.Reply(outcome.job.req_id, False, {}, error))
            if self.guard is not None and self.guard.monitor in events:
                self.guard.read_events()
            if self.guard is not None and self.guard.zap in events:
                self.guard.serve_pending()
            now = self.clock()
            if now >= next_tick:
                heard = None if self._heard_until is None else max(self._heard_until, now - MAX_HEARD_LAG_S)
                self._apply(self.scheduler.handle(Tick(now, heard)))
                self._heartbeat_hosts(now)
                if now >= self._next_prune:
                    self._prune(now)
                if self.metrics is not None:
                    from .metrics import take_snapshot  # prometheus_client only when metrics are on (~5 MB)

                    self.metrics.publish(take_snapshot(self.scheduler, self.dropped_frames))
                if self.watchers and now >= self._next_push:
                    self._push_updates(now)
                if self.status_file is not None:
                    self.status_file.maybe_write(functools.partial(self._own_status, now))
                next_tick = now + TICK_INTERVAL_S
            self._commit_and_send()

    # ------------------------------------------------------------------ inbound

    def _drain(self) -> None:
        assert self.sock is not None
        until = time.monotonic() + MAX_TURN_S
        for n in range(MAX_BATCH):
            if n % _TURN_CHECK == _TURN_CHECK - 1 and time.monotonic() > until:
                return
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                self._heard_until = self.clock()
                return
            if len(frames) != 2:
                self._drop(f"{len(frames)} frames instead of 2")
                continue
            identity, payload = frames
            if len(payload) >= DECODE_OFF_LOOP_BYTES:
                req_id = is_submit(payload)
                if req_id is not None:  # a big DAG: decoded on the submission thread, not here
                    self._submit(identity, req_id, payload=payload)
                    continue
            try:
                message = protocol.decode(payload)
            except protocol.PoisonResult as exc:
                self._drop(str(exc))
                self._handle_safely(identity, _poison_result(exc))
                continue
            except ProtocolError as exc:
                self._refuse(identity, payload, str(exc))
                continue
            for item in protocol.unbatch(message):
                if isinstance(item, protocol.PoisonResult):
                    self._drop(str(item))
                    item = _poison_result(item)
                elif isinstance(item, ProtocolError):
                    self._drop(str(item))
                    continue
                self._handle_safely(identity, item)

    def _handle_safely(self, identity: bytes, item: protocol.Message) -> None:
        """Handle one message; an error in its handler drops (and counts) that message, nothing else."""
        try:
            self._handle(identity, item)
        except Exception:  # a bug must not take the controller down; it is logged loudly
            log.exception("internal error handling %s", type(item).__name__)
            self.dropped_frames += 1

    def _refuse(self, identity: bytes, payload: bytes, why: str) -> None:
        version, kind = protocol.peek_kind(payload)
        if kind == protocol.Register.KIND and version != protocol.PROTOCOL_VERSION:
            reason = f"controller speaks protocol {protocol.PROTOCOL_VERSION}, host sent {version!r}; upgrade"
            self._send(identity, protocol.Reject(reason))
        self._drop(why)

    def _drop(self, why: str) -> None:
        self.dropped_frames += 1
        now = self.clock()
        if now - self._drop_log_at >= 1.0:
            self._drop_log_at = now
            log.warning("dropped a bad frame (%s); %d dropped so far", why, self.dropped_frames)

    def _handle(self, identity: bytes, msg: protocol.Message) -> None:
        """Route one message by kind: the host protocol, client requests, or a UI's subscription."""
        now = self.clock()
        self._handling_read = type(msg) in _READ_REQUESTS  # its reply promises nothing durable (see _send)
        match msg:
            case protocol.Result() | protocol.Heartbeat() | protocol.Register() | protocol.Bye():
                self._from_host(identity, msg, now)
            case protocol.Submit() | protocol.CancelRequest() | protocol.RetryRequest() | protocol.TrustRequest():
                self._write_request(identity, msg, now)
            case (
                protocol.StatusRequest()
                | protocol.ProgressRequest()
                | protocol.ResultsRequest()
                | protocol.ActivityRequest()
                | protocol.StructureRequest()
            ):
                self._read_request(identity, msg, now)
            case protocol.WatchRequest():
                self._watch(identity, msg, now)
            case protocol.CacheRequest():
                self._cache_request(identity, msg, now)
            case _:
                self._drop(f"unexpected {type(msg).__name__} from a peer")

    # ------------------------------------------------------------------ the host protocol

    def _from_host(self, identity: bytes, msg: HostMessage, now: float) -> None:
        host_id = identity.hex()
        match msg:
            case protocol.Register():
                self._register(identity, host_id, msg, now)
            case protocol.Bye():
                self._apply(self.scheduler.handle(HostLeft(host_id, now, HOST_SAID_GOODBYE)))
            case _ if host_id not in self.scheduler.hosts:
                # A host we do not know (we restarted, or declared it dead): have it register again
                # now instead of after its liveness runs out; its results come again after that.
                self._send(identity, protocol.Reregister())
            case protocol.Result():
                self._result(host_id, msg, now)
            case protocol.Heartbeat():
                # The echo of one of our stamps: a round trip, less the time the host held it (our clock only).
                rtt = now - msg.echo - max(0.0, msg.held) if msg.echo > 0 else None
                self._apply(self.scheduler.handle(HostSeen(host_id, now, msg.rss_mb, msg.paused[:200], rtt)))

    def _result(self, host_id: str, msg: protocol.Result, now: float) -> None:
        reason = _parse_reason(msg.reason)
        error, files = msg.error, msg.files or None
        if files is not None:
            reason, error, files = _check_files(reason, error, files, len(msg.output))
        self._apply(
            self.scheduler.handle(
                TaskFinished(
                    host_id=host_id,
                    dag_id=msg.dag_id,
                    task_id=msg.task_id,
                    attempt=msg.attempt,
                    now=now,
                    output=msg.output,
                    stderr=msg.stderr,
                    exit_code=msg.exit_code,
                    reason=reason,
                    error=error,
                    duration=msg.duration,
                    files=files,
                )
            )
        )

    def _register(self, identity: bytes, host_id: str, msg: protocol.Register, now: float) -> None:
        if msg.slots < 1 or msg.slots > 1024 or msg.ram_mb < 0 or not msg.node_id or len(msg.node_id) > 128:
            self._send(identity, protocol.Reject("register: slots must be 1-1024, ram_mb >= 0, node_id 1-128 chars"))
            return
        if not MIN_HOST_KEY_BYTES <= len(msg.key) <= MAX_HOST_KEY_BYTES:
            size = f"{MIN_HOST_KEY_BYTES}-{MAX_HOST_KEY_BYTES}"
            reason = f"register: a host key of {size} bytes is required (an older host? upgrade it)"
            self._send(identity, protocol.Reject(reason))
            return
        self.identities[host_id] = identity
        event = HostJoined(
            host_id=host_id,
            node_id=msg.node_id,
            slots=msg.slots,
            ram_mb=msg.ram_mb,
            now=now,
            platform=msg.platform[:64],
            engine=msg.engine[:64],
            modules=frozenset(m for m in msg.modules if m in self.modules),
            holding=tuple((d, t, a) for d, t, a in msg.holding[:4096]),
            device=msg.device[:64],
            device_id=msg.device_id[:64],
            device_ram_mb=max(0, msg.device_ram_mb),
            device_cpus=max(0, msg.device_cpus),
            key=host_key_pin(msg.key),
        )
        instructions = self.scheduler.handle(event)
        if not any(type(i) is RefuseHost for i in instructions):
            log.info("host %r joined: %d slot(s), %d MB, %r", msg.node_id, msg.slots, msg.ram_mb, msg.platform[:64])
            self._send(identity, protocol.Welcome(msg.node_id, self.config.heartbeat_interval, self.config.liveness))
            self._beat_due.appendleft((now, host_id))  # probed at the next tick (see _heartbeat_hosts)
            self._beat_at[host_id] = now
        self._apply(instructions)

    # ------------------------------------------------------------------ client requests

    def _read_request(self, identity: bytes, msg: ReadRequest, now: float) -> None:
        """Status, progress and results: answered even while the journal cannot be written."""
        match msg:
            case protocol.StatusRequest():
                stats: views.ControllerStats = {
                    "dropped_frames": self.dropped_frames,
                    "auth_failures": self.guard.failures if self.guard else 0,
                    "version": __version__,
                    "submissions_validating": self.submissions.queued,
                    "journal_error": str(self.journal_error) if self.journal_error else None,
                }
                self._reply(identity, msg.req_id, views.status_view(self.scheduler, now, stats))
            case protocol.ProgressRequest():
                dag = self._dag_named(identity, msg.req_id, msg.dag_id)
                if dag is not None:
                    self._reply(identity, msg.req_id, views.dag_summary(dag, now))
            case protocol.ResultsRequest():
                dag = self._dag_named(identity, msg.req_id, msg.dag_id)
                if dag is None:
                    return
                if msg.task_id and msg.task_id not in dag.tasks:
                    error = f"no task {msg.task_id!r} in DAG {msg.dag_id!r}"
                    self._send(identity, protocol.Reply(msg.req_id, False, {}, error))
                    return
                view = views.results_view(
                    dag, self.scheduler, now, msg.with_output, msg.task_id, max(0, msg.limit), msg.with_files
                )
                self._reply(identity, msg.req_id, view)
            case protocol.ActivityRequest():
                try:
                    window = views.activity_window(msg.window_s)
                except ValueError as e:
                    self._send(identity, protocol.Reply(msg.req_id, False, {}, str(e)))
                    return
                self._reply(identity, msg.req_id, views.activity_view(self.scheduler, now, window))
            case protocol.StructureRequest():
                dag = self._dag_named(identity, msg.req_id, msg.dag_id)
                if dag is not None:
                    self._reply(identity, msg.req_id, views.structure_view(dag, self._structure_of(dag)))

    def _structure_of(self, dag: DagRecord) -> DagStructure:
        """The DAG's groups and stages, computed on its first `structure` request and kept while the DAG is
        held (a DAG never changes once submitted): ~0.2 s of loop for 100,000 tasks, once."""
        cached = self._structures.get(dag.id)
        if cached is not None and cached[0] is dag.spec:
            return cached[1]
        if len(self._structures) >= len(self.scheduler.dags):  # drop those of pruned DAGs
            for gone in [d for d in self._structures if d not in self.scheduler.dags]:
                del self._structures[gone]
        found = dag_structure(dag.spec)
        self._structures[dag.id] = (dag.spec, found)
        return found

    def _write_request(self, identity: bytes, msg: WriteRequest, now: float) -> None:
        """Submit, cancel, retry and trust: refused while the journal cannot be written."""
        if self.journal_error is not None:
            self._send(identity, protocol.Reply(msg.req_id, False, {}, self._write_refusal()))
            return
        match msg:
            case protocol.Submit():
                self._submit(identity, msg.req_id, message=msg)
            case protocol.CancelRequest():
                self._cancel(identity, msg, now)
            case protocol.RetryRequest():
                self._retry(identity, msg, now)
            case protocol.TrustRequest():
                self._trust(identity, msg, now)

    def _cache_request(self, identity: bytes, msg: protocol.CacheRequest, now: float) -> None:
        """`bxthre3 cache stats|clear`: the result cache's figures, or every entry dropped (journalled first)."""
        if msg.action not in ("stats", "clear"):
            self._send(identity, protocol.Reply(msg.req_id, False, {}, f"unknown cache action {msg.action[:40]!r}"))
            return
        assert self.store is not None
        cleared = 0
        if msg.action == "clear":
            if self.journal_error is not None:
                self._send(identity, protocol.Reply(msg.req_id, False, {}, self._write_refusal()))
                return
            keys = self.store.cache_clear()
            cleared = len(keys)
            if keys:
                self._apply(self.scheduler.handle(CacheEvicted(frozenset(keys), now)))
            log.info("result cache cleared on request: %d entries dropped", cleared)
        else:
            self._handling_read = True
        stats = self.store.cache_stats()
        reply: views.CacheStats = {
            "entries": stats["entries"],
            "bytes": stats["bytes"],
            "cap": stats["cap"],
            "hits": self.scheduler.cache_hits,
            "misses": self.scheduler.cache_misses,
            "cleared": cleared,
            "enabled": self.config.result_cache,
            "in_memory": self.state_dir == MEMORY,
        }
        self._reply(identity, msg.req_id, reply)

    def _dag_named(self, identity: bytes, req_id: int, dag_id: str) -> DagRecord | None:
        """The DAG a request names, or None once the client is told there is none."""
        dag = self.scheduler.dags.get(dag_id)
        if dag is None:
            self._send(identity, protocol.Reply(req_id, False, {}, f"no DAG with id {dag_id!r}"))
        return dag

    def _cancel(self, identity: bytes, msg: protocol.CancelRequest, now: float) -> None:
        dag = self._dag_named(identity, msg.req_id, msg.dag_id)
        if dag is None:
            return
        self._apply(self.scheduler.handle(DagCancelled(msg.dag_id, now)))
        log.info("DAG %s cancelled on request", msg.dag_id)
        self._reply(identity, msg.req_id, views.dag_summary(dag, now))

    def _retry(self, identity: bytes, msg: protocol.RetryRequest, now: float) -> None:
        dag = self._dag_named(identity, msg.req_id, msg.dag_id)
        if dag is None:
            return
        again = len(self.scheduler.tasks_to_retry(dag))
        if again == 0:
            error = f"DAG {msg.dag_id!r} has no failed, upstream-failed or cancelled task to retry"
            self._send(identity, protocol.Reply(msg.req_id, False, {}, error))
            return
        self._apply(self.scheduler.handle(DagRetried(msg.dag_id, now)))
        log.info("DAG %s: %d task(s) retried on request", msg.dag_id, again)
        retried: views.RetriedSummary = {**views.dag_summary(dag, now), "retried": again}
        self._reply(identity, msg.req_id, retried)

    def _trust(self, identity: bytes, msg: protocol.TrustRequest, now: float) -> None:
        """Lift a device's quarantine; the reply is the device as it was (journalled before it goes out)."""
        record, error = resolve_quarantined(self.scheduler.quarantined, self.scheduler.hosts.values(), msg.device)
        if record is None:
            self._send(identity, protocol.Reply(msg.req_id, False, {}, error))
            return
        trusted = views.quarantine_view(record, self.scheduler.hosts.values())
        self._apply(self.scheduler.handle(DeviceTrusted(record.device_id, now)))
        log.warning(
            "device %r (%s) trusted again on request: it was quarantined for %d mismatch(es) (%s)",
            record.device, record.device_id, record.mismatches, record.reason,
        )  # fmt: skip
        self._reply(identity, msg.req_id, trusted)

    def _submit(
        self, identity: bytes, req_id: int, *, payload: bytes | None = None, message: protocol.Submit | None = None
    ) -> None:
        """Hand a submission to the submission thread; `_accept` finishes it when it comes back.

        The rate limits are applied here, as it arrives; a refusal still goes through the queue
        so that one client's replies come in the order of its submissions."""
        now = self.clock()
        job = SubmitJob(identity, req_id, payload, message)
        if not self.submit_limit.allow(identity, now) or not self.submit_total.take(now):
            job.refused = (
                f"too many submissions: {SUBMIT_BURST} at once, then {SUBMIT_RATE:g} per second per connection, "
                f"{SUBMIT_TOTAL_RATE:g} per second in all; retry later"
            )
        elif self.submissions.queued_bytes + job.size > MAX_SUBMISSIONS_QUEUED_BYTES:
            job.refused = (
                f"the controller is still validating {self.submissions.queued_bytes / MiB:.0f} MiB of earlier "
                "submissions; retry in a few seconds"
            )
        if job.refused:
            job.payload = job.message = None  # nothing to decode: do not hold the frame
        self.submissions.put(job)

    def _accept(self, outcome: SubmitOutcome) -> None:
        """Add a validated DAG (its records were built off the loop), or reply why not."""
        job = outcome.job
        if outcome.bad_frame:
            self._drop(outcome.bad_frame)
            return
        if outcome.spec is None or outcome.prepared is None:
            if not job.refused:
                log.warning("rejected a DAG submission: %s", outcome.error)
            self._send(job.identity, protocol.Reply(job.req_id, False, {}, outcome.error))
            return
        spec, now = outcome.spec, self.clock()
        held = sum(len(d.tasks) for d in self.scheduler.dags.values())
        if held + len(spec.tasks) > MAX_TASKS_HELD:
            error = (
                f"the controller holds {held:,} tasks and takes at most {MAX_TASKS_HELD:,}; this DAG has "
                f"{len(spec.tasks):,}: wait for running DAGs to finish (finished ones are pruned)"
            )
            self._send(job.identity, protocol.Reply(job.req_id, False, {}, error))
            return
        dag_id = self._new_dag_id()
        self.modules.update(spec.modules)
        assert self.store is not None
        try:
            self.store.add_dag(dag_id, spec, now, outcome.blob)  # committed at once: accepted only once journalled
        except JournalWriteError as exc:
            self._journal_failed(exc)
            self._send(job.identity, protocol.Reply(job.req_id, False, {}, self._write_refusal()))
            return
        log.info("accepted DAG %s (%r, %d tasks)", dag_id, spec.name, len(spec.tasks))
        self._reply(job.identity, job.req_id, {"dag_id": dag_id})
        outcome.prepared.record.submitted_at = now
        self._apply(self.scheduler.handle(DagSubmitted(dag_id, spec, now, outcome.prepared)))

    def _new_dag_id(self) -> str:
        while True:
            dag_id = f"dag-{os.urandom(4).hex()}"
            if dag_id not in self.scheduler.dags:
                return dag_id

    # ------------------------------------------------------------------ outbound

    def _apply(self, instructions: list[Instruction]) -> None:
        for ins in instructions:
            if isinstance(ins, Assign):
                identity = self.identities.get(ins.host_id)
                module = self.modules[ins.module_sha] if ins.ship_module else b""
                frame = protocol.Assign(
                    ins.dag_id,
                    ins.task_id,
                    ins.attempt,
                    ins.module_sha,
                    module,
                    list(ins.args),
                    ins.stdin,
                    list(ins.input_sizes),
                    ins.timeout,
                    dict(ins.files) if ins.files else _NO_FILES,
                    ins.deterministic,
                )
                if identity is None:
                    self._apply(self.scheduler.handle(HostLeft(ins.host_id, self.clock(), "unreachable")))
                else:
                    self._send(identity, frame)
            elif isinstance(ins, (AckResult, AbortAttempt)):
                identity = self.identities.get(ins.host_id)
                if identity is not None:
                    kind = protocol.Ack if isinstance(ins, AckResult) else protocol.Abort
                    self._send(identity, kind(ins.dag_id, ins.task_id, ins.attempt))
            elif isinstance(ins, ForgetHost):
                identity = self.identities.pop(ins.host_id, None)
                if identity is not None and ins.reason == REPLACED:
                    # Tell the older one, or two hosts sharing a node id would evict each other forever.
                    duplicate = (
                        f"another host registered with node id {ins.node_id!r} and this host's key (this host "
                        "started twice, or its device cloned with its state directory)"
                    )
                    reason = f"another host registered with node id {ins.node_id!r}; give each host a unique --node-id"
                    self._send(identity, protocol.Reject(reason, duplicate))
                level = logging.INFO if ins.reason == HOST_SAID_GOODBYE else logging.WARNING
                log.log(level, "host %s removed: %s", ins.node_id or ins.host_id, ins.reason)
            elif isinstance(ins, AttemptEnded):
                if self.metrics is not None:
                    self.metrics.observe(ins.duration, outcome=ins.outcome, engine=ins.engine)
            elif isinstance(ins, DagFinished):
                dag = self.scheduler.dags.get(ins.dag_id)
                line = views.dag_end_line(dag) if dag is not None else f"DAG {ins.dag_id} {ins.state.value}"
                log.log(logging.WARNING if ins.state.value == "failed" else logging.INFO, "%s", line)
            elif isinstance(ins, ServeCached):
                self._cache_asks.append(ins)
            elif isinstance(ins, StoreCached):
                if self.store is not None:
                    evicted = self.store.cache_put(ins.key, ins.output, ins.files)
                    if evicted:
                        self._apply(self.scheduler.handle(CacheEvicted(frozenset(evicted), self.clock())))
            elif isinstance(ins, RefuseHost):
                # The live holder of the node id keeps its connection; only the claimant hears of it.
                keep = ins.host_id in self.scheduler.hosts
                identity = self.identities.get(ins.host_id) if keep else self.identities.pop(ins.host_id, None)
                if identity is not None:
                    self._send(identity, protocol.Reject(ins.reason, ins.duplicate))
                log.warning("refused a registration as %r: the node id is held by a live host with another key",
                            ins.node_id)  # fmt: skip

        if self._cache_asks and not self._answering:
            self._answer_cache()

    def _answer_cache(self) -> None:
        """Answer each ServeCached from the store: the entry's output (the task succeeds, `cached`), or that it
        is gone (the task runs). What those events release (dependents served in turn) is answered here too."""
        self._answering = True
        try:
            while self._cache_asks:
                ask = self._cache_asks.popleft()
                entry = self.store.cache_get(ask.key) if self.store is not None else None
                now = self.clock()
                if entry is None:
                    event: CacheServed | CacheMissing = CacheMissing(ask.dag_id, ask.task_id, ask.key, now)
                else:
                    event = CacheServed(ask.dag_id, ask.task_id, ask.key, now, entry[0], entry[1])
                self._apply(self.scheduler.handle(event))
        finally:
            self._answering = False

    def _heartbeat_hosts(self, now: float) -> None:
        """Every interval, each host gets a heartbeat stamped with our clock (echoed back at once: its
        round trip) and the silence limit we apply to it (it waits as long for us before reconnecting).

        A host that just joined is probed at once: until its first echo its limit is the LAN one, and it
        may already be busy behind a slow link. Each host keeps the phase it joined at, so 10,000 hosts'
        heartbeats (and their echoes) spread over the interval instead of coming as one burst."""
        hosts, due, interval = self.scheduler.hosts, self._beat_due, self.config.heartbeat_interval
        while due and due[0][0] <= now:
            at, host_id = due.popleft()
            if self._beat_at.get(host_id) != at:
                continue  # stale: the host joined again since (its new entry counts)
            host = hosts.get(host_id)
            identity = self.identities.get(host_id)
            if host is None or identity is None:
                del self._beat_at[host_id]  # gone (one that joins again is due again)
                continue
            limit = self.scheduler.silence_limit(host)
            rto = host.rtt.rto if host.rtt.srtt is not None else 0.0
            self._send_raw(identity, protocol.encode(protocol.Heartbeat(stamp=now, silence_s=limit, rto_s=rto)))
            self._beat_at[host_id] = now + interval
            due.append((now + interval, host_id))

    def _reply(self, identity: bytes, req_id: int, data: Mapping[str, Any]) -> None:
        """Answer a request; ``data`` is a plain dict or one of `views`' TypedDicts (dicts too)."""
        self._send(identity, protocol.Reply(req_id, True, cast("dict[str, Any]", data), ""))

    def _send(self, identity: bytes, message: protocol.Message) -> None:
        """Queue a frame for after the batch's commit (see ``_commit_and_send``).

        While the journal cannot be written, frames that promise nothing durable (replies to reads,
        refusals, welcomes, heartbeats) still go out after the batch; the rest wait in ``held``."""
        frame = protocol.encode(message)
        if self.journal_error is None or isinstance(message, _FREE_KINDS):
            self.outbox.append((identity, frame))
        elif isinstance(message, protocol.Reply) and (not message.ok or self._handling_read):
            self.outbox.append((identity, frame))
        else:
            self.held.append((identity, frame))

    def _commit_and_send(self) -> None:
        """Make the batch durable, then say so: replies, acks and assignments go out only now.

        A host found unreachable while sending loses its assignments, which changes state
        again, hence the (bounded) loop. While the disk is full only frames that need no
        commit go out; the others are held until a commit succeeds.
        """
        assert self.store is not None
        self._handling_read = False
        for _ in range(10):
            if self._flush():
                frames, self.outbox = (self.held + self.outbox if self.held else self.outbox), []
                self.held = []
            else:
                frames, self.outbox = self.outbox, []
            if not frames:
                return
            unreachable = {identity for identity, frame in self._batched(frames) if not self._send_raw(identity, frame)}
            for identity in unreachable:
                host_id = identity.hex()
                if host_id in self.scheduler.hosts:
                    self._apply(self.scheduler.handle(HostLeft(host_id, self.clock(), "unreachable")))

    def _flush(self) -> bool:
        """Commit what changed; False while the journal cannot be written (tried again every second)."""
        assert self.store is not None
        if self.scheduler.quarantine_changed:
            self._log_quarantine()
        if self.journal_error is not None and time.monotonic() < self._journal_retry_at:
            return False
        try:
            self.store.flush(self.scheduler)
        except JournalWriteError as exc:
            self._journal_failed(exc)
            return False
        if self.journal_error is not None:
            log.warning(
                "the journal is written again after %.0f s; %d held frame(s) (acks, assignments, replies) go out now",
                time.monotonic() - self._journal_failed_at, len(self.held),
            )  # fmt: skip
            self.journal_error = None
            self._journal_logged_at = float("-inf")
        return True

    def _log_quarantine(self) -> None:
        """One warning per device newly quarantined (the scheduler, being pure, logs nothing)."""
        now = self.scheduler.quarantined
        for device_id in now.keys() - self._quarantine_logged:
            q = now[device_id]
            log.warning(
                "device %r (%s) quarantined after %d mismatch(es): %s; its hosts get no tasks until "
                "`bxthre3 hosts trust DEVICE`", q.device, q.device_id, q.mismatches, q.reason,
            )  # fmt: skip
        self._quarantine_logged = set(now)

    def _journal_failed(self, exc: JournalWriteError) -> None:
        """A commit failed: hold what it should have made true, refuse writes, log once a minute.

        Nothing is lost: the scheduler keeps every change (marked dirty) and the next commit writes
        it; hosts keep unacknowledged results, so holding their acks costs nothing."""
        now = time.monotonic()
        if self.journal_error is None:
            self._journal_failed_at = now
            self.held.extend(self.outbox)  # this batch's frames were queued assuming its commit
            self.outbox = []
        self.journal_error = exc
        self._journal_retry_at = now + JOURNAL_RETRY_S
        if now - self._journal_logged_at >= JOURNAL_LOG_EVERY_S:
            self._journal_logged_at = now
            log.error(
                "%s; for %.0f s: submissions, cancels, retries and trusts are refused, %d ack(s)/assignment(s) wait; "
                "status and results still answer; free space and it resumes by itself",
                exc, now - self._journal_failed_at, len(self.held),
            )  # fmt: skip

    def _write_refusal(self) -> str:
        """What a client is told when a write is refused because the journal cannot be written."""
        if self.journal_error is not None and self.journal_error.disk_full:
            where = "its --state-dir" if self.state_dir == MEMORY else str(self.state_dir)
            return f"{DISK_FULL}: it cannot journal this request; free space in {where} (status and results still work)"
        return f"the controller cannot write its journal ({self.journal_error}); see its log"

    def _batched(self, frames: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The outbox with each host's frames packed into batches (clients get theirs one by one)."""
        if len(frames) < 2:
            return frames
        per_host: dict[bytes, list[bytes]] = {}
        out: list[tuple[bytes, bytes]] = []
        for identity, frame in frames:
            if identity.hex() in self.scheduler.hosts:
                per_host.setdefault(identity, []).append(frame)
            else:
                out.append((identity, frame))
        for identity, host_frames in per_host.items():
            out.extend((identity, frame) for frame in protocol.batched(host_frames))
        return out

    def _watch(self, identity: bytes, msg: protocol.WatchRequest, now: float) -> None:
        """Subscribe a UI client to pushed updates (or renew its lease)."""
        lease = min(60.0, max(1.0, msg.lease)) if msg.lease == msg.lease else 10.0
        if identity not in self.watchers and len(self.watchers) >= MAX_WATCHERS:
            self._send(identity, protocol.Reply(msg.req_id, False, {}, f"too many watchers ({MAX_WATCHERS})"))
            return
        self.watchers[identity] = now + lease
        self._last_pushed = None  # a new subscriber gets the current state at once
        self._reply(identity, msg.req_id, {"lease": lease, "push_interval": PUSH_INTERVAL_S})

    def _push_updates(self, now: float) -> None:
        """One coalesced snapshot to every live subscriber, only if it changed since the last push."""
        self._next_push = now + PUSH_INTERVAL_S
        for identity in [i for i, end in self.watchers.items() if end < now]:
            del self.watchers[identity]
        if not self.watchers:
            return
        data = views.status_view(self.scheduler, now, {"dropped_frames": self.dropped_frames})
        rate = data["totals"]["tasks_per_s"]
        fingerprint = (
            {k: v for k, v in data["totals"].items() if k != "tasks_per_s"},
            [(d["dag_id"], d["state"], d["done"]) for d in data["dags"]],
            [(h["node_id"], h["running"], h["succeeded"], h["failed"]) for h in data["hosts"]],
            [q["device_id"] for q in data["quarantined"]],
        )  # fmt: skip
        if fingerprint == self._last_pushed and (rate == self._pushed_rate or now < self._rate_pushed_at + RATE_PUSH_S):
            return  # nothing changed, or only the rate, which was pushed less than RATE_PUSH_S ago
        self._last_pushed = fingerprint
        self._pushed_rate = rate
        self._rate_pushed_at = now
        self._watch_seq += 1
        frame = protocol.encode(protocol.Update(self._watch_seq, cast("dict[str, Any]", data)))  # a TypedDict is a dict
        for identity in self.watchers:
            self.outbox.append((identity, frame))

    def _own_status(self, now: float) -> dict[str, Any]:
        """The controller role's screen: where it listens, its queues, hosts and DAGs."""
        data: dict[str, Any] = {
            "role": "controller",
            "controller": {
                "address": f"{self.bind_host}:{self.port}",
                "token": self.token,
                "keys": self.keys.fingerprint() if self.keys else None,
                "state_dir": str(self.state_dir),
                "version": __version__,
                "uptime_s": round(now - self.started_at, 3),
                "dropped_frames": self.dropped_frames,
                "auth_failures": self.guard.failures if self.guard else 0,
                "watchers": len(self.watchers),
                "retrying": len(self.scheduler.delayed),
            },
            "status": views.status_view(self.scheduler, now),
        }
        if self.status_extra is not None:
            data.update(self.status_extra())
        return data

    def _prune(self, now: float) -> None:
        assert self.store is not None
        self._next_prune = now + PRUNE_INTERVAL_S
        if not self._flush():
            return  # deleting needs room in the WAL too: after the disk has some again
        try:
            pruned = self.store.prune(self.scheduler, now, self.prune_policy)
        except JournalWriteError as exc:
            self._journal_failed(exc)
            return
        if pruned:
            in_use = {t.module for d in self.scheduler.dags.values() for t in d.spec.tasks}
            for sha in [m for m in self.modules if m not in in_use]:
                del self.modules[sha]
            log.info("pruned %d finished DAG(s) by policy", len(pruned))

    def _send_raw(self, identity: bytes, frame: bytes) -> bool:
        assert self.sock is not None
        try:
            self.sock.send_multipart([identity, frame], zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError as exc:  # EHOSTUNREACH (peer gone) or EAGAIN (peer not reading)
            log.debug("send to %s failed: %s", identity.hex()[:8], exc)
            return False


_NO_FILES: dict[str, bytes] = {}
"""The `files` of every assignment without any (shared, never changed)."""


def _check_files(
    reason: FailureReason | None, error: str, files: dict[str, bytes], stdout_bytes: int
) -> tuple[FailureReason | None, str, dict[str, bytes] | None]:
    """A result's named outputs, re-checked: a failed attempt's are dropped, and a success whose
    files break the rules (bad names, too many, too big) becomes a failure saying why."""
    if reason is not None:
        return reason, error, None
    problem = output_files_problem(files, stdout_bytes)
    if problem is None:
        return None, error, files
    message, over_limit = problem
    if over_limit:
        return FailureReason.OUTPUT_LIMIT, message, None
    return FailureReason.INTERNAL, f"the host reported an impossible output: {message}", None


def _poison_result(exc: protocol.PoisonResult) -> protocol.Result:
    """The result to record for a poison one: its attempt failed `internal`, saying what was wrong.

    Acknowledged like any result, so the host forgets it instead of resending it forever.
    """
    error = f"the host sent an impossible result: {exc}"
    internal = FailureReason.INTERNAL.value
    return protocol.Result(exc.dag_id, exc.task_id, exc.attempt, None, b"", b"", internal, error, 0.0)


def _parse_reason(value: str | None) -> FailureReason | None:
    if value is None:
        return None
    try:
        return FailureReason(value)
    except ValueError:
        return FailureReason.INTERNAL
