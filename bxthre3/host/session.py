"""The host's I/O loop: a DEALER to the controller, executor children doing the work.

The loop itself never runs WebAssembly: pywasm3 holds the GIL and cannot be interrupted,
so each slot owns an executor child that the loop can SIGKILL at a task's deadline while
it keeps heartbeating. This module must not import Textual or wasm3 (a phone starts a
host in well under a second). What runs in which slot, and what an abort, a deadline or a
dead executor does, is decided by the pure core in `host_slots`; this loop carries it out.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from .. import __version__
from ..common.errors import Bxthre3Error, ClusterError, ProtocolError
from ..common.failures import FailureReason
from ..common.limits import MAX_TIMEOUT_S, MiB
from ..common.status_file import StatusFile
from ..common.stop_event import wake_fd
from ..executor.parent import ExecJob, ExecResult, Executor, ExecutorDied
from ..node import device_identity
from ..node.ram_probe import cpu_count, resident_mb, total_ram_mb
from ..wasm import choice as engines
from ..wasm.abi import INPUT_SIZES_ENV, TASK_ID_ENV
from ..wire import protocol
from ..wire.addresses import Address
from ..wire.liveness import MAX_SILENCE_S, connect_timeout, silence_limit
from ..wire.security import CurveKeys, new_host_key, secure_client
from ..wire.sockets import configure, is_loopback
from . import slots as host_slots
from .module_cache import ModuleCache
from .monitor_events import recv_event
from .slots import (
    AbortReceived,
    Assigned,
    ExecutorLost,
    HostSlots,
    IgnoreResult,
    JobEnded,
    Launch,
    RecordAbort,
    ReportFailure,
    ReportResult,
    RestartExecutor,
    Resubmit,
    ResultsRead,
    SlotsConfig,
    StartExecutor,
    StopExecutor,
    SubmitDied,
    SubmitRefused,
    Submitted,
    Tick,
    Welcomed,
)

log = logging.getLogger("bxthre3.host")  # the name log lines show: kept from before the move to packages

INTERRUPT_GRACE_S = 0.5
"""How long past a timeout a host waits for an engine that stops runs itself before killing it."""

PIPELINE_BELOW_S = 0.05
"""A slot queues the next task in its executor's pipe only while its tasks take less than this.

For short tasks the parent's round trip between two tasks is most of the cost; for long
ones it is nothing, and a task queued in one slot's pipe could not move to another slot
that frees up first.
"""

HISTORY_LENGTH = 50
"""Finished attempts a host remembers for its own screen."""

REGISTER_WAIT_S = 6.0
"""How long a host waits for `welcome` on a fresh connection before it tries another (doubling, up to
`max_backoff`). Registering is a TCP handshake, CURVE's four messages and `register`/`welcome`: ~6 round
trips, 2-3 s over a phone's network with a lost packet or two. Waiting only `liveness` intervals (3 s)
there, a host gave up just as the controller registered the connection it was abandoning, which the
controller then declared dead 3 s later, again and again. Waiting longer delays nothing: ZeroMQ keeps
trying the TCP connection underneath (`liveness.connect_timeout`), and the socket is only replaced in case a
connection got stuck half-way."""

EXECUTOR_OVERHEAD_MB = 512
"""Address space an executor may map beyond its start-up size and the module's memory cap.

