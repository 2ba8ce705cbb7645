"""Beacon encoding (pure), broadcast-address sources (monkeypatched), the remembered-controller file."""

from __future__ import annotations

import random
import socket
import struct
import sys
import types
from collections import namedtuple

import pytest

from bxthre3.common.errors import Bxthre3Error, ProtocolError
from bxthre3.wire import discovery
from bxthre3.wire.discovery import (
    BEACON_MAGIC,
    MAX_BEACON_BYTES,
    Beacon,
    BeaconSender,
    broadcast_addresses,
    decode_beacon,
    encode_beacon,
    last_controller,
    remember_controller,
)
from bxthre3.wire.protocol import PROTOCOL_VERSION

# --------------------------------------------------------------------------- beacon


@pytest.mark.parametrize("cluster_id", ["", "lab", "é" * 32, "x" * 64, "phones-🙂"])
def test_round_trip(cluster_id: str) -> None:
    b = Beacon(cluster_id, 5000)
    data = encode_beacon(b)
    assert data.startswith(BEACON_MAGIC)
    assert len(data) <= MAX_BEACON_BYTES
    assert decode_beacon(data) == b
    assert decode_beacon(bytearray(data)) == b


def test_wire_layout_is_the_documented_one() -> None:
    assert encode_beacon(Beacon("ab", 5000)) == b"BX3B" + bytes([PROTOCOL_VERSION]) + b"\x13\x88\x02ab"


def _raw(magic=BEACON_MAGIC, version=PROTOCOL_VERSION, port=5000, cid=b"lab", id_len=None, tail=b"") -> bytes:
    return struct.pack("!4sBHB", magic, version, port, len(cid) if id_len is None else id_len) + cid + tail


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "truncated"),
        (b"BX3", "truncated"),
        (_raw()[:7], "truncated"),
        (_raw(magic=b"BX3C"), "magic"),
        (_raw(magic=b"\x00\x00\x00\x00"), "magic"),
        (_raw(version=0), "version"),
        (_raw(version=PROTOCOL_VERSION + 1), "version"),
        (_raw(version=255), "version"),
        (_raw(port=0), "port 0"),
        (_raw(id_len=4), "truncated"),
        (_raw(cid=b"x" * 65), "65 bytes"),
        (_raw(id_len=255, cid=b"x" * 255), "255 bytes"),
        (_raw(tail=b"\x00"), "trailing"),
        (_raw() + encode_beacon(Beacon("lab", 5000)), "trailing"),
        (_raw(cid=b"\xff\xfe"), "UTF-8"),
        (_raw(cid=b"\xed\xa0\x80"), "UTF-8"),  # an encoded surrogate
        (_raw(cid=b"a\nb"), "control"),
        (_raw(cid=b"\x1b[2J"), "control"),
    ],
)
def test_malformed_beacons_raise_protocol_error(data: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        decode_beacon(data)


def test_not_bytes_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        decode_beacon("BX3B")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cluster_id": "x" * 65, "zmq_port": 1},
        {"cluster_id": "a", "zmq_port": 0},
        {"cluster_id": "a", "zmq_port": 65536},
        {"cluster_id": "a\x00", "zmq_port": 1},
        {"cluster_id": "\ud800", "zmq_port": 1},
        {"cluster_id": "a", "zmq_port": 1, "version": 256},
    ],
)
def test_unencodable_beacons_are_refused_at_construction(kwargs: dict) -> None:
    with pytest.raises(Bxthre3Error):
        Beacon(**kwargs)


