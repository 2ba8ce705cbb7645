"""The host's reader of ZeroMQ socket-monitor events (`host/monitor_events.py`), against libzmq itself."""

from __future__ import annotations

import struct
import subprocess
import sys
import time

import pytest
import zmq

from bxthre3.host.monitor_events import parse_event, recv_event


def test_a_real_connection_reports_connected_with_its_endpoint() -> None:
    context = zmq.Context()
    server = context.socket(zmq.ROUTER)
    client = context.socket(zmq.DEALER)
    try:
        port = server.bind_to_random_port("tcp://127.0.0.1")
        monitor = client.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        client.connect(f"tcp://127.0.0.1:{port}")
        seen = []
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            if monitor.poll(100):
                seen.append(recv_event(monitor, zmq.NOBLOCK))
        assert [e.event for e in seen] == [zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED]
        assert seen[1].name == "HANDSHAKE_SUCCEEDED"
        assert seen[0].endpoint == f"tcp://127.0.0.1:{port}".encode()
        with pytest.raises(zmq.Again):
            recv_event(monitor, zmq.NOBLOCK)
        monitor.close(linger=0)
    finally:
        client.close(linger=0)
        server.close(linger=0)
        context.term()


def test_event_ids_above_a_signed_short_stay_positive() -> None:
    """HANDSHAKE_FAILED_AUTH is 0x8000: read as a signed 16-bit number it would be -32768."""
    event = parse_event([struct.pack("=Hi", zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400), b"tcp://127.0.0.1:1"])
    assert event.event == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event.value == 400
    assert event.name == "HANDSHAKE_FAILED_AUTH"


@pytest.mark.parametrize("frames", [[b"\x00" * 6], [b"\x00" * 5, b"x"], [b"\x00" * 6, b"x", b"y"]])
def test_anything_else_is_refused(frames: list[bytes]) -> None:
    with pytest.raises(ValueError):
        parse_event(frames)


def test_an_idle_host_imports_neither_asyncio_nor_openssl() -> None:
    """What the host's imports cost in memory: asyncio + ssl ~8 MB, hashlib's OpenSSL ~3.5 MB."""
    code = (
        "import sys, bxthre3.cli, bxthre3.commands.host_role, bxthre3.host.session, bxthre3.common.logs;"
        "print(sorted(m for m in ('asyncio', 'ssl', '_ssl', '_hashlib', 'logging.config') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
