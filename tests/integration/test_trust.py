"""The trust boundary between the controller and its members: wire values that cannot be stored
or computed with, and members that claim to be another host.

Everything is real: a controller with CURVE and a SQLite journal, ZeroMQ on loopback. The "hosts"
here are DEALER sockets of a member speaking the host protocol by hand, because the point is what
a buggy or hostile member can send, which a real host never would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bxthre3.client.connection import ControllerClient
from bxthre3.common.errors import ProtocolError
from bxthre3.controller.server import Controller
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.scheduler import SchedulerConfig
from bxthre3.wire import protocol
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import secure_client
from tests.conftest import TEST_KEYS, WASM_MODULES, subprocess_env, wait_for

NOOP = (WASM_MODULES / "noop.wasm").read_bytes()
NOOP_SHA = hashlib.sha256(NOOP).hexdigest()
KEY = b"K" * 32


class LiveController:
    """A controller thread with a journal in `state_dir` (restartable on the same directory)."""

    def __init__(self, state_dir: Path, config: SchedulerConfig) -> None:
        self.context = zmq.Context()
        self.controller = Controller(
            host="127.0.0.1", port=0, config=config, context=self.context, keys=TEST_KEYS, state_dir=state_dir
        )
        self.address = Address("127.0.0.1", self.controller.bind())
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.serve, args=(self.stop,), daemon=True)
        self.thread.start()
        self.client = ControllerClient(self.address, timeout=10.0, context=self.context, keys=TEST_KEYS)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.close()
        self.controller.close()
        self.context.destroy(linger=0)


class Member:
    """A member's DEALER speaking the host protocol by hand."""

    def __init__(self, live: LiveController) -> None:
        self.sock = live.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        secure_client(self.sock, TEST_KEYS)
        self.sock.connect(live.address.endpoint)
        self.received: list[protocol.Message] = []

    def send(self, message: protocol.Message | bytes) -> None:
        self.sock.send(message if isinstance(message, bytes) else protocol.encode(message))

    def drain(self, timeout: float = 0.0) -> list[protocol.Message]:
        """Every message that arrives within `timeout` seconds (batches opened), also kept in `received`."""
        out: list[protocol.Message] = []
        deadline = time.monotonic() + timeout
        while self.sock.poll(max(0.0, deadline - time.monotonic()) * 1000):
            try:
                items = protocol.unbatch(protocol.decode(self.sock.recv()))
            except ProtocolError:
                continue
            out += [m for m in items if not isinstance(m, ProtocolError)]
        self.received += out
        return out

    def expect(self, kind: type[protocol.Message], timeout: float = 10.0, **fields: object) -> protocol.Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.drain(0.05):
                if isinstance(m, kind) and all(getattr(m, k) == v for k, v in fields.items()):
                    return m
        raise AssertionError(f"no {kind.__name__} {fields} within {timeout}s; got {self.received[-5:]}")

    def close(self) -> None:
        self.sock.close(linger=0)


def noop_dag(n: int, retries: int | None = None) -> DagSpec:
    tasks = tuple(TaskSpec(id=f"t{i}", module=NOOP_SHA, module_name="noop.wasm", retries=retries) for i in range(n))
    return DagSpec(name=f"noop-{n}", tasks=tasks, modules={NOOP_SHA: NOOP})


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveController]:
    running = LiveController(tmp_path / "state", SchedulerConfig(heartbeat_interval=0.25, liveness=40))
    yield running
    running.close()


# ---------------------------------------------------------------- item 1: total decoding


def test_a_poison_result_is_acknowledged_and_recorded_as_internal(live: LiveController, tmp_path: Path) -> None:
    """An exit code of 2**63 raised OverflowError in the journal and killed the controller; the host
    resent the unacknowledged result after every restart and killed it again."""
    host = Member(live)
    try:
        host.send(protocol.Register("poisoner", 1, 128, "linux", "wasm3", key=KEY))
        host.expect(protocol.Welcome)
        dag_id = live.client.submit(noop_dag(1, retries=0))
        assign = host.expect(protocol.Assign)
        assert isinstance(assign, protocol.Assign)
        poison = protocol.Result(dag_id, assign.task_id, assign.attempt, 2**63, b"forged", b"", None, "", 0.01)
        host.send(protocol.Batch([protocol.encode(protocol.Heartbeat()), protocol.encode(poison)]))
        host.expect(protocol.Ack, dag_id=dag_id, task_id=assign.task_id, attempt=assign.attempt)
        assert live.thread.is_alive(), "the controller loop died"
        task = live.client.results(dag_id)["tasks"][0]
        assert (task["state"], task["reason"], task["exit_code"], task["output"]) == ("failed", "internal", None, None)
        assert "impossible result" in task["error"] and "exit_code" in task["error"], task["error"]
        assert live.client.status()["controller"]["dropped_frames"] >= 1
        # Sent again (as a host does after re-registering), it is acknowledged again and changes nothing.
        host.send(poison)
        host.expect(protocol.Ack, dag_id=dag_id, attempt=assign.attempt)
        assert live.client.results(dag_id)["tasks"][0]["recorded"] == 1
    finally:
        host.close()
    # The journal holds it: a restarted controller reads the failure back.
    live.close()
    again = LiveController(tmp_path / "state", SchedulerConfig())
    try:
        assert again.client.results(dag_id)["tasks"][0]["reason"] == "internal"
    finally:
        again.close()


