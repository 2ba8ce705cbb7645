"""A hostile member of the cluster: it registers as a host, runs its tasks, and lies about some outputs.

Issue 19 item 4. :class:`HostileHost` speaks the host protocol (``bxthre3.wire.protocol``) over a CURVE
DEALER (keys from the cluster token, ``bxthre3.wire.security``) exactly as a real host frames it:
Register, Heartbeats, one Result per Assign with the attempt it was given, Ack and Abort honoured. Only
the *content* is wrong: for the tasks it chooses it returns the honest stdout with its first byte
flipped (same length, exit code 0, reason None), which no framing or decoding check can notice.

Which tasks it lies about: ``lie_fraction`` of them (1.0: every task), chosen deterministically from
``seed`` and the task id (sha256 of both), so a test knows in advance which outputs are wrong; see
:meth:`HostileHost.lies_about`. Honest outputs come from running the module in this process on Wasm3
(``bxthre3.wasm.wasm3.run_module``, the engine every host has), one task at a time, as a host runs them:
argv[0] is the task id and an assignment marked ``deterministic`` (a verified task) runs deterministically,
so its honest outputs are byte for byte those of the real hosts that run the other replicas.

It runs as a thread of the test (or benchmark) with a ZeroMQ context of its own; ``close()`` says Bye
and joins it within a few seconds. Only loopback addresses are used by the tests that start it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor

import zmq

from bxthre3.common.errors import ProtocolError
from bxthre3.wasm.abi import INPUT_SIZES_ENV, TASK_ID_ENV
from bxthre3.wire import protocol
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import CurveKeys, secure_client

_HonestRun = tuple[bytes, bytes, int | None, str | None, str, dict[str, bytes]]
"""stdout, stderr, exit code, failure reason (None: success), error, /out files."""


def _honest_run(
    wasm: bytes,
    args: tuple[str, ...],
    stdin: bytes,
    env: dict[str, str],
    task_id: str,
    timeout: float,
    files: dict[str, bytes] | None,
    deterministic: bool,
) -> _HonestRun:
    """Run one task as a real host would (argv[0] is the task id; verified tasks run deterministically)."""
    from bxthre3.wasm.wasm3 import run_module

    run = run_module(
        wasm, args=args, stdin=stdin, env=env, program_name=task_id, timeout_s=timeout, files=files,
        deterministic=deterministic,
    )  # fmt: skip
    reason = None if run.reason is None else run.reason.value
    return run.stdout, run.stderr, run.exit_code, reason, run.error, dict(run.files)


def _warm() -> None:
    """Load the engine in the worker process before the first task (as a real host's executor is)."""
    import bxthre3.wasm.wasm3  # noqa: F401


def corrupt(output: bytes) -> bytes:
    """The lie: the honest output with its first byte flipped (a lone b"!" for an empty one)."""
    return bytes([output[0] ^ 0x01]) + output[1:] if output else b"!"


class HostileHost(threading.Thread):
    """A member host that returns corrupted outputs for a deterministic share of its tasks."""

    def __init__(
        self,
        address: Address,
        keys: CurveKeys,
        *,
        node_id: str = "hostile",
        lie_fraction: float = 1.0,
        seed: int = 0,
        heartbeat: float = 0.25,
        device_id: str = "",
    ) -> None:
        super().__init__(daemon=True, name=f"hostile-host-{node_id}")
        if not 0.0 <= lie_fraction <= 1.0:
            raise ValueError("lie_fraction must be within [0, 1]")
        self.address, self.keys, self.node_id = address, keys, node_id
        self.lie_fraction, self.seed, self.heartbeat = lie_fraction, seed, heartbeat
        self.device_id = device_id or ("hostile" + "".join(c for c in node_id.lower() if c.isalnum()))[:64]
        """The device it claims to be (replicas of a verified task go to distinct devices)."""
        self.key = os.urandom(32)
        self.context = zmq.Context()
        self.stop = threading.Event()
        self.registered = threading.Event()
        self.lied: list[tuple[str, str]] = []
        """(dag_id, task_id) of every corrupted result sent."""
        self.honest: list[tuple[str, str]] = []
        """(dag_id, task_id) of every honest result sent."""
        self.error: BaseException | None = None
        self.worker = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        """Runs tasks one at a time, as a one-slot host, in a process of its own (started with the first):
        Wasm3 holds the GIL while it runs, and a member that stops heartbeating for a whole task is
        declared dead, which is not the misbehaviour this host is for."""
        self.modules: dict[str, bytes] = {}
        """Modules by sha256, as a host's cache: the controller sends each one once per connection."""

    def lies_about(self, task_id: str) -> bool:
        """Whether this host corrupts the output of `task_id` (the same answer on every run with this seed)."""
        if self.lie_fraction >= 1.0:
            return True
        digest = hashlib.sha256(f"{self.seed}:{task_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.lie_fraction

    def _register(self, sock: zmq.Socket) -> None:
        sock.send(
            protocol.encode(
                protocol.Register(
                    self.node_id, 1, 1024, "linux", "wasm3", key=self.key, device=self.node_id, device_id=self.device_id
                )
            )
        )

    def run(self) -> None:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        secure_client(sock, self.keys)
        sock.connect(self.address.endpoint)
        try:
            self.worker.submit(_warm).result(timeout=60)  # start it now: a real host's executor is up before it joins
            self._register(sock)
            next_beat = time.monotonic()
            backlog: deque[protocol.Assign] = deque()
            running: tuple[protocol.Assign, float, Future[_HonestRun]] | None = None
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    sock.send(protocol.encode(protocol.Heartbeat()))
                    next_beat = now + self.heartbeat
                if running is not None and running[2].done():
                    sock.send(protocol.encode(self._answer(*running)))
                    running = None
                if running is None and backlog:
                    running = self._start(backlog.popleft())
                wait = max(0.0, next_beat - now) if running is None else min(0.01, max(0.0, next_beat - now))
                if not sock.poll(int(wait * 1000)):
                    continue
                try:
                    messages = protocol.unbatch(protocol.decode(sock.recv()))
                except ProtocolError:
                    continue
                for msg in messages:
                    if isinstance(msg, protocol.Welcome):
                        self.registered.set()
                    elif isinstance(msg, protocol.Reregister):
                        self._register(sock)
                    elif isinstance(msg, protocol.Heartbeat) and msg.stamp:
                        sock.send(protocol.encode(protocol.Heartbeat(echo=msg.stamp)))
                    elif isinstance(msg, protocol.Assign):
                        backlog.append(msg)
                    elif isinstance(msg, protocol.Abort):
                        gone = (msg.dag_id, msg.task_id, msg.attempt)
                        backlog = deque(a for a in backlog if (a.dag_id, a.task_id, a.attempt) != gone)
            sock.send(protocol.encode(protocol.Bye("test over")))
        except BaseException as exc:  # surfaced by close()
            self.error = exc
        finally:
            sock.close(linger=0)

    def _start(self, assign: protocol.Assign) -> tuple[protocol.Assign, float, Future[_HonestRun]]:
        """Run the task honestly in the worker process: this thread keeps heartbeating meanwhile."""
        if assign.module:
            self.modules[assign.module_sha] = assign.module
        env = {INPUT_SIZES_ENV: ",".join(str(n) for n in assign.input_sizes), TASK_ID_ENV: assign.task_id}
        future = self.worker.submit(
            _honest_run, self.modules.get(assign.module_sha, b""), assign.args, assign.stdin, env, assign.task_id,
            assign.timeout, dict(assign.files) if assign.files else None, assign.deterministic,
        )  # fmt: skip
        return assign, time.monotonic(), future

    def _answer(self, assign: protocol.Assign, started: float, future: Future[_HonestRun]) -> protocol.Result:
        """The honest run's result -- with its output corrupted if this host lies about the task."""
        stdout, stderr, exit_code, reason, error, files = future.result()
        output = stdout
        if reason is None and self.lies_about(assign.task_id):
            output = corrupt(output)
            self.lied.append((assign.dag_id, assign.task_id))
        else:
            self.honest.append((assign.dag_id, assign.task_id))
        return protocol.Result(
            assign.dag_id, assign.task_id, assign.attempt, exit_code, output, stderr, reason, error,
            time.monotonic() - started, files if reason is None else {},
        )  # fmt: skip

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        if self.is_alive():
            self.join(timeout)
        self.worker.shutdown(wait=True, cancel_futures=True)
        self.context.destroy(linger=0)
        assert not self.is_alive(), "the hostile host did not stop"
        if self.error is not None:
            raise self.error
