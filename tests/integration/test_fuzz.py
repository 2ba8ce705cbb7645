"""Property-based fuzzing (hypothesis) of everything a stranger or a careless member can feed Bxthre3:
frames at a live controller and a live host, DAG YAML at the validator, bytes as modules.

Each target is bounded in examples and time (the whole file runs in well under a minute). The
properties: the process under fire stays up, valid traffic flows afterwards, and memory stays bounded.
Frames come from an authenticated member (CURVE with the test token): the worst case, since strangers
do not get past the handshake at all.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bxthre3.client.connection import ControllerClient
from bxthre3.common.errors import Bxthre3Error
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.executor.parent import ExecJob, Executor, ExecutorDied
from bxthre3.node.ram_probe import resident_mb
from bxthre3.wasm.inspect import check_wasi_command
from bxthre3.wire import protocol
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import secure_client, secure_server
from tests.conftest import REPO, TEST_KEYS, WASM_MODULES, HostProcesses, RunningController, wait_for

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NOOP = (WASM_MODULES / "noop.wasm").read_bytes()
NOOP_SHA = hashlib.sha256(NOOP).hexdigest()

VALID_MESSAGES: list[protocol.Message] = [
    protocol.Register("fuzz", 1, 128, "linux", "wasm3", key=b"k" * 32),
    protocol.Heartbeat(),
    protocol.Result("dag-x", "t", 1, 0, b"out", b"", None, "", 0.1),
    protocol.Result("dag-x", "t", 1, 0, b"out", b"", None, "", 0.1, {"../x": b"1", "a": b"", "a/b": b"2"}),
    protocol.Submit(7, {"name": "x", "tasks": []}),
    protocol.StatusRequest(8),
    protocol.ResultsRequest(9, "dag-x", False, "", 5),
    protocol.CancelRequest(10, "dag-x"),
    protocol.RetryRequest(11, "dag-x"),
    protocol.WatchRequest(12, 1.0),
    protocol.ActivityRequest(13, 60.0),
    protocol.StructureRequest(14, "dag-x"),
    protocol.Bye("fuzz"),
]
FOR_HOSTS: list[protocol.Message] = [
    protocol.Welcome("fuzz", 1.0, 3),
    protocol.Assign("dag-f", "t", 1, NOOP_SHA, NOOP, ["a"], b"in", [2], 5.0),
    protocol.Assign("dag-f", "t", 2, NOOP_SHA, NOOP, [], b"", [], 5.0, {"d/x.pgm": b"P5", "/abs": b"", "..": b""}),
    protocol.Abort("dag-f", "t", 1),
    protocol.Ack("dag-f", "t", 1),
    protocol.Reregister(),
    protocol.Heartbeat(),
]
"""What a controller sends a host. `reject` is left out: from the authenticated controller it is an order
to stop, which the host obeys (a stranger cannot send it: the CURVE handshake keeps strangers out)."""

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
    st.text(max_size=50), st.binary(max_size=200),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=6)
    ),
    max_leaves=20,
)


def _encode(message: protocol.Message) -> bytes:
    try:
        return protocol.encode(message)
    except (ValueError, OverflowError, TypeError):  # beyond msgpack's integers: not a frame anyone can send
        return b"\x90"


def _pack(obj: object) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (ValueError, OverflowError, TypeError):
        return b"\x90"


_IDS = st.one_of(st.sampled_from(["dag-f", "dag-x", "t", "fuzz", "fuzzed", ""]), st.text(max_size=200))
_FIELD_VALUES: dict[str, st.SearchStrategy[object]] = {
    "str": _IDS,
    "int": st.one_of(st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1)),
    "float": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e-9, 1e300])),
    "bool": st.booleans(),
    "bytes": st.one_of(st.binary(max_size=64), st.just(NOOP)),
    "list[str]": st.lists(_IDS, max_size=5),
    "list[int]": st.lists(st.integers(-(2**40), 2**40), max_size=5),
    "dict[str, Any]": st.dictionaries(st.text(max_size=8), values, max_size=5),
    "int | None": st.one_of(st.none(), st.integers(-(2**31), 2**31)),
    "str | None": st.one_of(st.none(), _IDS),
    "list[AttemptRef]": st.lists(st.tuples(_IDS, _IDS, st.integers(-2, 5)).map(list), max_size=4),
    "dict[str, bytes]": st.dictionaries(
        st.one_of(st.sampled_from(["a", "a/b", "../up", "/abs", "", ".", "a//b", "x\0y", "d/" * 600]), _IDS),
        st.binary(max_size=64),
        max_size=4,
    ),
}


def typed_messages(messages: list[protocol.Message]) -> st.SearchStrategy[bytes]:
    """Messages that pass decoding, with hostile values: NaN timeouts, negative attempts, huge ids..."""
    import dataclasses

    def build(cls: type[protocol.Message]) -> st.SearchStrategy[bytes]:
        fields = {f.name: _FIELD_VALUES[str(f.type)] for f in dataclasses.fields(cls)}
        return st.fixed_dictionaries(fields).map(lambda kw: _encode(cls(**kw)))

    return st.one_of([build(type(m)) for m in messages])


def frames(messages: list[protocol.Message]) -> st.SearchStrategy[bytes]:
    """Random bytes; envelopes with random fields; valid messages with hostile values; valid frames
    bit-flipped, cut or grown."""
    kinds = sorted({m.KIND for m in VALID_MESSAGES + FOR_HOSTS} | {"nope"})
    envelope = st.builds(
        lambda version, kind, fields: _pack([version, kind, *fields]),
        st.sampled_from([1, 1, 1, 0, 2, "1", None]), st.sampled_from(kinds), st.lists(values, max_size=12),
    )  # fmt: skip
    valid = st.sampled_from([protocol.encode(m) for m in messages])

    def mutate(data: bytes, draw: st.DrawFn) -> bytes:
        how = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if how == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]
        if how == "cut":
            return data[: draw(st.integers(0, len(data)))]
        if how == "insert":
            i = draw(st.integers(0, len(data)))
            return data[:i] + draw(st.binary(min_size=1, max_size=16)) + data[i:]
        return data + data

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        return mutate(draw(valid), draw)

    return st.one_of(st.binary(max_size=300), envelope, typed_messages(messages), typed_messages(messages), mutated())


def test_fuzzed_frames_do_not_take_the_controller_down(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    peer = controller.context.socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    secure_client(peer, TEST_KEYS)
    peer.connect(controller.address.endpoint)
    client.status()  # warm up, then measure
    rss_before = resident_mb([os.getpid()])
    sent = [0]
    started = time.monotonic()

    @FUZZ
    @given(st.lists(frames(VALID_MESSAGES), min_size=1, max_size=8), st.booleans())
    def fire(batch: list[bytes], multipart: bool) -> None:
        if multipart and len(batch) > 1:
            peer.send_multipart(batch)
        else:
            for frame in batch:
                peer.send(frame)
        sent[0] += len(batch)
        while peer.poll(0):  # replies, rejects: drain so nothing piles up here
            peer.recv()

    try:
        fire()
    finally:
        peer.close()
    assert time.monotonic() - started < 40
    assert controller.thread.is_alive(), "the controller loop died"
    status = client.status()
    assert status["controller"]["dropped_frames"] > 0
    hosts.start(controller.address, "after-fuzz")
    wait_for(lambda: any(h["node_id"] == "after-fuzz" for h in client.status()["hosts"]), 20, "a host afterwards")
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded", "valid traffic flows after the fuzzing"
    assert resident_mb([os.getpid()]) - rss_before < 150, f"memory grew by fuzzing {sent[0]} frames"


def test_fuzzed_frames_do_not_take_a_host_down(tmp_path: Path, hosts: HostProcesses) -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    secure_server(router, TEST_KEYS)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    host = hosts.start(Address("127.0.0.1", port), "fuzzed")
    try:
        assert router.poll(20_000), "the host registers"
        current = [router.recv_multipart()[0]]
        """The identity of the host's latest socket: a fuzzed `reregister` makes it reconnect."""

        def welcome_new_sockets() -> None:
            while router.poll(0):
                sender, frame = router.recv_multipart()
                if sender != current[0] and frame[:16].find(b"register") >= 0:
                    current[0] = sender
                    router.send_multipart([sender, protocol.encode(protocol.Welcome("fuzzed", 1.0, 1000))])

        router.send_multipart([current[0], protocol.encode(protocol.Welcome("fuzzed", 1.0, 1000))])

        @settings(FUZZ, max_examples=200)
        @given(st.lists(frames(FOR_HOSTS), min_size=1, max_size=6))
        def fire(batch: list[bytes]) -> None:
            for frame in batch:
                router.send_multipart([current[0], frame])
            welcome_new_sockets()

        fire()
        identity = current[0]
        time.sleep(0.5)
        assert host.poll() is None, "the host process died"
        rss = resident_mb([host.pid])
        assert 0 < rss < 300, f"host RSS {rss} MB after the fuzzing"
        # Valid traffic afterwards: a fresh attempt of a real module is run and reported. A fuzzed
        # `reregister` made the host reconnect with a new socket: follow its latest registration.
        assign = protocol.Assign("dag-ok", "final", 1, NOOP_SHA, NOOP, [], b"", [], 30.0)
        router.send_multipart([identity, protocol.encode(protocol.Welcome("fuzzed", 1.0, 1000))])
        router.send_multipart([identity, protocol.encode(assign)])
        deadline = time.monotonic() + 20
        result = None
        while time.monotonic() < deadline and result is None:
            if router.poll(200):
                sender, frame = router.recv_multipart()
                try:
                    received = protocol.unbatch(protocol.decode(frame))
                except Bxthre3Error:
                    continue
                for msg in received:
                    if isinstance(msg, protocol.Register) and sender != identity:
                        identity = sender
                        router.send_multipart([identity, protocol.encode(protocol.Welcome("fuzzed", 1.0, 1000))])
                        router.send_multipart([identity, protocol.encode(assign)])
                    elif isinstance(msg, protocol.Result) and msg.dag_id == "dag-ok":
                        result = msg
        log_tail = (tmp_path / "host_fuzzed.log").read_text()[-3000:]
        assert result is not None, f"no result after the fuzzing; the host's log ends:\n{log_tail}"
        assert result.reason is None and result.exit_code == 0, (result, log_tail)
    finally:
        ctx.destroy(linger=0)


