"""A phone-like link between two private network namespaces: delay, jitter, loss and blackouts, in userspace.

This kernel has neither ``sch_netem`` nor iptables, so the impairment is a small forwarder between two TUN
devices. :class:`ImpairedLink` creates two namespaces of its own (``bx3-<t>-ctl`` and ``bx3-<t>-phone``, see
tests/netns_support.py for names, leftovers and teardown) and starts this module as a process
(``python -m tests.impaired_link``) that opens one TUN device *inside each namespace* (``setns`` then
``TUNSETIFF`` with ``IFF_TUN | IFF_NO_PI``)::

    bx3-<t>-ctl                      forwarder process                     bx3-<t>-phone
    tun "bxl" 10.79.N.1 peer .2  <-- fd A  ==delay, loss==>  fd B -->  tun "bxl" 10.79.N.2 peer .1

Every IP packet the kernel routes out of one TUN is read by the forwarder from that TUN's fd and written
to the other's fd after a delay drawn uniformly from ``delay ± jitter``, or dropped with probability
``loss``. Nothing else connects the two namespaces, and nothing touches the root namespace's interfaces.

Why these choices:

- **FIFO per direction**: a packet never overtakes the one before it in the same direction (its release
  time is at least its predecessor's). Radio links queue in order; independent per-packet delays with a
  jitter as large as ±100 ms would reorder most of a TCP window and turn every burst into spurious fast
  retransmits, which is a different network than the one reported.
- **Bounded**: at most ``MAX_QUEUED`` packets wait per direction (more are dropped, like a router's
  queue), the process exits at EOF on stdin (its parent died or closed it) or after ``--max-seconds``.
- **Controlled through stdin**, one command a line: ``set DELAY JITTER LOSS`` (seconds, seconds,
  fraction), ``blackout SECONDS`` (drop everything for that long, from now) and ``stats`` (prints one
  JSON line of counters to stdout). A benchmark and a test drive it the same way.

Needs root (namespaces, /dev/net/tun); :class:`~tests.netns_support.NetnsUnavailable` otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import random
import secrets
import select
import shutil
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from tests.netns_support import NETNS_DIR, PREFIX, NamespaceProcesses, NetnsUnavailable, _ip

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000

TUN_NAME = "bxl"
MAX_QUEUED = 20_000
"""Packets waiting per direction; beyond this the link drops (a router's queue is finite too)."""
MAX_PACKET = 65_536


def _setns(path: Path) -> None:
    """Move the calling thread into the network namespace at `path` (os.setns only exists from 3.12)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def open_tun(name: str) -> int:
    """A TUN device `name` in the calling thread's namespace, as a non-blocking fd of raw IP packets."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Impairment:
    """Delay/jitter/loss/blackout and the FIFO release rule, separated from the fds so it reads plainly."""

    def __init__(self, delay: float, jitter: float, loss: float, seed: int) -> None:
        self.delay, self.jitter, self.loss = delay, jitter, loss
        self.rng = random.Random(seed)
        self.blackout_until = 0.0
        self.last_release = [0.0, 0.0]
        self.counts = {"forwarded": 0, "dropped_loss": 0, "dropped_blackout": 0, "dropped_queue": 0}

    def release_time(self, direction: int, now: float) -> float | None:
        """When a packet read now leaves, or None when it is dropped."""
        if now < self.blackout_until:
            self.counts["dropped_blackout"] += 1
            return None
        if self.loss > 0 and self.rng.random() < self.loss:
            self.counts["dropped_loss"] += 1
            return None
        delay = max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter)) if self.delay else 0.0
        at = max(now + delay, self.last_release[direction])
        self.last_release[direction] = at
        return at


