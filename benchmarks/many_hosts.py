"""Scale in simulation: N simulated hosts (default 1,000) on one controller, all on loopback.

    PYTHONPATH=. python benchmarks/many_hosts.py [--hosts 1000] [--tasks 100000] [--procs K] [--hold-s S]
    PYTHONPATH=. python benchmarks/many_hosts.py --hosts 10000 --tasks 0 --hold-s 30   # the 10,000-host case

The hosts are DEALER sockets (CURVE on, as in any cluster) spread over K worker processes, so that the
simulation is not what limits the rate (one process of 1,000 hosts topped out near the controller's own
rate). Each registers, echoes the controller's stamped heartbeats at once and heartbeats every interval as
a real host does, and answers every assignment at once with a success (the results of one turn in one
`batch`, as a host sends them), so the controller is the only thing measured.

Reports how long registration takes; whether heartbeats stay on time both ways (no host declared dead or
told to re-register; the longest gap between two heartbeats a host got from the controller, and between two
a host sent, which says whether the simulation kept up); the controller's and the workers' CPU while the
DAG runs, and tasks/s. With --tasks 0 the hosts only register and heartbeat for --hold-s seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import psutil  # noqa: E402
import zmq  # noqa: E402

from bxthre3.client.connection import ConnectionProblem, ControllerClient  # noqa: E402
from bxthre3.common.errors import ProtocolError  # noqa: E402
from bxthre3.wire import protocol  # noqa: E402
from bxthre3.wire.addresses import Address  # noqa: E402
from bxthre3.wire.security import CurveKeys, new_token, secure_client  # noqa: E402

BEAT_SWEEP_S = 0.05
"""How often a worker looks for hosts due a heartbeat (a real host checks on every loop turn)."""

REGISTER_WAIT_S = 6.0
MAX_BACKOFF_S = 30.0
"""A host registers again when no welcome came this long after its register (doubling up to the max),
as `host/session.py` does."""

LATE_FACTOR = 2.0
"""A gap between two heartbeats from the controller longer than this many intervals counts as late."""


@dataclass
class WorkerStats:
    """What one worker process saw; summed over workers at the end."""

    welcomed: int = 0
    done: int = 0
    reregistered: int = 0
    """`reregister`s received once welcomed: the controller had declared the host dead."""
    register_retries: int = 0
    """Registers sent again because no welcome came in time (a registration storm the controller lags behind)."""
    rejected: int = 0
    beats_from_controller: int = 0
    late_from_controller: int = 0
    """Gaps between two controller heartbeats to one host over LATE_FACTOR intervals (since `measure`)."""
    max_gap_from_controller: float = 0.0
    max_silence: float = 0.0
    """Longest a host of this worker heard nothing at all from the controller (what a host's liveness checks)."""
    max_gap_sent: float = 0.0
    """Longest a host of this worker went without sending a heartbeat (since `measure`): the simulation's lag."""
    gaps_over_silence: int = 0
    """Gaps from the controller longer than the silence limit it announced: a real host would reconnect."""
    registered_at: float = 0.0
    """Monotonic time the last of this worker's hosts was first welcomed (0: not all yet)."""
    cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def sim_worker(conn: Connection, first: int, count: int, port: int, token: str) -> None:
    """Run hosts first..first+count-1 until the parent says stop: register, heartbeat, answer assignments."""
    keys = CurveKeys.from_token(token)
    ctx = zmq.Context(io_threads=1)
    ctx.max_sockets = count + 64
    conn.send("ready")
    if conn.recv() != "go":
        return
    stats = WorkerStats()
    socks: list[zmq.Socket] = []
    poller = zmq.Poller()
    host_keys = [os.urandom(32) for _ in range(count)]
    interval = 1.0
    now = time.monotonic()
    last_sent = [now] * count
    last_beat_in = [0.0] * count
    last_heard = [0.0] * count
    silence = [3.0] * count
    echo: dict[int, tuple[float, float]] = {}
    welcomed = [False] * count
    measuring = False

    backoff = [REGISTER_WAIT_S] * count
    register_sent = [0.0] * count

    def register(i: int) -> None:
        msg = protocol.Register(f"sim-{first + i}", 1, 128, "sim", "none", key=host_keys[i])
        socks[i].send(protocol.encode(msg), zmq.NOBLOCK)
        last_sent[i] = register_sent[i] = time.monotonic()

    for i in range(count):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.setsockopt(zmq.RCVHWM, 100_000)
        secure_client(s, keys)
        s.connect(f"tcp://127.0.0.1:{port}")
        socks.append(s)
        poller.register(s, zmq.POLLIN)
        register(i)
    index = {s: i for i, s in enumerate(socks)}

    def handle(i: int, msg: object, results: list[bytes], t: float) -> None:
        nonlocal interval
        if measuring and last_heard[i] > 0:
            stats.max_silence = max(stats.max_silence, t - last_heard[i])
        last_heard[i] = t
        if isinstance(msg, protocol.Assign):
            res = protocol.Result(msg.dag_id, msg.task_id, msg.attempt, 0, b"", b"", None, "", 0.0001)
            results.append(protocol.encode(res))
            stats.done += 1
        elif isinstance(msg, protocol.Heartbeat):
            if msg.stamp > 0:
                echo[i] = (msg.stamp, t)
            if msg.silence_s > 0:
                silence[i] = msg.silence_s
            if measuring and last_beat_in[i] > 0:
                gap = t - last_beat_in[i]
                stats.beats_from_controller += 1
                stats.max_gap_from_controller = max(stats.max_gap_from_controller, gap)
                if gap > LATE_FACTOR * interval:
                    stats.late_from_controller += 1
                if gap > silence[i]:
                    stats.gaps_over_silence += 1
            last_beat_in[i] = t
        elif isinstance(msg, protocol.Welcome):
            interval = msg.heartbeat_interval
            if not welcomed[i]:
                welcomed[i] = True
                backoff[i] = REGISTER_WAIT_S
                stats.welcomed += 1
                if stats.welcomed == count:
                    stats.registered_at = time.monotonic()
        elif isinstance(msg, protocol.Reregister):
            if welcomed[i]:  # it thought us dead: register again, as a host does (ignored while registering)
                stats.reregistered += 1
                welcomed[i] = False
                stats.welcomed -= 1
                register(i)
        elif isinstance(msg, protocol.Reject):
            stats.rejected += 1

    next_sweep = next_report = time.monotonic()
    while True:
        if conn.poll():
            order = conn.recv()
            if order == "measure":
                measuring = True
                stats.max_gap_sent = 0.0
                t = time.monotonic()
                last_beat_in = [0.0] * count  # gaps count from the first heartbeat after this
                last_heard = [0.0] * count
                last_sent = [max(x, t - interval) for x in last_sent]
            elif order == "stop":
                break
        for s, _ in poller.poll(int(BEAT_SWEEP_S * 1000)):
            i = index[s]
            results: list[bytes] = []
            t = time.monotonic()
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
                    handle(i, msg, results, t)
            for out in protocol.batched(results):
                s.send(out, zmq.NOBLOCK)
        t = time.monotonic()
        if t >= next_sweep:
            next_sweep = t + BEAT_SWEEP_S
            for i in range(count):
                if not welcomed[i] and t - register_sent[i] > backoff[i]:
                    # No welcome: register again after a doubling wait, as a host does (it reconnects).
                    backoff[i] = min(MAX_BACKOFF_S, backoff[i] * 2)
                    stats.register_retries += 1
                    register(i)
                pending = echo.pop(i, None)
                if pending is None and t - last_sent[i] < interval:
                    continue
                if measuring:
                    stats.max_gap_sent = max(stats.max_gap_sent, t - last_sent[i])
                stamp, got = pending or (0.0, t)
                socks[i].send(protocol.encode(protocol.Heartbeat(echo=stamp, held=t - got)), zmq.NOBLOCK)
                last_sent[i] = t
        if t >= next_report:
            next_report = t + 0.25
            conn.send(("progress", stats.welcomed, stats.done, stats.reregistered + stats.register_retries))
    stats.cpu_s = sum(os.times()[:2])
    conn.send(("final", stats))
    for s in socks:
        s.close(linger=0)
    ctx.term()


@dataclass
class Worker:
    proc: Any
    conn: Connection
    welcomed: int = 0
    done: int = 0
    reregistered: int = 0
    final: WorkerStats | None = None


def read_workers(workers: list[Worker], timeout: float) -> None:
    """Take every report waiting from the workers (waiting at most `timeout` for the first)."""
    from multiprocessing.connection import wait

    ready = wait([w.conn for w in workers], timeout)
    for w in workers:
        if w.conn in ready:
            while w.conn.poll():
                report = w.conn.recv()
                if report[0] == "progress":
                    _, w.welcomed, w.done, w.reregistered = report
                elif report[0] == "final":
                    w.final = report[1]


def main() -> int:
    from core_throughput import free_port, independent

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--procs", type=int, default=0, help="worker processes for the hosts (0: one per 500, 2-8)")
    ap.add_argument("--hold-s", type=float, default=None, help="heartbeat this long after the DAG (default: 10 s "
                    "with --tasks 0, else 0)")  # fmt: skip
    ap.add_argument("--limit-s", type=float, default=300.0, help="give up after this long")
    ap.add_argument("--log", type=Path, help="keep the controller's log (level INFO) here")
    args = ap.parse_args()
    procs = args.procs or max(2, min(8, -(-args.hosts // 500)))
    hold_s = args.hold_s if args.hold_s is not None else (10.0 if args.tasks == 0 else 0.0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.hosts:,} simulated hosts in {procs} processes, {args.tasks:,} tasks; "
          f"load average {os.getloadavg()[0]:.2f} before")  # fmt: skip
    token = new_token()
    keys = CurveKeys.from_token(token)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), BXTHRE3_TOKEN=token)
    log_path = args.log or Path(tempfile.mkstemp(prefix="many_hosts_", suffix=".log")[1])
    log_file = log_path.open("wb")
    controller = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", str(port),
         "--state-dir", ":memory:", "--log-level", "INFO" if args.log else "WARNING"],
        env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
    )  # fmt: skip
    print(f"controller pid {controller.pid}", flush=True)
    spawn = mp.get_context("spawn")
    workers: list[Worker] = []
    deadline = time.monotonic() + args.limit_s
    try:
        cpu = psutil.Process(controller.pid)
        per = -(-args.hosts // procs)
        for k in range(procs):
            first, count = k * per, min(per, args.hosts - k * per)
            if count <= 0:
                break
            parent, child = spawn.Pipe()
            proc = spawn.Process(target=sim_worker, args=(child, first, count, port, token), daemon=True)
            proc.start()
            workers.append(Worker(proc, parent))
        for w in workers:
            if not w.conn.poll(60) or w.conn.recv() != "ready":
                raise SystemExit("a worker did not start")
        time.sleep(0.5)  # the controller is listening by now (it started before the workers' imports)
        worker_cpu = [psutil.Process(w.proc.pid) for w in workers]
        for p in [cpu, *worker_cpu]:
            p.cpu_percent(None)
        started = time.monotonic()
        for w in workers:
            w.conn.send("go")
        while sum(w.welcomed for w in workers) < args.hosts and time.monotonic() < deadline:
            read_workers(workers, 0.25)
        registered = sum(w.welcomed for w in workers)
        print(f"registration: {registered:,} of {args.hosts:,} hosts welcomed in {time.monotonic() - started:.1f} s, "
              f"{sum(w.reregistered for w in workers)} registers sent again meanwhile; controller CPU "
              f"{cpu.cpu_percent(None):.0f} %, simulation {sum(p.cpu_percent(None) for p in worker_cpu):.0f} %",
              flush=True)  # fmt: skip
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))  # first heartbeats and echoes settle
        for w in workers:
            w.conn.send("measure")
        with ControllerClient(Address("127.0.0.1", port), keys=keys, timeout=120) as client:
            if args.tasks > 0:
                cpu.cpu_percent(None)
                for p in worker_cpu:
                    p.cpu_percent(None)
                t = time.monotonic()
                dag_id = client.submit(independent(args.tasks))
                submit_s = time.monotonic() - t
                finished = False
                while time.monotonic() < deadline and not finished:
                    read_workers(workers, 0.5)
                    finished = client.progress(dag_id)["state"] == "succeeded"
                elapsed = time.monotonic() - t
                load = cpu.cpu_percent(None)
                sim_load = [p.cpu_percent(None) for p in worker_cpu]
                print(f"submitted in {submit_s:.1f} s; DAG {'succeeded' if finished else 'NOT finished'} in "
                      f"{elapsed:.1f} s ({args.tasks / elapsed:,.0f} tasks/s); controller CPU {load:.0f} % of one "
                      f"core, simulation {sum(sim_load):.0f} % ({' '.join(f'{x:.0f}' for x in sim_load)})")  # fmt: skip
            if hold_s > 0:
                cpu.cpu_percent(None)
                end = time.monotonic() + hold_s
                while time.monotonic() < min(end, deadline):
                    read_workers(workers, 0.25)
                print(f"held {hold_s:.0f} s heartbeating: controller CPU {cpu.cpu_percent(None):.0f} % of one core")
            status = None
            asked = time.monotonic()
            for _ in range(5):  # a controller swamped by a registration storm may not answer at once
                try:
                    status = client.status()
                    break
                except ConnectionProblem as exc:
                    print(f"status: {exc}")
            if status is None:
                raise SystemExit("the controller never answered a status request")
            print(f"status of {status['totals']['hosts']:,} hosts answered in {time.monotonic() - asked:.2f} s")
        for w in workers:
            w.conn.send("stop")
        while any(w.final is None for w in workers) and time.monotonic() < deadline + 30:
            read_workers(workers, 1.0)
        finals = [w.final for w in workers if w.final is not None]
        beats = sum(f.beats_from_controller for f in finals)
        late = sum(f.late_from_controller for f in finals)
        print(f"heartbeats: {status['totals']['hosts']:,} of {args.hosts:,} hosts still registered at the end, "
              f"{sum(f.reregistered for f in finals)} re-registrations (declared dead), "
              f"{sum(f.register_retries for f in finals)} registers sent again for want of a welcome, "
              f"{sum(f.rejected for f in finals)} rejects")  # fmt: skip
        longest_in = max((f.max_gap_from_controller for f in finals), default=0.0)
        longest_out = max((f.max_gap_sent for f in finals), default=0.0)
        silence = max((f.max_silence for f in finals), default=0.0)
        print(f"  from the controller: {beats:,} heartbeats, {late} late (gap > {LATE_FACTOR:g} intervals), "
              f"longest gap {longest_in:.2f} s, {sum(f.gaps_over_silence for f in finals)} over the announced "
              f"silence limit; longest a host heard nothing at all {silence:.2f} s; the simulation's longest gap "
              f"between heartbeats it sent {longest_out:.2f} s")  # fmt: skip
        print(f"controller RSS {cpu.memory_info().rss / 2**20:.0f} MB; load average {os.getloadavg()[0]:.2f} after")
        if status["totals"]["hosts"] < args.hosts:
            lost = [ln for ln in log_path.read_text(errors="replace").splitlines() if "lost" in ln or "dead" in ln]
            print(f"controller log ({log_path}): {len(lost)} lines on lost hosts; last: {lost[-1:]}")
    finally:
        for w in workers:
            if w.proc.is_alive():
                w.proc.terminate()
            w.proc.join(10)
        controller.terminate()
        try:
            controller.wait(10)
        except subprocess.TimeoutExpired:
            controller.kill()
        log_file.close()
        if args.log is None:
            log_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
