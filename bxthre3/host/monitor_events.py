"""Read ZeroMQ socket-monitor events without `zmq.utils.monitor`.

pyzmq's `zmq.utils.monitor` imports `zmq.asyncio`, hence asyncio and ssl (OpenSSL): about 8 MB of
resident memory in a host that never awaits anything (an idle host went from 24 to 32 MB with it).
The event format is two frames, fixed by libzmq's `zmq_socket_monitor`: a 6-byte frame holding a
16-bit event id and a 32-bit value (native byte order, no padding), then the endpoint.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import zmq

_EVENT = struct.Struct("=Hi")


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """One event of a monitored socket: `event` is a `zmq.EVENT_*` value, `value` its detail (an fd,
    an errno, a protocol error code), `endpoint` the address it concerns."""

    event: int
    value: int
    endpoint: bytes

    @property
    def name(self) -> str:
        """The event's libzmq name (`HANDSHAKE_SUCCEEDED`), or its number when pyzmq does not know it."""
        try:
            return zmq.Event(self.event).name or str(self.event)
        except ValueError:
            return str(self.event)


def parse_event(frames: list[bytes]) -> MonitorEvent:
    """Decode one monitor message; ValueError when it is not in libzmq's format."""
    if len(frames) != 2 or len(frames[0]) != _EVENT.size:
        raise ValueError(f"not a socket-monitor event: {len(frames)} frame(s)")
    event, value = _EVENT.unpack(frames[0])
    return MonitorEvent(event, value, frames[1])


def recv_event(monitor: zmq.Socket, flags: int = 0) -> MonitorEvent:
    """Receive and decode the next event (raises zmq.Again under NOBLOCK when none waits)."""
    return parse_event(monitor.recv_multipart(flags))