def forward(ctl_ns: Path, phone_ns: Path, delay: float, jitter: float, loss: float, seed: int, max_s: float) -> None:
    """The forwarder's loop (runs in its own process: its timing must not share a GIL with the test)."""
    _setns(ctl_ns)
    fd_a = open_tun(TUN_NAME)
    _setns(phone_ns)
    fd_b = open_tun(TUN_NAME)
    print("ready", flush=True)
    imp = Impairment(delay, jitter, loss, seed)
    fds = (fd_a, fd_b)
    queues: tuple[deque[tuple[float, bytes]], deque[tuple[float, bytes]]] = (deque(), deque())
    stdin = sys.stdin.fileno()
    end = time.monotonic() + max_s
    while True:
        now = time.monotonic()
        if now >= end:
            return
        wait = end - now
        for q in queues:
            if q:
                wait = min(wait, q[0][0] - now)
        readable, _, _ = select.select([fd_a, fd_b, stdin], [], [], max(0.0, wait))
        now = time.monotonic()
        for direction, fd in enumerate(fds):
            if fd not in readable:
                continue
            for _ in range(256):  # bounded per wake-up: the other direction and stdin get their turn
                try:
                    packet = os.read(fd, MAX_PACKET)
                except BlockingIOError:
                    break
                at = imp.release_time(direction, now)
                if at is None:
                    continue
                if len(queues[direction]) >= MAX_QUEUED:
                    imp.counts["dropped_queue"] += 1
                    continue
                queues[direction].append((at, packet))
        if stdin in readable:
            line = sys.stdin.readline()
            if not line:
                return  # the parent closed our stdin or died
            _command(line.split(), imp, now)
        for direction, q in enumerate(queues):
            out = fds[1 - direction]
            while q and q[0][0] <= now:
                _, packet = q.popleft()
                try:
                    os.write(out, packet)
                    imp.counts["forwarded"] += 1
                except OSError:  # the far interface is down or its queue full: the packet is lost
                    imp.counts["dropped_queue"] += 1


def _command(words: list[str], imp: Impairment, now: float) -> None:
    if not words:
        return
    if words[0] == "set" and len(words) == 4:
        imp.delay, imp.jitter, imp.loss = float(words[1]), float(words[2]), float(words[3])
    elif words[0] == "blackout" and len(words) == 2:
        imp.blackout_until = now + float(words[1])
    elif words[0] == "stats":
        print(json.dumps(imp.counts), flush=True)


