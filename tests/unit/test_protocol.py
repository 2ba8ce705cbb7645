"""Protocol round-trips and rejections: every kind survives the wire; garbage never passes."""

from __future__ import annotations

import re
from pathlib import Path

import msgpack
import pytest

from bxthre3.common import limits
from bxthre3.common.errors import ProtocolError
from bxthre3.wire import protocol

SAMPLES: list[protocol.Message] = [
    protocol.Register("host-001", 2, 128, "linux-x86_64", "wasm3", ["ab" * 32], 4242, "0.1.0"),
    protocol.Heartbeat(),
    protocol.Result("dag-1", "t", 2, 0, b"\x00out\xff", b"err", None, "", 0.25),
    protocol.Result("dag-1", "t", 3, None, b"", b"", "timeout", "killed", 30.0),
    protocol.Bye("stopping"),
    protocol.Welcome("host-001", 1.0, 3),
    protocol.Reject("go away"),
    protocol.Assign("dag-1", "t", 1, "ab" * 32, b"\x00asm", ["x", "y"], b"in", [2], 30.0),
    protocol.Submit(7, {"name": "x", "tasks": []}),
    protocol.StatusRequest(1),
    protocol.ProgressRequest(2, "dag-1"),
    protocol.ResultsRequest(3, "dag-1"),
    protocol.ResultsRequest(3, "dag-1", False, "t7"),
    protocol.Reply(4, True, {"dag_id": "dag-1"}, ""),
    protocol.Reply(5, False, {}, "bad"),
    protocol.Ack("dag-1", "t", 2),
    protocol.Reregister(),
    protocol.WatchRequest(7, 5.0),
    protocol.Update(3, {"totals": {"hosts": 1}}),
    protocol.Abort("dag-1", "t", 3),
    protocol.CancelRequest(6, "dag-1"),
    protocol.RetryRequest(9, "dag-1"),
    protocol.TrustRequest(10, "3f2a9c01"),
    protocol.CacheRequest(11, "stats"),
    protocol.ActivityRequest(12, 60.0),
    protocol.StructureRequest(13, "dag-1"),
    protocol.Register("h", 1, 64, "p", "e", [], 1, "v", [["dag-1", "t", 2]]),
    protocol.Batch([protocol.encode(protocol.Ack("dag-1", "t", 2)), protocol.encode(protocol.Heartbeat())]),
]

V = protocol.PROTOCOL_VERSION


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: protocol.Message) -> None:
    assert protocol.decode(protocol.encode(message)) == message


def test_every_kind_has_a_sample() -> None:
    assert {type(m).KIND for m in SAMPLES} == set(protocol._KINDS)


def _frame(*items: object) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"", "not msgpack"),
        (b"\xc1garbage", "not msgpack"),
        (msgpack.packb({"v": 1}), "array"),
        (_frame(1), "array"),
        (_frame(V + 1, "heartbeat"), "version"),
        (_frame(1, "heartbeat"), "version"),
        (_frame("1", "heartbeat"), "version"),
        (_frame(V, "launch_missiles"), "unknown message kind"),
        (_frame(V, 42), "unknown message kind"),
        (_frame(V, "bye", 17), "wrong type"),
        (_frame(V, "register", "n", "2", 128, "p", "e"), "'slots' has the wrong type"),
        (_frame(V, "register", "n", True, 128, "p", "e"), "'slots' has the wrong type"),
        (_frame(V, "register", "n"), "missing field 'slots'"),
        (_frame(V, "assign", "d", "t", 1, "s", "not-bytes", [], b"", [], 1.0), "'module' has the wrong type"),
        (_frame(V, "assign", "d", "t", 1, "s", b"", [1, 2], b"", [], 1.0), "'args' has the wrong type"),
        (_frame(V, "submit", 1, ["not", "a", "map"]), "'dag' has the wrong type"),
        (_frame(V, "trust", 1, b"3f2a9c01"), "'device' has the wrong type"),
        (_frame(V, "trust", 1, ["3f2a9c01"]), "'device' has the wrong type"),
        (_frame(V, "trust", 1), "missing field 'device'"),
        (b"\xdd\xff\xff\xff\xff", "not msgpack"),
        (_frame(V, "register", "n", 1, 1, "p", "e", [], 1, "v", [["d", "t"]]), "'holding' has the wrong type"),
        (_frame(V, "register", "n", 1, 1, "p", "e", [], 1, "v", [["d", "t", "1"]]), "'holding' has the wrong type"),
    ],
)
def test_rejections(frame: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(why) if "'" in why else why):
        protocol.decode(frame)


