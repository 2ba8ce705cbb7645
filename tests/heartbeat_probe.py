"""A process that measures how promptly a controller's loop answers, as a host would feel it.

    python -m tests.heartbeat_probe --port PORT [--interval 0.25]     (token from BXTHRE3_TOKEN)

Two DEALERs on loopback, in a process of their own so that nothing the caller does (building and
encoding a 100,000-task DAG holds its GIL for seconds) blurs the figures:

- a registered host that takes no work (paused in its every heartbeat): records the gaps between
  the controller's heartbeats and counts `reregister`/`reject` (the controller thought it dead);
- an unregistered DEALER sending a heartbeat every 10 ms: the controller answers each at once with
  `reregister`, so the longest round trip is the loop's worst stall, at 10 ms resolution.

Commands on stdin, one per line: `reset` (forget the figures so far), `report` (print them as one
JSON line). EOF ends it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque

import zmq

from bxthre3.common.errors import ProtocolError
from bxthre3.wire import protocol
from bxthre3.wire.security import TOKEN_ENV, CurveKeys, new_host_key, secure_client

PING_INTERVAL_S = 0.01


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.25, help="heartbeat interval of the registered probe")
    ap.add_argument("--node-id", default="probe")
    args = ap.parse_args()
    keys = CurveKeys.from_token(os.environ[TOKEN_ENV])
    ctx = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{args.port}"

    def dealer() -> zmq.Socket:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        secure_client(s, keys)
        s.connect(endpoint)
        return s

    host, pinger = dealer(), dealer()
    register = protocol.encode(protocol.Register(args.node_id, 1, 0, "probe", "none", key=new_host_key()))
    beat = protocol.encode(protocol.Heartbeat(paused="heartbeat probe: takes no work"))
    host.send(register)
    host.send(beat)
    stats: dict[str, float] = {}
    sent: deque[float] = deque()

    def reset() -> None:
        stats.update(beats=0, max_gap=0.0, reregisters=0, rejects=0, welcomes=0, pings=0, max_rtt=0.0)
        stats["last_beat"] = 0.0

    reset()
    poller = zmq.Poller()
    poller.register(host, zmq.POLLIN)
    poller.register(pinger, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    next_beat = next_ping = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_beat:
            host.send(beat)
            next_beat = now + args.interval
        if now >= next_ping:
            pinger.send(protocol.encode(protocol.Heartbeat()))
            sent.append(now)
            next_ping = now + PING_INTERVAL_S
        events = dict(poller.poll(max(0.0, min(next_beat, next_ping) - time.monotonic()) * 1000))
        now = time.monotonic()
        if sys.stdin.fileno() in events:
            line = sys.stdin.readline()
            if not line:
                break
            if line.strip() == "reset":
                reset()
            elif line.strip() == "report":
                print(json.dumps({k: v for k, v in stats.items() if k != "last_beat"}), flush=True)
        while pinger in events:
            try:
                pinger.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if sent:
                stats["max_rtt"] = max(stats["max_rtt"], now - sent.popleft())
                stats["pings"] += 1
        while host in events:
            try:
                frame = host.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                messages = protocol.unbatch(protocol.decode(frame))
            except ProtocolError:
                continue
            for msg in messages:
                if isinstance(msg, protocol.Heartbeat):
                    if stats["last_beat"]:
                        stats["max_gap"] = max(stats["max_gap"], now - stats["last_beat"])
                    stats["last_beat"] = now
                    stats["beats"] += 1
                elif isinstance(msg, protocol.Welcome):
                    stats["welcomes"] += 1
                elif isinstance(msg, protocol.Reregister):  # it thought us dead: register again, as a host does
                    stats["reregisters"] += 1
                    host.send(register)
                    host.send(beat)
                elif isinstance(msg, protocol.Reject):
                    stats["rejects"] += 1
    host.close()
    pinger.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
