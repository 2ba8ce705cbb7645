"""A host follows what the controller measured of their link: a real Host against a ROUTER on loopback.

The controller's heartbeats carry its silence limit and its retransmission timeout for the host's path
(`liveness.py`); the host must wait as long before reconnecting, echo stamps at once, and give its next
TCP connects one RTO before retrying (so a host behind a slow link reconnects within ~one RTO of the link
returning, not after a fixed second).
"""

from __future__ import annotations

import time
from pathlib import Path

import zmq

from bxthre3.host.module_cache import ModuleCache
from bxthre3.host.session import Host, HostConfig
from bxthre3.wire import protocol
from bxthre3.wire.addresses import parse_address
from bxthre3.wire.liveness import CONNECT_TIMEOUT_S
from bxthre3.wire.sockets import configure


def _receive(router: zmq.Socket, host: Host, kind: type, timeout: float = 5.0) -> tuple[bytes, protocol.Message]:
    """Turn the host's loop until the controller side gets a message of `kind` (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        host._step()
        while router.poll(0):
            identity, frame = router.recv_multipart()
            for msg in protocol.unbatch(protocol.decode(frame)):
                if isinstance(msg, kind):
                    return identity, msg
    raise AssertionError(f"no {kind.__name__} from the host within {timeout} s")


def test_host_takes_its_connect_timeout_and_silence_limit_from_the_controller(tmp_path: Path) -> None:
    context = zmq.Context()
    router = configure(context.socket(zmq.ROUTER))
    port = router.bind_to_random_port("tcp://127.0.0.1")
    host = Host(parse_address(f"127.0.0.1:{port}"), HostConfig(node_id="link-1"), cache=ModuleCache(tmp_path / "c"),
                context=context)  # fmt: skip
    try:
        host._connect()
        assert host.sock is not None
        assert host.sock.getsockopt(zmq.CONNECT_TIMEOUT) == round(CONNECT_TIMEOUT_S * 1000)  # nothing measured
        identity, _ = _receive(router, host, protocol.Register)
        router.send_multipart([identity, protocol.encode(protocol.Welcome("link-1", 1.0, 3))])
        stamp = time.monotonic()
        heartbeat = protocol.Heartbeat(stamp=stamp, silence_s=7.5, rto_s=0.7)
        router.send_multipart([identity, protocol.encode(heartbeat)])
        _, echo = _receive(router, host, protocol.Heartbeat)
        deadline = time.monotonic() + 5
        while echo.echo != stamp:  # the echo answers the stamped heartbeat at once, not a beat later
            assert time.monotonic() < deadline
            _, echo = _receive(router, host, protocol.Heartbeat)
        assert 0 <= echo.held < 1.0
        assert (host.controller_silence, host.controller_rto) == (7.5, 0.7)
        host._connect()  # as after an outage: the new socket retries its connects one RTO apart
        assert host.sock.getsockopt(zmq.CONNECT_TIMEOUT) == 700
    finally:
        host._shutdown()
        router.close(linger=0)
        context.term()
