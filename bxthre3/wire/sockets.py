"""Socket set-up shared by every role, so limits are applied in exactly one place."""

from __future__ import annotations

import ipaddress

import zmq

from ..common.limits import MAX_FRAME_BYTES


def is_loopback(host: str) -> bool:
    """Only this device can reach a socket bound here: a literal 127.0.0.0/8 or ::1 address, or
    "localhost". A name like 127.attacker.example is not (it resolves wherever its owner likes)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def configure(sock: zmq.Socket) -> zmq.Socket:
    """LINGER 0 (closing never blocks on a dead peer), a frame cap, generous queues."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    return sock