VALID_YAML = [p.read_text() for p in sorted((REPO / "dags").glob("*.yaml"))]


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from(VALID_YAML))
    how = draw(st.sampled_from(["random", "cut", "splice", "replace_line", "deep", "alias"]))
    if how == "random":
        return draw(st.text(max_size=400))
    if how == "cut":
        return base[: draw(st.integers(0, len(base)))]
    if how == "splice":
        i = draw(st.integers(0, len(base)))
        return base[:i] + draw(st.text(alphabet=":-[]{}&*!|>'\"#%@` \n\t01abc", max_size=30)) + base[i:]
    if how == "replace_line":
        lines = base.splitlines()
        lines[draw(st.integers(0, len(lines) - 1))] = draw(st.text(max_size=60))
        return "\n".join(lines)
    if how == "deep":
        depth = draw(st.integers(30, 3000))
        return "tasks: " + "[" * depth + "]" * depth
    return "a: &x [1,2]\nb: &y [*x,*x,*x,*x]\nc: [*y,*y,*y,*y]\nname: n\ntasks: [*y]\n"


def test_fuzzed_dag_yaml_gets_a_dag_or_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "wasm_modules").symlink_to(WASM_MODULES)
    started = time.monotonic()

    @FUZZ
    @given(yaml_texts())
    def check(text: str) -> None:
        path = tmp_path / "dag.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_dag(path)
        except Bxthre3Error as exc:
            message = str(exc)
            assert message and len(message) < 2000, "errors are short and specific"
            assert "Traceback" not in message

    check()
    assert time.monotonic() - started < 30