def test_fuzz_random_bytes_and_mutations() -> None:
    """Bounded: 20,000 inputs. Each either raises ProtocolError or is a beacon that re-encodes identically."""
    rng = random.Random(20240607)
    valid = encode_beacon(Beacon("fuzz-cluster", 5000))
    accepted = 0
    for i in range(20_000):
        if i % 2:
            data = rng.randbytes(rng.randrange(0, 2 * MAX_BEACON_BYTES))
            if rng.random() < 0.5:  # give random tails a valid header now and then
                data = valid[: rng.randrange(0, 9)] + data
        else:
            buf = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                op = rng.randrange(3)
                if op == 0 and buf:
                    buf[rng.randrange(len(buf))] = rng.randrange(256)
                elif op == 1:
                    del buf[rng.randrange(len(buf) + 1) :]
                else:
                    buf.insert(rng.randrange(len(buf) + 1), rng.randrange(256))
            data = bytes(buf)
        try:
            b = decode_beacon(data)
        except ProtocolError:
            continue
        accepted += 1
        assert encode_beacon(b) == data
    assert accepted > 0  # the mutations do produce some valid beacons (e.g. a changed port byte)


def test_jitter_stays_within_twenty_percent() -> None:
    for r, expected in [(0.0, 0.8), (0.5, 1.0), (0.999999, 1.2)]:
        s = BeaconSender(Beacon("a", 5000), destinations=list, rng=lambda r=r: r, interval=1.0)
        assert s.next_wait() == pytest.approx(expected, abs=1e-5)


# --------------------------------------------------------------------------- broadcast addresses

Snic = namedtuple("Snic", "family address netmask broadcast ptp")


def _fake_psutil(ifaces: dict | None = None, error: Exception | None = None) -> types.ModuleType:
    mod = types.ModuleType("psutil")

    def net_if_addrs() -> dict:
        if error is not None:
            raise error
        return ifaces or {}

    mod.net_if_addrs = net_if_addrs  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def no_shelling_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("broadcast_addresses must not run a program")

    import subprocess

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(discovery.os, "system", refuse)


def test_psutil_source(monkeypatch: pytest.MonkeyPatch, no_shelling_out: None) -> None:
    ifaces = {
        "lo": [Snic(socket.AF_INET, "127.0.0.1", "255.0.0.0", None, None)],
        "wlan0": [
            Snic(socket.AF_INET, "192.168.1.23", "255.255.255.0", "192.168.1.255", None),
            Snic(socket.AF_INET6, "fe80::1", "ffff:ffff:ffff:ffff::", None, None),
        ],
        "eth1": [Snic(socket.AF_INET, "10.1.2.3", "255.255.0.0", None, None)],  # broadcast computed
        "tun0": [Snic(socket.AF_INET, "10.8.0.2", "255.255.255.255", None, "10.8.0.1")],  # p2p: none
        "rmnet0": [Snic(socket.AF_INET, "100.64.0.7", None, None, None)],  # no netmask: none
    }
    monkeypatch.setitem(sys.modules, "psutil", _fake_psutil(ifaces))
    assert broadcast_addresses() == ["127.255.255.255", "192.168.1.255", "10.1.255.255", "255.255.255.255"]


def _real_psutil_broadcasts() -> list[str]:
    pytest.importorskip("psutil")
    return discovery._from_psutil()


@pytest.mark.parametrize("error", [PermissionError(13, "netlink denied"), OSError("boom"), RuntimeError("x")])
def test_kernel_ioctl_fallback_when_psutil_raises(
    monkeypatch: pytest.MonkeyPatch, error: Exception, no_shelling_out: None
) -> None:
    """The stdlib source runs for real against this machine's interfaces and agrees with psutil."""
    expected = _real_psutil_broadcasts()
    assert "127.255.255.255" in expected  # loopback's /8, computed from its netmask (lo has no broadcast flag)
    monkeypatch.setitem(sys.modules, "psutil", _fake_psutil(error=error))
    assert broadcast_addresses() == list(dict.fromkeys([*expected, "255.255.255.255"]))


