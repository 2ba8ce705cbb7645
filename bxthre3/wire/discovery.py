"""Finding the controller on a LAN: UDP broadcast beacons, with an explicit address or a remembered one first.

The controller broadcasts a tiny beacon (:func:`encode_beacon`) every second on :data:`DISCOVERY_PORT`;
a host or client started without ``--controller`` listens for one (:func:`listen_for_controller`) and
connects to the sender's IP at the ZeroMQ port the beacon names. :func:`find_controller` is the policy:
``--controller`` > ``BXTHRE3_CONTROLLER`` > a beacon heard now > the controller remembered from last time.

Broadcast works only on a shared LAN or Wi-Fi: cloud networks and most VPNs carry none, so there the
address must be given. A beacon holds no secret (magic, version, port, cluster id) and decoding it is
a trust boundary like :func:`bxthre3.wire.protocol.decode`: anything malformed raises ``ProtocolError``.

No zmq here, and psutil is imported lazily (and optionally) by :func:`broadcast_addresses`; where it is
missing or fails, :mod:`bxthre3.wire.net_interfaces` asks the kernel with the standard library.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..common import paths
from ..common.errors import Bxthre3Error, ClusterError, ProtocolError, printable
from .addresses import Address, controller_from_env_or, parse_address
from .protocol import PROTOCOL_VERSION

log = logging.getLogger("bxthre3.discovery")  # the name log lines show: kept from before the move to packages

DISCOVERY_PORT = 5001
"""UDP port of the beacons: the controller port's neighbour (ZeroMQ listens on 5000 by default)."""

BEACON_MAGIC = b"BX3B"
"""First four bytes of every beacon; anything else on the port is ignored."""

BEACON_INTERVAL = 1.0
"""Seconds between beacons, each wait jittered by ±:data:`BEACON_JITTER` so controllers do not synchronise."""

BEACON_JITTER = 0.2
"""Relative jitter of the beacon interval (0.2 = ±20 %)."""

DESTINATIONS_REFRESH = 30.0
"""Seconds between re-reading the interfaces' broadcast addresses (Wi-Fi comes and goes on a phone)."""

MAX_CLUSTER_ID_BYTES = 64
"""Longest cluster id, in UTF-8 bytes."""

LIMITED_BROADCAST = "255.255.255.255"

_HEADER = struct.Struct("!4sBHB")  # magic, version, zmq port, cluster id length
MAX_BEACON_BYTES = _HEADER.size + MAX_CLUSTER_ID_BYTES
_RECV_BYTES = 512  # larger than any valid beacon, so an oversized datagram is seen (and rejected) as such
_TICK = 0.1  # seconds between on_tick calls while listening
_ERROR_LOG_EVERY = 60.0  # seconds between two warnings about the same failing destination
_STATE_FILE_MAX = 512  # bytes read from the remembered-controller file

NO_BROADCAST_HINT = (
    "pass --controller IP[:PORT] or set BXTHRE3_CONTROLLER=IP[:PORT]; "
    "discovery needs a shared LAN or Wi-Fi (cloud networks and most VPNs carry no broadcast)"
)