def test_oversized_frame_is_rejected_before_parsing() -> None:
    frame = b"\x90" + b"\x00" * limits.MAX_FRAME_BYTES
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.decode(frame)


def test_extra_trailing_fields_are_ignored_for_forward_compatibility() -> None:
    assert protocol.decode(_frame(V, "bye", "why", "a field from the future")) == protocol.Bye("why")


def test_missing_optional_field_takes_default() -> None:
    msg = protocol.decode(_frame(V, "register", "n", 1, 64, "p", "e"))
    assert isinstance(msg, protocol.Register)
    assert msg.modules == [] and msg.pid == 0


def test_old_results_request_without_new_fields_decodes() -> None:
    msg = protocol.decode(_frame(V, "results", 3, "dag-1"))
    assert msg == protocol.ResultsRequest(3, "dag-1")
    assert isinstance(msg, protocol.ResultsRequest) and msg.with_output is True and msg.task_id == ""
    assert protocol.decode(_frame(V, "results", 3, "dag-1", False)) == protocol.ResultsRequest(3, "dag-1", False, "")


def test_peek_kind_reads_version_of_foreign_frames() -> None:
    assert protocol.peek_kind(_frame(9, "register")) == (9, "register")
    assert protocol.peek_kind(b"\xc1") == (None, None)


def test_spec_documents_every_kind_and_limit() -> None:
    spec = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    for kind in protocol._KINDS:
        assert f"`{kind}`" in spec, f"docs/protocol.md does not document kind {kind!r}"
    assert f"version {protocol.PROTOCOL_VERSION}" in spec
    assert f"{limits.MAX_FRAME_BYTES // limits.MiB} MiB" in spec
    assert f"{limits.MAX_MODULE_BYTES // limits.MiB} MiB" in spec
    assert f"{limits.MAX_TASKS_PER_DAG:,}" in spec


def test_hostile_msgpack_shapes_are_protocol_errors_not_crashes() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"  # 100,000 nested arrays
    huge_claim = b"\xdd\xff\xff\xff\xff"  # an array claiming 4 billion elements, in 5 bytes
    huge_str = b"\xdb\xff\xff\xff\xff" + b"x" * 10  # a string claiming 4 GiB
    for frame in (deep, huge_claim, huge_str, b"\x82\x01\x02\x03\x04"):  # the last: a map with int keys
        with pytest.raises(ProtocolError, match="not msgpack"):
            protocol.decode(frame)


def test_frames_that_would_amplify_in_memory_are_refused_cheaply() -> None:
    import os
    import struct
    import time

    from bxthre3.node.ram_probe import resident_mb

    n = 16 * 1024 * 1024
    before, started = resident_mb([os.getpid()]), time.monotonic()
    empty_arrays = b"\xdd" + struct.pack(">I", n) + b"\x90" * n  # 16 MiB: ~1 GB as Python lists
    with pytest.raises(ProtocolError, match="may exceed 1,048,576 bytes"):
        protocol.decode(empty_arrays)
    as_submit = b"\x93\x02\xa6submit\x91" + empty_arrays  # a kind allowed to be big: the container cap
    with pytest.raises(ProtocolError, match="more than 2,000,000 arrays and maps"):
        protocol.decode(as_submit)
    assert resident_mb([os.getpid()]) - before < 300 and time.monotonic() - started < 10
    padded_status = protocol.encode(protocol.StatusRequest(1)) + b"x" * (2 * 1024 * 1024)
    with pytest.raises(ProtocolError, match="'status' frame"):
        protocol.decode(padded_status)