_EXTREMES: list[object] = [
    2**64, -(2**64), 2**64 - 1, 2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**32, -1, 0,
    float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5e-324,
    "x" * 200_000, "é" * 50_000, "", b"\xff" * 200_000, None, True, [], {}, [[[[[]]]]], {"a": [1, None]},
]  # fmt: skip
"""Values for any field. msgpack carries integers from -2**63 to 2**64 - 1 only: ±2**64 become those
extremes (no frame can hold more)."""


def _packable(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, -(2**63)), 2**64 - 1)
    return value


_HOST_KINDS = [protocol.Register, protocol.Heartbeat, protocol.Result, protocol.Bye, protocol.Batch]
_CLIENT_KINDS = [
    protocol.Submit, protocol.StatusRequest, protocol.ProgressRequest, protocol.ResultsRequest,
    protocol.CancelRequest, protocol.RetryRequest, protocol.TrustRequest, protocol.WatchRequest,
]  # fmt: skip
_OTHER_KINDS = [k for k in protocol._KINDS.values() if k not in _HOST_KINDS and k not in _CLIENT_KINDS]


def test_extreme_values_in_every_field_of_every_kind_leave_the_controller_up(live: LiveController) -> None:
    """Property: whatever a member puts in any field of any message kind (out-of-range numbers, NaN,
    infinities, huge strings, wrong types), alone or in batches, the controller answers `status`
    afterwards, and a result that names an attempt the sender holds reaches the journal or is
    recorded as an `internal` failure, never an exception."""
    host, other = Member(live), Member(live)
    held: list[protocol.Assign] = []
    try:
        host.send(protocol.Register("extreme", 1024, 4096, "linux", "wasm3", key=KEY))
        host.expect(protocol.Welcome)
        dag_id = live.client.submit(noop_dag(400, retries=0))

        def refresh() -> None:
            for m in host.drain(0.0):
                if isinstance(m, protocol.Assign):
                    held.append(m)
                elif isinstance(m, protocol.Reregister):
                    host.send(protocol.Register("extreme", 1024, 4096, "linux", "wasm3", key=KEY))

        wait_for(lambda: refresh() or len(held) >= 100, 10, "assignments to the member")
        good = {
            "str": "extreme", "int": 1, "float": 0.5, "bool": True, "bytes": b"", "list[str]": [], "list[int]": [],
            "list[bytes]": [], "dict[str, Any]": {}, "dict[str, bytes]": {}, "int | None": 0, "str | None": None,
            "list[AttemptRef]": [],
        }  # fmt: skip

        @st.composite
        def frame(draw: st.DrawFn, kinds: list[type[protocol.Message]], name: str) -> bytes:
            # Results half the time: they are what reaches the journal.
            kind = protocol.Result if draw(st.booleans()) else draw(st.sampled_from(kinds))
            fields = dataclasses.fields(kind)
            values = [good[str(f.type)] for f in fields]
            # One extreme field (so the rest is valid and the frame goes deep), or any number of them.
            hit = {draw(st.integers(0, len(fields) - 1))} if fields and draw(st.booleans()) else None
            for i in range(len(fields)):
                if (i in hit) if hit is not None else draw(st.booleans()):
                    values[i] = _packable(draw(st.sampled_from(_EXTREMES)))
            if kind is protocol.Register:
                values[0] = name
            if kind is protocol.Result and held and draw(st.booleans()):
                a = held[draw(st.integers(0, len(held) - 1))]  # an attempt this connection holds
                values[:3] = [a.dag_id, a.task_id, a.attempt]
            return msgpack.packb([protocol.PROTOCOL_VERSION, kind.KIND, *values], use_bin_type=True)

        every = _HOST_KINDS + _CLIENT_KINDS + _OTHER_KINDS
        # The connection holding the attempts does not register again or say goodbye (its attempts would
        # be requeued); another member's connection sends those, under another node id.
        holder = [k for k in every if k not in (protocol.Register, protocol.Bye)]

        @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(
            st.lists(frame(holder, "extreme"), min_size=1, max_size=4),
            st.lists(frame(every, "other"), max_size=2),
            st.booleans(),
        )
        def fire(frames: list[bytes], others: list[bytes], batched: bool) -> None:
            if batched:
                host.send(protocol.encode(protocol.Batch(frames)))
            else:
                for f in frames:
                    host.send(f)
            for f in others:
                other.send(f)
            other.drain(0.0)
            refresh()

        fire()
        assert live.thread.is_alive(), "the controller loop died"
        status = live.client.status()
        assert status["controller"]["dropped_frames"] > 0
        tasks = live.client.results(dag_id, with_output=False)["tasks"]
        internal = [t for t in tasks if t["reason"] == "internal"]
        assert internal, "some poison results reached attempts the member held"
    finally:
        host.close()
        other.close()