class DiscoveryTimeout(ClusterError):
    """No beacon (of the wanted cluster) was heard in time. Exit code 3, like any unreachable cluster.

    The counts say what *was* heard, so "a controller of another cluster is there" is visible.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        timeout: float,
        port: int,
        malformed: int = 0,
        other_clusters: dict[str, int] | None = None,
    ) -> None:
        self.timeout = timeout
        self.port = port
        self.malformed = malformed
        self.other_clusters = dict(other_clusters or {})
        super().__init__(message)


# --------------------------------------------------------------------------- beacon (pure)


def _cluster_id_problem(cluster_id: object) -> str | None:
    if not isinstance(cluster_id, str):
        return "cluster id must be a string"
    if len(cluster_id.encode("utf-8", "surrogatepass")) > MAX_CLUSTER_ID_BYTES:
        return f"cluster id longer than {MAX_CLUSTER_ID_BYTES} bytes"
    if not cluster_id.isprintable():
        return f"cluster id {printable(cluster_id)!r} has control characters"
    try:
        cluster_id.encode("utf-8")
    except UnicodeEncodeError:
        return "cluster id is not valid UTF-8"
    return None


@dataclass(frozen=True, slots=True)
class Beacon:
    """What a controller announces: which cluster it serves and its ZeroMQ port (its IP is the sender's)."""

    cluster_id: str
    zmq_port: int
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        problem = _cluster_id_problem(self.cluster_id)
        if problem is None and not (isinstance(self.zmq_port, int) and 0 < self.zmq_port < 65536):
            problem = f"beacon port must be 1-65535, not {self.zmq_port!r}"
        if problem is None and not (isinstance(self.version, int) and 0 <= self.version < 256):
            problem = f"beacon version must be 0-255, not {self.version!r}"
        if problem:
            raise Bxthre3Error(problem)


def encode_beacon(beacon: Beacon) -> bytes:
    """magic(4) version(1) port(u16, big-endian) id_len(1) id(UTF-8, ≤ 64 bytes): at most 72 bytes."""
    cid = beacon.cluster_id.encode("utf-8")
    return _HEADER.pack(BEACON_MAGIC, beacon.version, beacon.zmq_port, len(cid)) + cid


def decode_beacon(data: bytes) -> Beacon:
    """The beacon in ``data``, or ``ProtocolError`` for anything that is not exactly a valid one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("beacon must be bytes")
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ProtocolError(f"beacon truncated: {len(data)} bytes, need at least {_HEADER.size}")
    magic, version, port, id_len = _HEADER.unpack_from(data)
    if magic != BEACON_MAGIC:
        raise ProtocolError("not a Bxthre3 beacon (bad magic)")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"beacon protocol version {version}, this build speaks {PROTOCOL_VERSION}")
    if port == 0:
        raise ProtocolError("beacon names port 0")
    if id_len > MAX_CLUSTER_ID_BYTES:
        raise ProtocolError(f"beacon cluster id of {id_len} bytes (at most {MAX_CLUSTER_ID_BYTES})")
    expected = _HEADER.size + id_len
    if len(data) < expected:
        raise ProtocolError(f"beacon truncated: {len(data)} bytes, its header says {expected}")
    if len(data) > expected:
        raise ProtocolError(f"beacon has {len(data) - expected} trailing bytes")
    try:
        cluster_id = data[_HEADER.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("beacon cluster id is not UTF-8") from None
    problem = _cluster_id_problem(cluster_id)
    if problem:
        raise ProtocolError(f"beacon {problem}")
    return Beacon(cluster_id, port, version)


# --------------------------------------------------------------------------- broadcast addresses


def _broadcast_of(address: str, netmask: str | None, broadcast: str | None) -> str | None:
    """The interface's broadcast address: as reported, else computed; None for point-to-point links."""
    if broadcast:
        try:
            return str(ipaddress.IPv4Address(broadcast))
        except ValueError:
            pass
    if not address or not netmask:
        return None
    try:
        net = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
    except ValueError:
        return None
    if net.prefixlen >= 31:  # /31 and /32 (VPN tunnels, some phone data links) have no broadcast
        return None
    return str(net.broadcast_address)


def _from_psutil() -> list[str]:
    import psutil  # lazy: optional, and a phone host should not pay for it unless it discovers

    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET:
                b = _broadcast_of(a.address, a.netmask, a.broadcast)
                if b:
                    found.append(b)
    return found


def _from_ioctls() -> list[str]:
    from .net_interfaces import ipv4_interfaces

    found = []
    for a in ipv4_interfaces():
        b = _broadcast_of(a.address, a.netmask, a.broadcast)
        if b:
            found.append(b)
    return found


def broadcast_addresses() -> list[str]:
    """Each IPv4 interface's broadcast address, then 255.255.255.255; duplicates removed, order kept.

    psutil first, the kernel's interface ioctls if psutil is missing or fails (Android forbids netlink
    to apps, so psutil can raise there), else only the limited broadcast. Never shells out to ip/ifconfig.
    """
    found: list[str] = []
    for source in (_from_psutil, _from_ioctls):
        try:
            found = source()
            break
        except Exception as e:  # ImportError, PermissionError, psutil.Error, ...: try the next source
            log.debug("broadcast addresses via %s failed: %r", source.__name__.strip("_"), e)
    return list(dict.fromkeys([*found, LIMITED_BROADCAST]))


# --------------------------------------------------------------------------- sender (controller side)


class BeaconSender:
    """Broadcasts a beacon to every destination every ``interval`` (±20 %) from a daemon thread.

    ``destinations`` is called at start and every :data:`DESTINATIONS_REFRESH` seconds; tests pass
    ``lambda: ["127.255.255.255"]``. A destination that fails (no route while Wi-Fi is down, ...) is
    skipped and logged at most once a minute. ``source_host`` binds the sending socket (default: any).
    """

    def __init__(
        self,
        beacon: Beacon,
        *,
        destinations: Callable[[], list[str]] = broadcast_addresses,
        port: int = DISCOVERY_PORT,
        interval: float = BEACON_INTERVAL,
        rng: Callable[[], float] = random.random,
        source_host: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("beacon interval must be positive")
        self.beacon = beacon
        self.port = port
        self.interval = interval
        self.sent = 0
        self.errors = 0
        self._payload = encode_beacon(beacon)
        self._destinations_fn = destinations
        self._rng = rng
        self._source_host = source_host
        self._clock = clock
        self._destinations: list[str] = []
        self._destinations_at = float("-inf")
        self._last_error_log: dict[str, float] = {}
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if self._source_host:
                sock.bind((self._source_host, 0))
        except OSError:
            sock.close()
            raise
        return sock

    def next_wait(self) -> float:
        """The jittered wait before the next round: interval × [0.8, 1.2)."""
        return self.interval * (1.0 - BEACON_JITTER + 2 * BEACON_JITTER * self._rng())

    def _refresh_destinations(self, now: float) -> None:
        if now - self._destinations_at < DESTINATIONS_REFRESH and self._destinations:
            return
        try:
            self._destinations = list(dict.fromkeys(self._destinations_fn()))
        except Exception:  # an injected source failing must not kill the beacon
            log.warning("cannot list broadcast destinations; keeping %s", self._destinations, exc_info=True)
        self._destinations_at = now

    def send_once(self) -> int:
        """Send one beacon to every destination now; returns how many sends succeeded."""
        if self._sock is None:
            self._sock = self._open()
        now = self._clock()
        self._refresh_destinations(now)
        ok = 0
        for dest in self._destinations:
            try:
                self._sock.sendto(self._payload, (dest, self.port))
                ok += 1
            except OSError as e:
                self.errors += 1
                if now - self._last_error_log.get(dest, float("-inf")) >= _ERROR_LOG_EVERY:
                    self._last_error_log[dest] = now
                    log.warning(
                        "beacon to %s:%d failed: %s (next warning for it in %.0f s at the earliest)",
                        dest,
                        self.port,
                        e,
                        _ERROR_LOG_EVERY,
                    )
        self.sent += ok
        return ok

    def _run(self) -> None:
        while not self._stop.is_set():  # bounded: each round waits ≥ 0.8 × interval, stop() ends it
            try:
                self.send_once()
            except Exception:
                log.exception("beacon round failed")
            self._stop.wait(self.next_wait())

    def start(self) -> None:
        """Open the socket (errors raise here, in the caller) and start beaconing, the first one at once."""
        if self._thread is not None:
            raise RuntimeError("BeaconSender already started")
        self._sock = self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bxthre3-beacon", daemon=True)
        self._thread.start()
        log.info(
            "broadcasting beacon for cluster %r (zmq port %d) on UDP %d",
            printable(self.beacon.cluster_id),
            self.beacon.zmq_port,
            self.port,
        )

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread (joined within ``timeout``) and close the socket. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("beacon thread did not stop within %.1f s", timeout)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> BeaconSender:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- listener (host/client side)


def _open_listener(bind_host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):  # several hosts on one phone each listen on the same port
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            except OSError:  # defined but refused by the kernel (old Android kernels)
                log.debug("SO_REUSEPORT refused; relying on SO_REUSEADDR")
        sock.bind((bind_host, port))
    except OSError as e:
        sock.close()
        raise ClusterError(
            f"cannot listen for controller beacons on UDP {bind_host or '*'}:{port}: {e}; "
            f"{NO_BROADCAST_HINT.split(';')[0]}"
        ) from e
    return sock


def listen_for_controller(
    *,
    cluster_id: str | None = None,
    timeout: float = 10.0,
    port: int = DISCOVERY_PORT,
    bind_host: str = "",
    on_tick: Callable[[float], None] | None = None,
) -> tuple[str, Beacon]:
    """(sender IP, beacon) of the first valid beacon heard (of ``cluster_id`` if given), within ``timeout``.

    Malformed datagrams and other clusters' beacons are counted and ignored. ``on_tick(elapsed)`` is
    called about every 0.1 s. Raises :class:`DiscoveryTimeout` (exit code 3) when nothing suitable came.
    """
    clock = time.monotonic
    start = clock()
    deadline = start + max(0.0, timeout)
    malformed = 0
    others: dict[str, int] = {}
    next_tick = start + _TICK
    with _open_listener(bind_host, port) as sock:
        while True:  # bounded by the deadline: checked every iteration, each recv waits ≤ 0.1 s
            now = clock()
            if on_tick is not None and now >= next_tick:
                on_tick(now - start)
                next_tick = now + _TICK
            if now >= deadline:
                break
            sock.settimeout(max(0.001, min(deadline, next_tick) - now))
            try:
                data, (ip, _sport) = sock.recvfrom(_RECV_BYTES)
            except (TimeoutError, BlockingIOError, InterruptedError):
                continue
            except OSError as e:  # e.g. ICMP errors surfacing on some platforms: keep listening
                log.debug("beacon receive failed: %s", e)
                continue
            try:
                beacon = decode_beacon(data)
            except ProtocolError as e:
                malformed += 1
                log.debug("ignored malformed datagram from %s (%d bytes): %s", ip, len(data), e)
                continue
            if cluster_id is not None and beacon.cluster_id != cluster_id:
                others[beacon.cluster_id] = others.get(beacon.cluster_id, 0) + 1
                log.debug("ignored beacon of cluster %r from %s", printable(beacon.cluster_id), ip)
                continue
            log.info(
                "controller of cluster %r found at %s:%d after %.2f s",
                printable(beacon.cluster_id),
                ip,
                beacon.zmq_port,
                clock() - start,
            )
            return ip, beacon
    raise DiscoveryTimeout(
        _timeout_message(cluster_id, timeout, port, malformed, others),
        timeout=timeout,
        port=port,
        malformed=malformed,
        other_clusters=others,
    )


def _timeout_message(cluster_id: str | None, timeout: float, port: int, malformed: int, others: dict[str, int]) -> str:
    which = f"of cluster {printable(cluster_id)!r} " if cluster_id is not None else ""
    heard = []
    if others:
        names = ", ".join(repr(printable(c)) for c in sorted(others)[:5])
        heard.append(f"heard controllers of other clusters: {names}")
    if malformed:
        heard.append(f"ignored {malformed} malformed datagram(s)")
    extra = f" ({'; '.join(heard)})" if heard else ""
    return (
        f"no controller {which}found by broadcast on UDP port {port} within {timeout:g} s{extra}: {NO_BROADCAST_HINT}"
    )


# --------------------------------------------------------------------------- remembered controller


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/bxthre3/last_controller`` (default ``~/.local/state/bxthre3/last_controller``)."""
    return paths.state_home() / "last_controller"


def remember_controller(address: str, path: Path | None = None) -> bool:
    """Store ``address`` (``IP:PORT``) for next time, atomically. A failure is logged, never raised."""
    path = path or default_state_path()
    text = str(parse_address(str(address)))  # normalise; a bad address is the caller's bug
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return True
    except OSError as e:
        log.warning("cannot remember controller in %s: %s", path, e)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return False


def last_controller(path: Path | None = None) -> str | None:
    """The remembered ``IP:PORT``, or None when the file is missing, unreadable or not an address."""
    path = path or default_state_path()
    try:
        with open(path, "rb") as f:
            raw = f.read(_STATE_FILE_MAX + 1)
    except OSError:
        return None
    try:
        if len(raw) > _STATE_FILE_MAX:
            raise ValueError("file too large")
        return str(parse_address(raw.decode("utf-8")))
    except (ValueError, Bxthre3Error) as e:
        log.debug("ignoring corrupt remembered controller %s: %s", path, e)
        return None


# --------------------------------------------------------------------------- policy


def find_controller(
    explicit: str | None,
    *,
    timeout: float,
    cluster_id: str | None = None,
    port: int = DISCOVERY_PORT,
    bind_host: str = "",
    remember_path: Path | None = None,
    on_tick: Callable[[float], None] | None = None,
    remember: bool = True,
) -> Address:
    """``--controller`` > ``BXTHRE3_CONTROLLER`` > a beacon heard within ``timeout`` > the remembered one.

    A discovered controller is remembered (with ``remember=False`` the caller does it once a host
    has registered there, so a forged beacon cannot become the address used next time). A bad
    explicit/env address raises ``Bxthre3Error`` (exit 2); nothing found and nothing remembered
    raises :class:`DiscoveryTimeout` (exit 3).
    """
    given = controller_from_env_or(explicit)
    if given is not None:
        return given
    try:
        ip, beacon = listen_for_controller(
            cluster_id=cluster_id, timeout=timeout, port=port, bind_host=bind_host, on_tick=on_tick
        )
    except DiscoveryTimeout:
        last = last_controller(remember_path)
        if last is None:
            raise
        log.warning("no controller beacon heard within %g s; trying the last controller used, %s", timeout, last)
        return parse_address(last)
    found = Address(ip, beacon.zmq_port)
    if remember:
        remember_controller(str(found), remember_path)
    return found
