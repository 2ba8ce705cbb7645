"""Scale in simulation: N simulated hosts (default 1,000) on one controller, all on loopback.

    PYTHONPATH=. python benchmarks/many_hosts.py [--hosts 1000] [--tasks 100000] [--limit-s 300]

The hosts are DEALER sockets in this one process (CURVE on, as in any cluster): each registers,
heartbeats every second and answers every assignment at once with a success, so the controller is the
only thing measured. Reports how long registration takes, whether heartbeats stay on time (no host is
declared dead or told to re-register), the controller's CPU while the DAG runs, and tasks/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import psutil  # noqa: E402
import zmq  # noqa: E402

from bxthre3.client.connection import ControllerClient  # noqa: E402
from bxthre3.common.errors import ProtocolError  # noqa: E402
from bxthre3.wire import protocol  # noqa: E402
from bxthre3.wire.addresses import Address  # noqa: E402
from bxthre3.wire.security import CurveKeys, new_token, secure_client  # noqa: E402


def main() -> int:
    from core_throughput import free_port, independent

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--limit-s", type=float, default=300.0, help="give up after this long")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.hosts} simulated hosts, {args.tasks:,} tasks")  # fmt: skip
    token = new_token()
    keys = CurveKeys.from_token(token)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), BXTHRE3_TOKEN=token)
    controller = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", str(port),
         "--state-dir", ":memory:", "--log-level", "WARNING"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ctx = zmq.Context(io_threads=2)
    socks: list[zmq.Socket] = []
    deadline = time.monotonic() + args.limit_s
    try:
        cpu = psutil.Process(controller.pid)
        time.sleep(1.0)
        started = time.monotonic()
        poller = zmq.Poller()
        keys_of = [os.urandom(32) for _ in range(args.hosts)]
        """Each simulated host's identity key (the controller pins its node id to it)."""
        for i in range(args.hosts):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            secure_client(s, keys)
            s.connect(f"tcp://127.0.0.1:{port}")
            s.send(protocol.encode(protocol.Register(f"sim-{i}", 1, 128, "sim", "none", key=keys_of[i])))
            poller.register(s, zmq.POLLIN)
            socks.append(s)
        welcomed: set[int] = set()
        reregistered = done = 0
        last_beat = time.monotonic()
        index = {s: i for i, s in enumerate(socks)}

        def pump(timeout_ms: int) -> None:
            for s, _ in poller.poll(timeout_ms):
                for _ in range(100):
                    try:
                        frame = s.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        received = protocol.unbatch(protocol.decode(frame))
                    except ProtocolError:
                        continue
                    for msg in received:
                        handle(s, msg)

        def handle(s: zmq.Socket, msg: object) -> None:
            nonlocal reregistered, done
            if isinstance(msg, protocol.Welcome):
                welcomed.add(index[s])
            elif isinstance(msg, protocol.Reregister):  # it thought us dead: register again, as a host does
                reregistered += 1
                welcomed.discard(index[s])
                i = index[s]
                s.send(protocol.encode(protocol.Register(f"sim-{i}", 1, 128, "sim", "none", key=keys_of[i])))
            elif isinstance(msg, protocol.Assign):
                s.send(protocol.encode(protocol.Result(msg.dag_id, msg.task_id, msg.attempt, 0, b"", b"",
                                                       None, "", 0.0001)))  # fmt: skip
                done += 1

        def beat() -> None:
            nonlocal last_beat
            if time.monotonic() - last_beat >= 1.0:
                frame = protocol.encode(protocol.Heartbeat())
                for s in socks:
                    s.send(frame, zmq.NOBLOCK)
                last_beat = time.monotonic()

        while len(welcomed) < args.hosts and time.monotonic() < deadline:
            pump(100)
            beat()
        print(f"{len(welcomed)} of {args.hosts} hosts registered in {time.monotonic() - started:.1f} s")
        with ControllerClient(Address("127.0.0.1", port), keys=keys, timeout=120) as client:
            cpu.cpu_percent(None)
            t = time.monotonic()
            # Submit from a thread: the simulated hosts must keep heartbeating meanwhile.
            submitted: list[str] = []
            spec = independent(args.tasks)

            def submit() -> None:
                with ControllerClient(Address("127.0.0.1", port), keys=keys, timeout=120) as other:
                    submitted.append(other.submit(spec))

            import threading

            thread = threading.Thread(target=submit, daemon=True)
            thread.start()
            while thread.is_alive() and time.monotonic() < deadline:
                pump(50)
                beat()
            submit_s = time.monotonic() - t
            dag_id = submitted[0]
            finished = False
            next_check = time.monotonic() + 0.5
            while time.monotonic() < deadline and not finished:
                pump(50)
                beat()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + 0.5
                    finished = client.progress(dag_id)["state"] == "succeeded"
            elapsed = time.monotonic() - t
            load = cpu.cpu_percent(None)
            status = client.status()
        print(f"submitted in {submit_s:.1f} s; DAG {'succeeded' if finished else 'NOT finished'} in {elapsed:.1f} s "
              f"({args.tasks / elapsed:,.0f} tasks/s); controller CPU {load:.0f} % of one core on average")  # fmt: skip
        print(f"heartbeats: {status['totals']['hosts']} of {args.hosts} hosts still registered at the end, "
              f"{reregistered} re-register requests (0 = every host stayed on time)")  # fmt: skip
        print(f"controller RSS {cpu.memory_info().rss / 2**20:.0f} MB")
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()
        controller.terminate()
        try:
            controller.wait(10)
        except subprocess.TimeoutExpired:
            controller.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