# ---------------------------------------------------------------- item 4: host identity


def register(member: Member, node_id: str, key: bytes, holding: list[list[object]] | None = None) -> None:
    member.send(protocol.Register(node_id, 1, 128, "linux", "wasm3", holding=holding or [], key=key))


def test_a_member_cannot_take_over_a_live_hosts_node_id_nor_report_its_results(live: LiveController) -> None:
    """Reported: registering with another host's node id evicted it, and the impersonator's forged
    output was recorded as the task's result."""
    victim, thief = Member(live), Member(live)
    try:
        register(victim, "phone-1", b"V" * 32)
        victim.expect(protocol.Welcome)
        dag_id = live.client.submit(noop_dag(1))
        assign = victim.expect(protocol.Assign)
        assert isinstance(assign, protocol.Assign)
        held = [[dag_id, assign.task_id, assign.attempt]]
        register(thief, "phone-1", b"T" * 32, held)
        reject = thief.expect(protocol.Reject)
        assert isinstance(reject, protocol.Reject)
        assert "--node-id" in reject.reason and "\n" not in reject.reason, reject.reason
        assert not any(isinstance(m, protocol.Welcome) for m in thief.received)
        forged = protocol.Result(dag_id, assign.task_id, assign.attempt, 0, b"forged", b"", None, "", 0.01)
        thief.send(forged)
        thief.expect(protocol.Reregister)  # a connection the controller does not know: nothing recorded
        hosts = live.client.status()["hosts"]
        assert [(h["node_id"], h["running"]) for h in hosts] == [("phone-1", [f"{dag_id}/{assign.task_id}"])]
        victim.send(protocol.Heartbeat())
        victim.drain(0.3)
        assert not any(isinstance(m, protocol.Reject) for m in victim.received), "the live host was left alone"
        genuine = protocol.Result(dag_id, assign.task_id, assign.attempt, 0, b"genuine", b"", None, "", 0.01)
        victim.send(genuine)
        victim.expect(protocol.Ack, dag_id=dag_id, attempt=assign.attempt)
        task = live.client.results(dag_id)["tasks"][0]
        assert (task["state"], task["output"], task["recorded"]) == ("succeeded", b"genuine", 1)
    finally:
        victim.close()
        thief.close()


def test_results_count_only_from_the_connection_holding_the_attempt(live: LiveController) -> None:
    """A registered member (its own node id) reporting another host's attempt is acknowledged, so it
    forgets it, but nothing is recorded; the holder's result is."""
    a, b = Member(live), Member(live)
    try:
        register(a, "host-a", b"A" * 32)
        register(b, "host-b", b"B" * 32)
        a.expect(protocol.Welcome)
        b.expect(protocol.Welcome)
        dag_id = live.client.submit(noop_dag(1))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(isinstance(m, protocol.Assign) for m in a.received + b.received):
            a.drain(0.05)
            b.drain(0.05)
        holder, other = (a, b) if any(isinstance(m, protocol.Assign) for m in a.received) else (b, a)
        assign = next(m for m in holder.received if isinstance(m, protocol.Assign))
        forged = protocol.Result(dag_id, assign.task_id, assign.attempt, 0, b"forged", b"", None, "", 0.01)
        other.send(forged)
        other.expect(protocol.Ack, dag_id=dag_id, attempt=assign.attempt)
        task = live.client.results(dag_id)["tasks"][0]
        assert (task["state"], task["output"], task["recorded"]) == ("running", None, 0)
        holder.send(protocol.Result(dag_id, assign.task_id, assign.attempt, 0, b"genuine", b"", None, "", 0.01))
        holder.expect(protocol.Ack, dag_id=dag_id, attempt=assign.attempt)
        task = live.client.results(dag_id)["tasks"][0]
        assert (task["state"], task["output"], task["recorded"]) == ("succeeded", b"genuine", 1)
    finally:
        a.close()
        b.close()