It covers Wasm3's stack and compiled code and the copies of a task's stdin and stdout
(up to the frame and output limits) that pass through Python. RLIMIT_AS is the backstop;
the precise cap is the module's own linear memory limit (--ram-limit).
"""


@dataclass(frozen=True, slots=True)
class HostConfig:
    node_id: str
    ram_mb: int = 128
    slots: int = 1
    heartbeat_interval: float = 1.0
    liveness: int = 3
    device: str = ""
    """Name of the device (its hostname, or its node manager's --device-name): for people to read."""
    device_id: str = ""
    """The device's random id (`device_identity`): what tells two devices of one name apart."""
    duplicate_hint: str = device_identity.HOST_HINT
    """What fixes a taken node id on the command that started this host (its node manager sets its own)."""
    max_backoff: float = 30.0
    """Upper bound of the wait for a `welcome` before trying a fresh connection (REGISTER_WAIT_S doubling
    up to this); ZeroMQ retries the TCP connection itself every ~1 s meanwhile."""
    executor_idle_s: float = 60.0
    """An executor without a task for this long is stopped; the next task starts a new one (~0.1 s)."""
    engine: str = engines.WASM3
    """The engine its executors run modules in (resolved already: wasm3 or wasmtime)."""
    key: bytes = b""
    """This host's identity key (`security.load_or_create_host_key`); empty: one for this process only."""
    warm_executors: bool = False
    """Start the executors once welcomed rather than with the first task: `bxthre3 run` submits its DAG
    at once, and an executor's interpreter start (~0.1 s) would otherwise delay its first task."""


def platform_name() -> str:
    if sys.platform == "android" or "ANDROID_ROOT" in os.environ:
        return f"android-{platform.machine()}"
    return f"{sys.platform}-{platform.machine()}"


class Host:
    """Register with a controller, run what it assigns, report results, stay alive."""

    def __init__(
        self,
        address: Address,
        config: HostConfig,
        *,
        cache: ModuleCache,
        context: zmq.Context | None = None,
        clock: Callable[[], float] = time.monotonic,
        executor_log: Path | None = None,
        status_file: StatusFile | None = None,
        keys: CurveKeys | None = None,
        pause_file: Path | None = None,
        remember_controller: bool = False,
    ) -> None:
        if keys is None and not is_loopback(address.host):
            raise Bxthre3Error(f"--insecure talks plaintext to a controller on loopback only, not {address}")
        self.address = address
        self.keys = keys
        self.pause_file = pause_file
        """Written by this device's node manager while the phone should rest (battery, heat)."""
        self.remember_controller = remember_controller
        """Found by a beacon: remember the address for next time, but only once registered there."""
        self.config = config
        self.key = config.key or new_host_key()
        """Proves to the controller that this is the host holding `node_id` (sent in every `register`)."""
        self.cache = cache
        self.clock = clock
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        """Connection events of `sock` (handshake done, disconnected), read while registering."""
        self.connected_at: float | None = None
        """When the current connection finished its handshake (None: ZeroMQ is still connecting)."""
        self.told_unreachable = False
        address_space = config.ram_mb + EXECUTOR_OVERHEAD_MB
        self.executors = [
            Executor(log_path=executor_log, address_space_mb=address_space, engine=config.engine, depth=2)
            for _ in range(max(1, config.slots))
        ]
        """One executor per slot, by slot number."""
        self.work = HostSlots(
            SlotsConfig(
                slots=len(self.executors),
                executor_idle_s=config.executor_idle_s,
                warm_executors=config.warm_executors,
                # An engine that interrupts runs itself gets a moment to do so: no executor restart.
                grace_s=INTERRUPT_GRACE_S if config.engine == engines.WASMTIME else 0.0,
                max_timeout_s=MAX_TIMEOUT_S,
                pipeline_below_s=PIPELINE_BELOW_S,
            )
        )
        """What runs where: backlog, slots, pipelining, aborts, timeouts (decisions only; this loop does the I/O)."""
        self._read: dict[int, ExecResult] = {}
        """Results of the executor read being handled, by job id, for `ReportResult`."""
        self.outgoing: list[bytes] = []
        """Encoded messages to the controller, sent together at the end of the loop turn."""
        self.unacked: dict[tuple[str, str, int], protocol.Result] = {}
        """Results sent (or waiting to be) that the controller has not confirmed committing.

        They are resent after every (re)registration until acked, so a result finished while
        the controller was down, or lost with its connection, still arrives: at least once
        here, exactly once in the journal (the controller ignores duplicates)."""
        self.welcomed = False
        self.last_heard = 0.0
        self.last_sent = 0.0
        self.backoff = REGISTER_WAIT_S
        self.heartbeat_interval = config.heartbeat_interval
        self.liveness = config.liveness
        """Both start from the config and follow the controller's `welcome`: the two sides must agree."""
        self.controller_silence = 0.0
        """The silence limit the controller applies to us (its heartbeats say it; 0: not told): we wait as
        long for a word from it before reconnecting, since our link is as slow for it as for us."""
        self.controller_rto = 0.0
        """The controller's retransmission timeout for our path (its heartbeats say it; 0: not told)."""
        self.echo: tuple[float, float] | None = None
        """(stamp, when received) of the controller's last stamped heartbeat, echoed in our next heartbeat."""
        self.completed = 0
        self.failed = 0
        self.status_file = status_file
        self.history: deque[tuple[str, str, int, str | None, str, float, float]] = deque(maxlen=HISTORY_LENGTH)
        """The last attempts this host finished, newest last, for its own screen in the TUI."""
        self.registered_since: float | None = None
        self.registrations = 0
        self.started = clock()
        self._wake_fd: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set. Raises ClusterError if the controller rejects us."""
        try:
            # Executors start with the first task (or once welcomed, with `warm_executors`) and stop after
            # `executor_idle_s` without one: an idle host on a phone holds only itself (~24 MB), not an
            # interpreter per slot (~20 MB each).
            self._wake_fd = wake_fd(stop)
            self._connect()
            while not stop.is_set():
                self._step()
                if self.status_file is not None:
                    self.status_file.maybe_write(self.snapshot)
        finally:
            self._shutdown()
            if self.status_file is not None:
                self.status_file.write({**self.snapshot(), "state": "stopped"})

    def _shutdown(self) -> None:
        if self.sock is not None:
            if self.welcomed:
                self._flush()
                try:
                    self.sock.send(protocol.encode(protocol.Bye("host stopping")), zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass
        self._close_socket()
        for executor in self.executors:
            executor.kill()
        if self._own_context:
            self.context.term()

    def _close_socket(self) -> None:
        if self.monitor is not None:
            self.monitor.close(linger=0)
            self.monitor = None
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def _connection_events(self, now: float) -> None:
        """While registering: note when the connection (TCP and CURVE) is up, or down again."""
        if self.monitor is None:
            return
        for _ in range(100):
            try:
                event = recv_event(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError as exc:  # libzmq writes these frames: never seen, but not worth a crash
                log.debug("unreadable connection event: %s", exc)
                continue
            log.debug("connection event %s", event.name)
            if event.event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connected_at = now
            elif event.event == zmq.EVENT_DISCONNECTED:
                self.connected_at = None
            elif event.event == zmq.EVENT_HANDSHAKE_FAILED_AUTH and not self.registrations:
                log.warning("controller %s refused the handshake: does this host have the cluster's token?",
                            self.address)  # fmt: skip
        silent = now - self.last_heard
        if self.connected_at is None and silent > self.heartbeat_interval * self.liveness and not self.told_unreachable:
            # Said once per socket, while ZeroMQ keeps trying underneath. Before the first registration the
            # cause is probed and named (the loop has no work to delay then): a name that does not resolve,
            # nothing listening, a silent network, or a connection that works and a token that does not.
            self.told_unreachable = True
            hint = "" if self.registrations else f" ({self._why_silent()})"
            log.warning("no word from controller %s for %.1fs; still trying%s", self.address, silent, hint)

    def _connect(self) -> None:
        """A fresh socket each time: a DEALER's queued frames belong to the old session.

        Work from the old session is declared in `holding`: the controller adopts what it
        still wants and answers `abort` for the rest.
        """
        self._close_socket()
        self.sock = configure(self.context.socket(zmq.DEALER))
        # A connect that has not completed within one RTO of this path is abandoned and tried again
        # (ZeroMQ retries 100 ms later): without it a SYN lost during an outage is resent by the kernel
        # at 1, 3, 7, 15 s, and a host came back up to ~15 s after its link did.
        self.sock.setsockopt(zmq.CONNECT_TIMEOUT, round(connect_timeout(self.controller_rto) * 1000))
        if ":" in self.address.host:
            self.sock.setsockopt(zmq.IPV6, 1)
        if self.keys is not None:
            secure_client(self.sock, self.keys)
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_CONNECTED
            | zmq.EVENT_CONNECT_RETRIED
            | zmq.EVENT_CLOSED
        )
        self.connected_at = None
        self.told_unreachable = False
        self.sock.connect(self.address.endpoint)
        self.welcomed = False
        self.registered_since = None
        now = self.clock()
        self.last_heard = now
        self.outgoing = []  # frames of the old session: unacknowledged results go again after the welcome
        self._send(
            protocol.Register(
                node_id=self.config.node_id,
                slots=len(self.executors),
                ram_mb=self.config.ram_mb,
                platform=platform_name(),
                engine=self.config.engine,
                modules=self.cache.known(),
                pid=os.getpid(),
                software=__version__,
                holding=[list(key) for key in self._holding()],
                device=self.config.device,
                device_ram_mb=total_ram_mb(),
                device_cpus=cpu_count(),
                key=self.key,
                device_id=self.config.device_id,
            )
        )
        self._flush()

    # ------------------------------------------------------------------ the loop

    def _step(self) -> None:
        assert self.sock is not None
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        if self._wake_fd is not None:
            poller.register(self._wake_fd, zmq.POLLIN)  # stop at once, not after the sleep below
        by_fd: dict[int, int] = {}
        by_write_fd: dict[int, int] = {}
        for slot, executor in enumerate(self.executors):
            if self.work.busy(slot):
                fd = executor.fileno()
                by_fd[fd] = slot
                poller.register(fd, zmq.POLLIN)
                if executor.wants_write:  # a job larger than the pipe goes in as the child reads
                    fd = executor.write_fileno()
                    by_write_fd[fd] = slot
                    poller.register(fd, zmq.POLLOUT)
        now = self.clock()
        wake = min(self.last_sent + self.heartbeat_interval, self.work.next_deadline())
        timeout_ms = min(100.0, max(0.0, (wake - now) * 1000))
        for item, _ in poller.poll(int(timeout_ms)):
            if item is self.sock:
                self._drain()
            elif isinstance(item, int) and item in by_fd:
                self._collect(by_fd[item])
            elif isinstance(item, int) and item in by_write_fd:
                self._feed(by_write_fd[item])
        self._timers()
        self._flush()

    def _drain(self) -> None:
        assert self.sock is not None
        for _ in range(1000):
            try:
                frame = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                received = protocol.unbatch(protocol.decode(frame))
            except ProtocolError as exc:
                received = [exc]
            for msg in received:
                if isinstance(msg, ProtocolError):
                    log.warning("dropped a bad frame from the controller: %s", msg)
                else:
                    self.last_heard = self.clock()
                    self._on_message(msg)

    def _on_message(self, msg: protocol.Message) -> None:
        """One message from the controller (a batch's messages come here one by one, in order)."""
        if isinstance(msg, protocol.Assign):
            self._apply(Assigned(msg, self.clock()))
        elif isinstance(msg, protocol.Ack):
            self.unacked.pop((msg.dag_id, msg.task_id, msg.attempt), None)
        elif isinstance(msg, protocol.Abort):
            self._abort(msg)
        elif isinstance(msg, protocol.Reregister):
            if self.welcomed:
                log.warning("the controller no longer knows this host (it restarted?); registering again")
                self._connect()
        elif isinstance(msg, protocol.Welcome):
            self._on_welcome(msg)
        elif isinstance(msg, protocol.Reject):
            if msg.duplicate:  # our node id is taken: say what fixes it on the command that started us
                raise ClusterError(
                    device_identity.refusal_message(self.address, msg.duplicate, self.config.duplicate_hint)
                )
            raise ClusterError(f"controller {self.address} refused this host: {msg.reason}")
        elif isinstance(msg, protocol.Heartbeat):
            if msg.stamp > 0:
                self.echo = (msg.stamp, self.clock())  # answered by this loop turn's heartbeat (`_timers`)
            if 0 < msg.silence_s <= MAX_SILENCE_S:
                self.controller_silence = msg.silence_s
            if 0 < msg.rto_s <= MAX_SILENCE_S:
                self.controller_rto = msg.rto_s
        else:
            log.warning("unexpected %s from the controller", type(msg).__name__)

    def _holding(self) -> list[tuple[str, str, int]]:
        return self.work.holding() + list(self.unacked)

    def _abort(self, msg: protocol.Abort) -> None:
        """Stop an attempt the controller no longer wants (cancelled or reassigned)."""
        key = (msg.dag_id, msg.task_id, msg.attempt)
        self.unacked.pop(key, None)
        self._apply(AbortReceived(key, self.clock()))

    def _on_welcome(self, msg: protocol.Welcome) -> None:
        log.info("registered with %s as %s", self.address, msg.node_id)
        if 0.01 <= msg.heartbeat_interval <= 60 and 1 <= msg.liveness <= 1000:  # also refuses NaN
            self.heartbeat_interval = msg.heartbeat_interval
            self.liveness = msg.liveness
        self.welcomed = True
        self.backoff = REGISTER_WAIT_S
        self.registrations += 1
        self.registered_since = self.clock()
        self._apply(Welcomed(self.registered_since, self._executors_up()))
        if self.remember_controller and self.registrations == 1:
            from ..wire.discovery import remember_controller

            remember_controller(str(self.address))
        for result in list(self.unacked.values()):
            self._send(result)

    def _timers(self) -> None:
        now = self.clock()
        up = self._executors_up()
        if now >= self.work.tick_due(up):
            self._apply(Tick(now, up))  # idle executors stopped, overdue attempts killed
        if self.echo is not None or now - self.last_sent >= self.heartbeat_interval:
            stamp, received = self.echo or (0.0, now)
            self.echo = None
            heartbeat = protocol.Heartbeat(
                rss_mb=self._rss_mb(), paused=self._paused_reason(), echo=stamp, held=now - received
            )
            self._send(heartbeat)
        silent = now - self.last_heard
        # Until the controller says what it allows us, assume what it assumes of a link it has not measured.
        told = self.controller_silence or silence_limit(self.heartbeat_interval, self.liveness)
        limit = max(self.heartbeat_interval * self.liveness, told)
        if self.welcomed:
            stale = silent > limit
        else:
            # Registering. While the connection is not up ZeroMQ retries it every ~1 s by itself, so a fresh
            # socket would only restart that (or cut a handshake short: a phone's takes seconds); once
            # it is up, the welcome should follow within a few round trips, else the register was lost.
            self._connection_events(now)
            if self.connected_at is not None:
                stale = now - self.connected_at > max(limit, self.backoff)
            else:
                stale = silent > self.config.max_backoff
        if stale:
            hint = "" if self.registrations else f" ({self._why_silent()})"
            log.warning("no word from controller %s for %.1fs; reconnecting%s", self.address, silent, hint)
            if not self.welcomed:
                self.backoff = min(self.config.max_backoff, self.backoff * 2) * random.uniform(0.9, 1.1)
            self._connect()

    def _why_silent(self) -> str:
        """Before the first registration: an unresolvable name, nothing listening or a dead network, each
        named; a controller that accepts the TCP connection and still says nothing refuses our token."""
        from ..wire.reachability import why_unreachable

        return why_unreachable(self.address) or (
            "it accepts connections but does not answer: check that this host has the cluster's token "
            "(`bxthre3 token` on the controller prints it)"
        )

    # ------------------------------------------------------------------ work

    def _apply(self, event: host_slots.Event) -> None:
        """Carry out what the slots' core decides on `event`, answering each submit with its outcome."""
        instructions = self.work.handle(event)
        while instructions:
            outcome = None
            for instruction in instructions:
                outcome = self._do(instruction)
            instructions = self.work.handle(outcome) if outcome is not None else []

    def _do(self, instruction: host_slots.Instruction) -> host_slots.Outcome | None:
        """One instruction of the core; a submit's outcome is returned (it comes last in its list)."""
        match instruction:
            case Launch():
                return self._launch(instruction)
            case Resubmit():
                assert isinstance(instruction.job, ExecJob)
                return self._submit(instruction.slot, instruction.job)
            case ReportResult():
                result = self._read[instruction.job_id]
                self._report(instruction.assign, result, result.reason, result.error, result.duration)
            case ReportFailure():
                self._report(instruction.assign, None, instruction.reason, instruction.error, instruction.elapsed)
            case RestartExecutor():
                self.executors[instruction.slot].kill()
                self.executors[instruction.slot].start()
            case StartExecutor():
                self.executors[instruction.slot].start()
            case StopExecutor():
                log.debug("stopping an executor idle for %.0f s", instruction.idle_s)
                self.executors[instruction.slot].kill()
            case RecordAbort():
                a = instruction.assign
                if instruction.started:
                    log.info("aborting %s/%s attempt %d", a.dag_id, a.task_id, a.attempt)
                else:
                    log.info("aborting %s/%s attempt %d before it starts", a.dag_id, a.task_id, a.attempt)
                why = "the controller no longer wants it (cancelled or reassigned)"
                self._remember(a, "aborted", why, instruction.elapsed)
            case IgnoreResult():
                log.debug("dropped the executor's result for job %d", instruction.job_id)
        return None

    def _executors_up(self) -> frozenset[int]:
        return frozenset(slot for slot, executor in enumerate(self.executors) if executor.pid is not None)

    def _launch(self, launch: Launch) -> host_slots.Outcome:
        """Make the job (the module stored in this host's cache) and submit it."""
        assign = launch.assign
        path = ""
        try:
            if assign.module:
                path = str(self.cache.put(assign.module_sha, assign.module))
            elif self.cache.has(assign.module_sha):
                path = self.cache.path_text(assign.module_sha)
            else:  # retryable: the controller then ships the module with the next attempt
                return SubmitRefused(launch.job_id, FailureReason.INTERNAL, "module missing from this host's cache")
        except (OSError, ValueError) as exc:
            return SubmitRefused(launch.job_id, FailureReason.INVALID_MODULE, f"cannot store module: {exc}")
        job = ExecJob(
            job_id=launch.job_id,
            module_sha=assign.module_sha,
            module_path=path,
            args=tuple(assign.args),
            program_name=assign.task_id,
            memory_limit_bytes=self.config.ram_mb * MiB,
            timeout_s=launch.timeout_s,
            stdin=assign.stdin,
            files=assign.files,
            deterministic=assign.deterministic,
            env={INPUT_SIZES_ENV: ",".join(str(n) for n in assign.input_sizes), TASK_ID_ENV: assign.task_id},
        )
        return self._submit(launch.slot, job)

    def _submit(self, slot: int, job: ExecJob) -> host_slots.Outcome:
        executor = self.executors[slot]
        if executor.pid is None:
            executor.start()
        try:
            executor.submit(job)
        except ExecutorDied as exc:
            return SubmitDied(job.job_id, str(exc))
        return Submitted(job.job_id, job)

    def _feed(self, slot: int) -> None:
        """The executor's job pipe has room: write more of the jobs waiting for it."""
        if not self.work.busy(slot):
            return
        try:
            self.executors[slot].flush()
        except ExecutorDied as exc:
            self._apply(ExecutorLost(slot, str(exc), self.clock()))

    def _collect(self, slot: int) -> None:
        """Read what the executor wrote; report every result it completes (none while one is half read)."""
        if not self.work.busy(slot):
            return
        executor = self.executors[slot]
        try:
            results = executor.take_results()
        except ExecutorDied as exc:
            self._apply(ExecutorLost(slot, str(exc), self.clock()))
            return
        self._read = {result.job_id: result for result in results}
        in_flight = frozenset(job_id for job_id in self.work.jobs_in(slot) if executor.holds(job_id))
        try:
            ended = tuple(JobEnded(result.job_id, result.duration) for result in results)
            self._apply(ResultsRead(slot, ended, in_flight, self.clock()))
        finally:
            self._read = {}

    def _report(
        self,
        a: protocol.Assign,
        result: ExecResult | None,
        reason: FailureReason | None,
        error: str,
        duration: float,
    ) -> None:
        """Send how an attempt ended (``duration``: the result's, or how long it had been running)."""
        self._remember(a, reason.value if reason else None, error, duration)
        if reason is None:
            self.completed += 1
        else:
            self.failed += 1
            log.info("task %s/%s attempt %d failed: %s %s", a.dag_id, a.task_id, a.attempt, reason.value, error)
        message = protocol.Result(
            dag_id=a.dag_id,
            task_id=a.task_id,
            attempt=a.attempt,
            exit_code=result.exit_code if result else None,
            output=result.stdout if result and reason is None else b"",
            stderr=result.stderr if result else b"",
            reason=reason.value if reason else None,
            error=error,
            duration=duration,
            files=result.files if result and reason is None else {},
        )
        self.unacked[(a.dag_id, a.task_id, a.attempt)] = message
        if self.welcomed:
            self._send(message)

    def _paused_reason(self) -> str:
        """Why this host takes no new tasks: the reason its node manager wrote in the pause file."""
        if self.pause_file is None:
            return ""
        try:
            with open(self.pause_file, "rb") as f:
                return f.read(200).decode("utf-8", "replace").strip() or "paused"
        except FileNotFoundError:
            return ""
        except OSError as exc:
            return f"paused (pause file unreadable: {exc.strerror})"

    def _rss_mb(self) -> int:
        """Resident memory of this host and its executors (what the device really gives up), or -1."""
        pids = [os.getpid()] + [executor.pid for executor in self.executors if executor.pid]
        return resident_mb(pids)

    # ------------------------------------------------------------------ own state, for the TUI

    def _remember(self, a: protocol.Assign, reason: str | None, error: str, duration: float) -> None:
        # A tuple per task, made into its dict only when a screen asks (`snapshot`): thousands of tasks a
        # second pass through here and the history is read once a second at most.
        self.history.append((a.dag_id, a.task_id, a.attempt, reason, error, duration, self.clock()))

    def snapshot(self) -> dict[str, Any]:
        """What this host is doing, in the shape its TUI screen shows (times as ages in seconds)."""
        now = self.clock()
        if self.welcomed:
            state = "registered"
        else:
            state = "reconnecting" if self.registrations else "connecting"
        return {
            "role": "host",
            "node_id": self.config.node_id,
            "device": self.config.device,
            "controller": str(self.address),
            "state": state,
            "paused": self._paused_reason(),
            "registered_for_s": round(now - self.registered_since, 3) if self.registered_since is not None else None,
            "registrations": self.registrations,
            "uptime_s": round(now - self.started, 3),
            "ram_mb": self.config.ram_mb,
            "slots": len(self.executors),
            "engine": self.config.engine,
            "succeeded": self.completed,
            "failed": self.failed,
            "queued": self.work.queued_count(),
            "unacked": len(self.unacked),
            "running": [
                {
                    "dag_id": a.assign.dag_id,
                    "task_id": a.assign.task_id,
                    "attempt": a.assign.attempt,
                    "elapsed_s": round(now - a.started, 3),
                    "timeout_s": a.assign.timeout,
                }
                for a in self.work.running()
            ],
            "history": [
                {
                    "dag_id": dag_id,
                    "task_id": task_id,
                    "attempt": attempt,
                    "reason": reason,
                    "error": error,
                    "duration_s": round(duration, 6),
                    "finished": finished,
                    "ago_s": round(now - finished, 3),
                }
                for dag_id, task_id, attempt, reason, error, duration, finished in reversed(self.history)
            ],
        }

    def _send(self, message: protocol.Message) -> None:
        """Queue a message; `_flush` sends the loop turn's messages together (as a batch when several)."""
        self.outgoing.append(protocol.encode(message))

    def _flush(self) -> None:
        assert self.sock is not None
        if not self.outgoing:
            return
        frames, self.outgoing = protocol.batched(self.outgoing), []
        for frame in frames:
            try:
                self.sock.send(frame, zmq.NOBLOCK)
                self.last_sent = self.clock()
            except zmq.ZMQError as exc:
                log.debug("send failed: %s", exc)