def test_missing_psutil_uses_kernel_ioctls(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _real_psutil_broadcasts()
    monkeypatch.setitem(sys.modules, "psutil", None)  # import raises ImportError
    assert broadcast_addresses() == list(dict.fromkeys([*expected, "255.255.255.255"]))


def test_kernel_ioctls_list_what_psutil_lists() -> None:
    """Names, addresses, netmasks and broadcasts from SIOCGIFCONF & co. equal psutil's (netlink) view."""
    psutil = pytest.importorskip("psutil")
    from bxthre3.wire.net_interfaces import ipv4_interfaces

    theirs = sorted(
        (name, a.address, a.netmask, a.broadcast)
        for name, addrs in psutil.net_if_addrs().items()
        for a in addrs
        if a.family == socket.AF_INET
    )
    ours = sorted((i.name, i.address, i.netmask, i.broadcast) for i in ipv4_interfaces())
    assert ours == theirs and ("lo", "127.0.0.1", "255.0.0.0", None) in ours


def test_limited_broadcast_only_when_both_sources_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    from bxthre3.wire import net_interfaces

    def denied() -> list:
        raise PermissionError(1, "ioctl denied")

    monkeypatch.setitem(sys.modules, "psutil", _fake_psutil(error=PermissionError("netlink")))
    monkeypatch.setattr(net_interfaces, "ipv4_interfaces", denied)
    assert broadcast_addresses() == ["255.255.255.255"]


def test_real_machine_list_ends_with_limited_broadcast() -> None:
    got = broadcast_addresses()  # reads interfaces only; sends nothing
    assert got[-1] == "255.255.255.255" and len(got) == len(set(got))


class _FakeSocket:
    """Stands in for the UDP socket: no packet leaves the process; one destination has no route."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.closed = False

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if addr[0] == "10.255.255.255":
            raise OSError(101, "Network is unreachable")
        self.sent.append((data, addr))
        return len(data)

    def close(self) -> None:
        self.closed = True


def test_failing_destination_is_skipped_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _FakeSocket()
    calls = []

    def destinations() -> list[str]:
        calls.append(1)
        return ["10.255.255.255", "127.255.255.255", "127.255.255.255"]

    now = [0.0]
    sender = BeaconSender(Beacon("a", 5000), destinations=destinations, port=6001, clock=lambda: now[0])
    monkeypatch.setattr(sender, "_open", lambda: fake)
    with caplog.at_level("WARNING", logger="bxthre3.discovery"):
        assert sender.send_once() == 1
        now[0] = 10.0
        assert sender.send_once() == 1
        now[0] = 61.0  # past the refresh period and the warning rate limit
        assert sender.send_once() == 1
    assert fake.sent == [(encode_beacon(Beacon("a", 5000)), ("127.255.255.255", 6001))] * 3  # deduplicated
    assert sender.errors == 3 and sender.sent == 3
    assert len(calls) == 2  # destinations re-read after 30 s, not every round
    assert sum("10.255.255.255" in r.getMessage() for r in caplog.records) == 2
    sender.stop()
    assert fake.closed


# --------------------------------------------------------------------------- remembered controller


def test_remember_round_trip(tmp_path) -> None:
    path = tmp_path / "state" / "bxthre3" / "last_controller"
    assert last_controller(path) is None
    assert remember_controller("192.168.1.10:5000", path)
    assert last_controller(path) == "192.168.1.10:5000"
    assert remember_controller("tcp://10.0.0.2:6000", path)
    assert last_controller(path) == "10.0.0.2:6000"
    assert [p.name for p in path.parent.iterdir()] == ["last_controller"]  # no temp file left


@pytest.mark.parametrize(
    "content", [b"", b"\n", b"\xff\xfe\x00", b"garbage:port", b"1.2.3.4:99999", b"1.2.3.4:5000" + b" " * 1000]
)
def test_corrupt_file_reads_as_none(tmp_path, content: bytes) -> None:
    path = tmp_path / "last_controller"
    path.write_bytes(content)
    assert last_controller(path) is None


def test_directory_instead_of_file_is_tolerated(tmp_path) -> None:
    path = tmp_path / "last_controller"
    path.mkdir()
    assert last_controller(path) is None
    assert remember_controller("1.2.3.4:5000", path) is False


def test_default_path_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert discovery.default_state_path() == tmp_path / "bxthre3" / "last_controller"
    assert remember_controller("1.2.3.4:5000")
    assert last_controller() == "1.2.3.4:5000"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert discovery.default_state_path() == tmp_path / "home" / ".local" / "state" / "bxthre3" / "last_controller"