def test_a_host_restarting_with_its_key_replaces_its_stale_connection_and_keeps_its_attempt(
    live: LiveController,
) -> None:
    old, new = Member(live), Member(live)
    try:
        register(old, "phone-2", b"S" * 32)
        old.expect(protocol.Welcome)
        dag_id = live.client.submit(noop_dag(1))
        assign = old.expect(protocol.Assign)
        assert isinstance(assign, protocol.Assign)
        register(new, "phone-2", b"S" * 32, [[dag_id, assign.task_id, assign.attempt]])
        new.expect(protocol.Welcome)
        reject = old.expect(protocol.Reject)  # the stale connection is told (it ends the old process)
        assert isinstance(reject, protocol.Reject) and "another host registered" in reject.reason
        new.send(protocol.Result(dag_id, assign.task_id, assign.attempt, 0, b"kept", b"", None, "", 0.01))
        new.expect(protocol.Ack, dag_id=dag_id, attempt=assign.attempt)
        task = live.client.results(dag_id)["tasks"][0]
        assert (task["state"], task["output"], task["attempts"]) == ("succeeded", b"kept", 1), "adopted, not rerun"
    finally:
        old.close()
        new.close()


def test_a_registration_without_a_host_key_is_refused(live: LiveController) -> None:
    member = Member(live)
    try:
        member.send(protocol.Register("keyless", 1, 128, "linux", "wasm3"))
        reject = member.expect(protocol.Reject)
        assert isinstance(reject, protocol.Reject) and "host key" in reject.reason
        assert live.client.status()["hosts"] == []
    finally:
        member.close()


def _host_process(live: LiveController, node_id: str, state_home: Path, log: Path) -> subprocess.Popen[str]:
    """A real `bxthre3 host`; `state_home` is its device's XDG_STATE_HOME (where its key is kept)."""
    env = {**subprocess_env(), "XDG_STATE_HOME": str(state_home)}
    cmd = [
        sys.executable, "-m", "bxthre3", "host", "--controller", str(live.address), "--node-id", node_id,
        "--cache-dir", str(state_home / "cache"), "--heartbeat", "0.25", "--log-file", str(log),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            text=True)  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)
    if proc.stderr:
        proc.stderr.close()


def test_real_hosts_a_claimant_is_told_why_and_a_restart_takes_over_at_once(
    live: LiveController, tmp_path: Path
) -> None:
    """Two devices: the first host of node id "tablet" keeps it; a host of another device claiming it
    exits with a one-line error naming --node-id; the first host, killed and started again on its
    device, registers at once (its old connection is still considered alive: liveness is 10 s)."""
    device_a, device_b = tmp_path / "device-a", tmp_path / "device-b"
    first = _host_process(live, "tablet", device_a, tmp_path / "a1.log")
    procs = [first]
    try:
        wait_for(lambda: [h["node_id"] for h in live.client.status()["hosts"]] == ["tablet"], 20, "the first host")
        claimant = _host_process(live, "tablet", device_b, tmp_path / "b.log")
        procs.append(claimant)
        assert claimant.wait(20) != 0
        assert claimant.stderr is not None
        errors = [line for line in claimant.stderr.read().splitlines() if "error" in line]
        assert len(errors) == 1 and "--node-id" in errors[0] and "held by another live host" in errors[0], errors
        assert first.poll() is None, "the first host was left alone"
        [host] = live.client.status()["hosts"]
        assert host["node_id"] == "tablet" and host["uptime_s"] > 0
        first.kill()
        first.wait(5)
        started = time.monotonic()
        again = _host_process(live, "tablet", device_a, tmp_path / "a2.log")
        procs.append(again)
        wait_for(lambda: live.client.status()["hosts"][0]["uptime_s"] < time.monotonic() - started, 8,
                 "the restarted host to replace its stale connection")  # fmt: skip
        assert time.monotonic() - started < 8, "well before the old connection's liveness ran out"
        assert again.poll() is None
        dag_id = live.client.submit(noop_dag(3))
        assert live.client.wait(dag_id, timeout=30)["state"] == "succeeded"
    finally:
        for proc in procs:
            _stop(proc)