def test_a_huge_kind_makes_a_short_error() -> None:
    frame = msgpack.packb([V, "K" * 1_000_000])
    with pytest.raises(ProtocolError) as info:
        protocol.decode(frame)
    assert len(str(info.value)) < 200 and "1,000,002 characters" in str(info.value)
    assert protocol.peek_kind(frame[:300]) == (None, None), "a cut frame peeks as nothing"
    assert protocol.peek_kind(protocol.encode(protocol.Heartbeat())) == (V, "heartbeat")


def test_loopback_means_a_loopback_address_not_a_prefix() -> None:
    from bxthre3.wire.sockets import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("127.9.9.9") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("127.attacker.example") and not is_loopback("127.0.0.1.nip.io")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_batched_packs_frames_in_order_and_unbatch_gives_them_back() -> None:
    messages = [protocol.Ack("d", f"t{i}", 1) for i in range(5)] + [protocol.Heartbeat(rss_mb=3)]
    frames = protocol.batched([protocol.encode(m) for m in messages])
    assert len(frames) == 1
    out = [m for f in frames for m in protocol.unbatch(protocol.decode(f))]
    assert out == messages


def test_a_single_frame_is_sent_as_it_is() -> None:
    frame = protocol.encode(protocol.Heartbeat())
    assert protocol.batched([frame]) == [frame]
    assert protocol.unbatch(protocol.Heartbeat()) == [protocol.Heartbeat()]


def test_batches_stay_near_their_size_limit_and_big_frames_go_alone() -> None:
    big = protocol.encode(protocol.Result("d", "big", 1, 0, b"x" * protocol.MAX_BATCH_BYTES, b"", None, "", 1.0))
    small = [protocol.encode(protocol.Result("d", f"s{i}", 1, 0, b"y" * 50_000, b"", None, "", 1.0)) for i in range(12)]
    frames = protocol.batched([*small[:6], big, *small[6:]])
    assert big in frames
    assert all(len(f) <= protocol.MAX_BATCH_BYTES + 1024 for f in frames if f != big)
    out = [m for f in frames for m in protocol.unbatch(protocol.decode(f))]
    assert [m.task_id for m in out if isinstance(m, protocol.Result)] == [f"s{i}" for i in range(6)] + ["big"] + [
        f"s{i}" for i in range(6, 12)
    ]


def test_bad_frames_inside_a_batch_are_reported_one_by_one_and_nesting_is_refused() -> None:
    good = protocol.encode(protocol.Ack("d", "t", 1))
    nested = protocol.encode(protocol.Batch([good]))
    out = protocol.unbatch(protocol.decode(protocol.encode(protocol.Batch([b"\xc1junk", nested, good]))))
    assert isinstance(out[0], ProtocolError) and "not msgpack" in str(out[0])
    assert isinstance(out[1], ProtocolError) and "batch inside a batch" in str(out[1])
    assert out[2] == protocol.Ack("d", "t", 1)


def test_a_batch_of_other_things_than_frames_is_refused() -> None:
    with pytest.raises(ProtocolError, match="batch: field 'frames' has the wrong type"):
        protocol.decode(msgpack.packb([V, "batch", ["not bytes"]]))


def _numeric_fields() -> list[tuple[str, str, str]]:
    """(kind, field, declared type) of every number on the wire."""
    import dataclasses

    return [
        (kind, f.name, str(f.type))
        for kind, cls in protocol._KINDS.items()
        for f in dataclasses.fields(cls)
        if str(f.type) in ("int", "float", "int | None")
    ]


def _sample_values(kind: str) -> list[object]:
    sample = next(m for m in SAMPLES if m.KIND == kind)
    return sample.to_wire()[2:]