class ImpairedLink(NamespaceProcesses):
    """Two namespaces, 'ctl' and 'phone', joined only by the impairing forwarder.

    ``ip[device]`` is each side's address; processes run in a side with :meth:`popen`/:meth:`run` (the
    same ``ip netns exec`` helpers as :class:`~tests.netns_support.NetnsLan`). Use as a context manager:
    every process it started is killed by PID and both namespaces deleted on exit.
    """

    DEVICES = ("ctl", "phone")

    def __init__(self, delay: float = 0.0, jitter: float = 0.0, loss: float = 0.0, seed: int = 1,
                 max_seconds: float = 1800.0) -> None:  # fmt: skip
        self.token = secrets.token_hex(4)
        self.octet = secrets.randbelow(254) + 1
        self.ns = {d: f"{PREFIX}{self.token}-{d}" for d in self.DEVICES}
        self.ip = {"ctl": f"10.79.{self.octet}.1", "phone": f"10.79.{self.octet}.2"}
        self.settings = (delay, jitter, loss, seed, max_seconds)
        self.created: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.forwarder: subprocess.Popen[str] | None = None

    def create(self) -> None:
        if os.geteuid() != 0:
            raise NetnsUnavailable(f"network namespaces need root (euid is {os.geteuid()})")
        if shutil.which("ip") is None or not Path("/dev/net/tun").exists():
            raise NetnsUnavailable("iproute2 `ip` or /dev/net/tun is missing")
        for ns in self.ns.values():
            try:
                _ip("netns", "add", ns)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                raise NetnsUnavailable(f"`ip netns add` failed: {e}") from e
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        delay, jitter, loss, seed, max_s = self.settings
        repo = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        self.forwarder = subprocess.Popen(
            [sys.executable, "-m", "tests.impaired_link", str(NETNS_DIR / self.ns["ctl"]),
             str(NETNS_DIR / self.ns["phone"]), "--delay", str(delay), "--jitter", str(jitter),
             "--loss", str(loss), "--seed", str(seed), "--max-seconds", str(max_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=repo,
        )  # fmt: skip
        ready = self.forwarder.stdout.readline() if self.forwarder.stdout else ""
        if ready.strip() != "ready":
            raise RuntimeError(f"the link forwarder did not start (said {ready!r})")
        for side, peer in (("ctl", "phone"), ("phone", "ctl")):
            ns = self.ns[side]
            _ip("-n", ns, "addr", "add", self.ip[side], "peer", f"{self.ip[peer]}/32", "dev", TUN_NAME)
            _ip("-n", ns, "link", "set", TUN_NAME, "up")

    def command(self, line: str) -> None:
        """Send the forwarder one command (see the module docstring)."""
        assert self.forwarder is not None and self.forwarder.stdin is not None
        self.forwarder.stdin.write(line + "\n")
        self.forwarder.stdin.flush()

    def impair(self, delay: float, jitter: float, loss: float) -> None:
        self.command(f"set {delay} {jitter} {loss}")

    def blackout(self, seconds: float) -> None:
        self.command(f"blackout {seconds}")

    def stats(self) -> dict[str, int]:
        self.command("stats")
        assert self.forwarder is not None and self.forwarder.stdout is not None
        return json.loads(self.forwarder.stdout.readline())

    def close(self) -> None:
        self.stop_processes()
        if self.forwarder is not None:
            if self.forwarder.stdin is not None:
                try:
                    self.forwarder.stdin.close()  # EOF: it exits by itself
                except OSError:
                    pass
            try:
                self.forwarder.wait(3)
            except subprocess.TimeoutExpired:
                self.forwarder.kill()
                self.forwarder.wait(3)
            if self.forwarder.stdout is not None:
                self.forwarder.stdout.close()
            self.forwarder = None
        self.delete_namespaces()

    def __enter__(self) -> ImpairedLink:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    p = argparse.ArgumentParser(description="forward IP packets between two TUNs with delay and loss")
    p.add_argument("ctl_ns", type=Path)
    p.add_argument("phone_ns", type=Path)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--jitter", type=float, default=0.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=1800.0)
    a = p.parse_args()
    forward(a.ctl_ns, a.phone_ns, a.delay, a.jitter, a.loss, a.seed, a.max_seconds)


if __name__ == "__main__":
    main()


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def sleep_module(seconds: float) -> bytes:
    """A WASI program that sleeps `seconds` (one `poll_oneoff` clock subscription) and prints "ok".

    Assembled here, byte by byte, so the link's tests need no toolchain: tasks that take a known time
    but almost no CPU, since the cores are shared and the link, not the CPU, is what is measured.
    """

    def section(sid: int, body: bytes) -> bytes:
        return bytes([sid]) + _uleb(len(body)) + body

    def vec(items: list[bytes]) -> bytes:
        return _uleb(len(items)) + b"".join(items)

    def name(s: str) -> bytes:
        return _uleb(len(s)) + s.encode()

    def i32(n: int) -> bytes:
        return b"\x41" + _sleb(n)

    store32, store64 = b"\x36\x02\x00", b"\x37\x03\x00"
    call, drop = b"\x10", b"\x1a"
    code = (
        i32(16) + i32(1) + store32  # subscription at 0: userdata 0, tag 0 (clock), clock id 1 (monotonic)
        + i32(24) + b"\x42" + _sleb(int(seconds * 1e9)) + store64  # relative timeout in ns
        + i32(0) + i32(64) + i32(1) + i32(128) + call + _uleb(0) + drop  # poll_oneoff(subs, events, 1, &n)
        + i32(160) + i32(200) + store32 + i32(164) + i32(3) + store32  # iovec {200, 3}
        + i32(1) + i32(160) + i32(1) + i32(180) + call + _uleb(1) + drop  # fd_write(1, iovec, 1, &n)
        + b"\x0b"
    )  # fmt: skip
    body = _uleb(0) + code  # no locals
    wasi = "wasi_snapshot_preview1"
    return b"".join([
        b"\x00asm\x01\x00\x00\x00",
        section(1, vec([b"\x60" + vec([b"\x7f"] * 4) + vec([b"\x7f"]), b"\x60\x00\x00"])),
        section(2, vec([name(wasi) + name("poll_oneoff") + b"\x00\x00", name(wasi) + name("fd_write") + b"\x00\x00"])),
        section(3, vec([b"\x01"])),
        section(5, vec([b"\x00\x01"])),
        section(7, vec([name("memory") + b"\x02\x00", name("_start") + b"\x00\x02"])),
        section(10, vec([_uleb(len(body)) + body])),
        section(11, vec([b"\x00" + i32(200) + b"\x0b" + vec([b"o", b"k", b"\n"])])),
    ])  # fmt: skip