@st.composite
def module_bytes(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["random", "header", "flip", "cut", "splice"]))
    if how == "random":
        return draw(st.binary(max_size=300))
    if how == "header":
        return b"\x00asm\x01\x00\x00\x00" + draw(st.binary(max_size=200))
    data = NOOP
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(8, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
        return data
    if how == "cut":
        return data[: draw(st.integers(0, len(data)))]
    i = draw(st.integers(8, len(data)))
    return data[:i] + draw(st.binary(min_size=1, max_size=24)) + data[i:]


def test_fuzzed_modules_are_refused_or_contained(tmp_path: Path) -> None:
    executor = Executor(address_space_mb=1024)
    executor.start()
    accepted = ran = died = 0
    started = time.monotonic()

    @settings(FUZZ, max_examples=200)
    @given(module_bytes())
    def check(data: bytes) -> None:
        nonlocal accepted, ran, died
        try:
            check_wasi_command(data, name="fuzz.wasm")
        except Bxthre3Error:
            return  # refused at submission with a ModuleError: the common, cheap outcome
        accepted += 1
        if ran + died >= 25:
            return  # running is slower: a sample of the accepted ones is enough
        sha = hashlib.sha256(data).hexdigest()
        path = tmp_path / f"{sha}.wasm"
        path.write_bytes(data)
        job = ExecJob(ran + died + 1, sha, str(path), (), b"", {}, memory_limit_bytes=64 * 1024 * 1024)
        try:
            executor.submit(job)
            if not _readable(executor, 5.0):
                executor.kill()
                executor.start()
                died += 1
                return
            result = executor.read_result()
            assert result.job_id == job.job_id
            ran += 1
        except ExecutorDied:
            died += 1  # contained: a host would report executor_crashed and start a new one
            executor.kill()
            executor.start()

    try:
        check()
    finally:
        executor.kill()
    assert time.monotonic() - started < 40
    assert accepted > 0, "some mutations keep the module valid enough to run"


def _readable(executor: Executor, timeout: float) -> bool:
    poller = zmq.Poller()
    poller.register(executor.fileno(), zmq.POLLIN)
    return bool(poller.poll(timeout * 1000))


@pytest.fixture(autouse=True)
def _fuzz_logs_quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")
