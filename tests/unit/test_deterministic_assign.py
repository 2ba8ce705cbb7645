"""`deterministic` from the scheduler's Assign to the executor job: the controller's frame, the wire, the pipe."""

from __future__ import annotations

import msgpack
import pytest

from bxthre3.controller.server import Controller
from bxthre3.executor.parent import ExecJob
from bxthre3.scheduler.instructions import Assign
from bxthre3.wire import protocol

SHA = "ab" * 32


def _assign(**overrides: object) -> protocol.Assign:
    fields: dict[str, object] = {
        "dag_id": "d1",
        "task_id": "t1",
        "attempt": 1,
        "module_sha": SHA,
        "module": b"",
        "args": ["x"],
        "stdin": b"",
        "input_sizes": [],
        "timeout": 30.0,
    }
    fields.update(overrides)
    return protocol.Assign(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("deterministic", [True, False])
def test_the_controller_sends_what_the_scheduler_decided(deterministic: bool) -> None:
    controller = Controller(host="127.0.0.1", port=0)
    try:
        controller.identities["h1"] = b"peer-1"
        instruction = Assign("h1", "d1", "t1", 2, SHA, False, ("x",), b"in", (2,), 30.0, None, deterministic)
        controller._apply([instruction])
        [(identity, frame)] = controller.outbox
        sent = protocol.decode(frame)
    finally:
        controller.context.term()
    assert identity == b"peer-1"
    assert isinstance(sent, protocol.Assign)
    assert (sent.task_id, sent.attempt, sent.stdin, sent.deterministic) == ("t1", 2, b"in", deterministic)


def test_the_field_round_trips_and_an_older_controllers_frame_means_false() -> None:
    assert protocol.decode(protocol.encode(_assign(deterministic=True))) == _assign(deterministic=True)
    wire = _assign(deterministic=True).to_wire()
    without = msgpack.packb(wire[:-1], use_bin_type=True)  # as a controller before this field sends it
    assert protocol.decode(without) == _assign(deterministic=False)
    with pytest.raises(protocol.ProtocolError, match="deterministic"):
        protocol.decode(msgpack.packb([*wire[:-1], 1], use_bin_type=True))


def test_an_executor_job_carries_it_across_the_pipe() -> None:
    job = ExecJob(1, SHA, "/m.wasm", ("x",), b"", {}, program_name="t1", deterministic=True)
    assert ExecJob.from_wire(job.to_wire()) == job
    older = {k: v for k, v in job.to_wire().items() if k != "deterministic"}
    assert ExecJob.from_wire(older).deterministic is False
    with pytest.raises(ValueError, match="expected bool"):
        ExecJob.from_wire({**job.to_wire(), "deterministic": 1})