@pytest.mark.parametrize(("kind", "name", "declared"), _numeric_fields(), ids=lambda x: str(x))
def test_every_number_on_the_wire_is_range_checked(kind: str, name: str, declared: str) -> None:
    """No wire value can reach SQLite (signed 64-bit) or arithmetic out of range: 2**63 made the
    journal raise OverflowError and took the controller down."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(protocol._KINDS[kind])]
    values = _sample_values(kind)
    values += [None] * (len(names) - len(values))
    i = names.index(name)

    def frame(value: object) -> bytes:
        return msgpack.packb([V, kind, *values[:i], value, *values[i + 1 :]], use_bin_type=True)

    # msgpack's integers end at -2**63 and 2**64 - 1: the unsigned half above 2**63 - 1 must not pass.
    bad: list[object] = [2**63, 2**64 - 1]
    if declared == "float":
        bad += [float("nan"), float("inf"), float("-inf")]
    for value in bad:
        with pytest.raises(ProtocolError, match=f"'{name}'"):
            protocol.decode(frame(value))
    if (kind, name) != ("result", "exit_code"):  # narrower: see test_an_exit_code_is_a_32_bit_value
        for edge in (2**63 - 1, -(2**63)):
            assert getattr(protocol.decode(frame(edge)), name) == edge


def test_numbers_inside_lists_are_range_checked() -> None:
    with pytest.raises(ProtocolError, match="'holding'"):
        protocol.decode(_frame(V, "register", "n", 1, 1, "p", "e", [], 1, "v", [["d", "t", 2**63]]))
    with pytest.raises(ProtocolError, match="'input_sizes'"):
        protocol.decode(_frame(V, "assign", "d", "t", 1, "s", b"", [], b"", [2**64 - 1], 1.0))


def test_an_exit_code_is_a_32_bit_value() -> None:
    for code in (-(2**31), -1, 0, 255, 2**32 - 1, None):
        assert protocol.decode(_frame(V, "result", "d", "t", 1, code, b"", b"", None, "", 0.1)).exit_code == code
    for code in (2**32, -(2**31) - 1, 2**63, 2**64 - 1, 1.5, True):
        with pytest.raises(ProtocolError, match="'exit_code'"):
            protocol.decode(_frame(V, "result", "d", "t", 1, code, b"", b"", None, "", 0.1))


def test_a_result_naming_its_attempt_with_a_bad_field_is_a_poison_result() -> None:
    """It names the attempt, so the controller can acknowledge it and fail the attempt (`internal`)."""
    with pytest.raises(protocol.PoisonResult) as caught:
        protocol.decode(_frame(V, "result", "dag-1", "t", 3, 2**63, b"", b"", None, "", 0.1))
    assert (caught.value.dag_id, caught.value.task_id, caught.value.attempt) == ("dag-1", "t", 3)
    assert "exit_code" in str(caught.value) and "out of range" in str(caught.value)
    for frame in (
        _frame(V, "result", "dag-1", "t", 3, 0, b"", b"", None, "", float("nan")),
        _frame(V, "result", "dag-1", "t", 3, 0, "not bytes", b"", None, "", 0.1),
        _frame(V, "result", "dag-1", "t", 3),
    ):
        with pytest.raises(protocol.PoisonResult):
            protocol.decode(frame)
    # Without a usable attempt key it is an ordinary bad frame.
    for frame in (
        _frame(V, "result", "dag-1", "t", 2**63, 0, b"", b"", None, "", 0.1),
        _frame(V, "result", 5, "t", 3, 0, b"", b"", None, "", 0.1),
    ):
        with pytest.raises(ProtocolError) as plain:
            protocol.decode(frame)
        assert not isinstance(plain.value, protocol.PoisonResult)
    # Inside a batch it comes out as an item of its own.
    batch = protocol.Batch([_frame(V, "result", "dag-1", "t", 3, 2**63, b"", b"", None, "", 0.1)])
    (item,) = protocol.unbatch(protocol.decode(protocol.encode(batch)))
    assert isinstance(item, protocol.PoisonResult)
