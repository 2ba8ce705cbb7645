"""Private network namespaces for multi-device tests: a fake LAN that never touches the real one.

:class:`NetnsLan` creates, with ``ip`` (iproute2), one namespace per "device" plus a bridge namespace
holding a Linux bridge; each device gets a veth pair whose far end is enslaved to the bridge, an
address in ``10.77.<n>.0/24`` with a broadcast address, and ``lo`` up. Every interface is created
*inside* a namespace of ours (``ip -n NS link add ... peer ... netns BR``), so the root namespace's
interfaces and routes are never touched and nothing reaches the machine's real network.

Names are ``bx3-<8 hex>-<role>``: unique per run, so parallel runs do not collide. Namespaces of this
pattern older than :data:`STALE_AFTER` seconds are leftovers of crashed runs and are removed (their
processes killed by PID) by :func:`remove_stale`.

Processes are started with ``ip netns exec NS ...`` (which execs, so the Popen PID is the command's)
and killed at :meth:`NetnsLan.close` with their whole tree, then anything still inside our
namespaces (``ip netns pids``), before the namespaces are deleted.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

PREFIX = "bx3-"
NAME_RE = re.compile(r"^bx3-[0-9a-f]{8}-[a-z0-9]{1,8}$")
"""Only namespaces matching this are ever deleted as leftovers."""


def name_re(prefix: str) -> re.Pattern[str]:
    """The leftover pattern of namespaces made with another ``prefix`` (a test of its own, e.g. ``b3id-``)."""
    return re.compile(rf"^{re.escape(prefix)}[0-9a-f]{{8}}-[a-z0-9]{{1,8}}$")


STALE_AFTER = 600.0
"""A bx3 namespace older than this (seconds) is a leftover: no run of the test lasts that long."""

NETNS_DIR = Path("/run/netns")
IP_TIMEOUT = 10.0


class NetnsUnavailable(Exception):
    """Namespaces cannot be created here (not root, no iproute2, no CAP_SYS_ADMIN in a container)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip") or "ip"
    result = subprocess.run([ip, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=IP_TIMEOUT)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def list_namespaces() -> list[str]:
    result = _ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    result = _ip("netns", "pids", name, check=False)
    return [int(tok) for tok in result.stdout.split() if tok.isdigit()]


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Signal a process and every descendant, parents first stopped so none spawns a new child meanwhile."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    for p in procs:  # freeze first: a node manager must not restart a host between our two looks
        try:
            p.send_signal(signal.SIGSTOP)
        except psutil.Error:
            pass
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        pass
    killed = []
    for p in procs:
        try:
            p.send_signal(sig)
            if sig != signal.SIGKILL:
                p.send_signal(signal.SIGCONT)
            killed.append(p.pid)
        except psutil.Error:
            pass
    return killed


def _kill_namespace_processes(name: str) -> None:
    for _ in range(20):
        pids = netns_pids(name)
        if not pids:
            return
        for pid in pids:
            kill_tree(pid)
        time.sleep(0.05)


def delete_namespace(name: str) -> None:
    _kill_namespace_processes(name)
    _ip("netns", "del", name, check=False)


def remove_stale(now: float | None = None, prefix: str = PREFIX) -> list[str]:
    """Delete <prefix><hex>-<role> namespaces older than STALE_AFTER that earlier (crashed) runs left."""
    now = time.time() if now is None else now
    pattern = NAME_RE if prefix == PREFIX else name_re(prefix)
    removed = []
    for name in list_namespaces():
        if not pattern.match(name):
            continue
        try:
            age = now - (NETNS_DIR / name).stat().st_mtime
        except OSError:
            continue
        if age > STALE_AFTER:
            delete_namespace(name)
            removed.append(name)
    return removed


class NamespaceProcesses:
    """The processes a test starts inside namespaces of its own, and the namespaces themselves.

    Shared by :class:`NetnsLan` and :class:`~tests.impaired_link.ImpairedLink`: each fills ``ns`` (device
    -> namespace name) and appends every namespace it made to ``created``; ``close`` kills what was started
    (by PID, with descendants) before deleting the namespaces, newest first.
    """

    ns: dict[str, str]
    created: list[str]
    procs: list[subprocess.Popen[bytes]]

    def exec_argv(self, device: str, argv: Sequence[str]) -> list[str]:
        return [shutil.which("ip") or "ip", "netns", "exec", self.ns[device], *argv]

    def popen(self, device: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.exec_argv(device, argv), **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def run(self, device: str, argv: Sequence[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess:
        return subprocess.run(  # type: ignore[call-overload]
            self.exec_argv(device, argv), timeout=timeout, stdin=subprocess.DEVNULL, capture_output=True, **kwargs
        )

    def stop_processes(self) -> None:
        """Kill every process started here (with its descendants), reap it and close its pipes."""
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc.pid)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()

    def delete_namespaces(self) -> None:
        for ns in reversed(self.created):
            delete_namespace(ns)
        self.created.clear()


def serve_or_skip(net: Any) -> Iterator[Any]:
    """For a fixture: create ``net``'s namespaces, yield it, tear it down; skip the test where namespaces
    cannot be made (not root, no `ip`, no TUN). Anything else that fails while creating is an error."""
    try:
        net.create()
    except NetnsUnavailable as e:
        net.close()
        pytest.skip(f"network namespaces unavailable: {e}")
    except BaseException:
        net.close()
        raise
    try:
        yield net
    finally:
        net.close()


class NetnsLan(NamespaceProcesses):
    """Device namespaces on one bridged /24, each with its veth `eth0` and address 10.77.<n>.<k>."""

    def __init__(self, devices: Sequence[str], prefix: str = PREFIX) -> None:
        self.token = secrets.token_hex(4)
        self.subnet_octet = secrets.randbelow(254) + 1
        self.bridge_ns = f"{prefix}{self.token}-br"
        self.ns = {d: f"{prefix}{self.token}-{d}" for d in devices}
        self.ip = {d: f"10.77.{self.subnet_octet}.{i + 1}" for i, d in enumerate(devices)}
        self.created: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    # ------------------------------------------------------------------ topology

    def create(self) -> None:
        if os.geteuid() != 0:
            raise NetnsUnavailable(f"network namespaces need root (euid is {os.geteuid()})")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("iproute2 `ip` is not installed")
        try:
            _ip("netns", "add", self.bridge_ns)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            raise NetnsUnavailable(f"`ip netns add` failed: {e}") from e
        self.created.append(self.bridge_ns)
        br = self.bridge_ns
        _ip("-n", br, "link", "set", "lo", "up")
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "link", "set", "br0", "up")
        for device, ns in self.ns.items():
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            peer = f"v-{device}"[:15]
            # created inside the device namespace, its peer moved straight into the bridge namespace
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", br)
            _ip("-n", ns, "addr", "add", f"{self.ip[device]}/24", "brd", "+", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", br, "link", "set", peer, "master", "br0")
            _ip("-n", br, "link", "set", peer, "up")

    # ------------------------------------------------------------------ processes

    def kill_device(self, device: str) -> list[int]:
        """SIGKILL every process we started in the device's namespace, with all descendants."""
        killed = []
        for proc in self.procs:
            if proc.poll() is None and proc.args[3] == self.ns[device]:  # type: ignore[index]
                killed += kill_tree(proc.pid)
        for pid in netns_pids(self.ns[device]):  # anything that escaped the tree (re-parented)
            killed += kill_tree(pid)
        return killed

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        self.stop_processes()
        self.delete_namespaces()

    def __enter__(self) -> NetnsLan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
