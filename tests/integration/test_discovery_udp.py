"""Real UDP beacons over loopback broadcast.

Network rule: everything stays on loopback. Senders bind 127.0.0.1 and broadcast only to
127.255.255.255; listeners bind 127.255.255.255 (Linux delivers a loopback broadcast to every
socket bound there with SO_REUSEADDR/SO_REUSEPORT, which is exactly the port-sharing case).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bxthre3.wire.addresses import CONTROLLER_ENV, Address
from bxthre3.wire.discovery import (
    Beacon,
    BeaconSender,
    DiscoveryTimeout,
    encode_beacon,
    find_controller,
    last_controller,
    listen_for_controller,
    remember_controller,
)

LOOP_BCAST = "127.255.255.255"


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


@pytest.fixture
def port() -> int:
    return free_udp_port()


@pytest.fixture(autouse=True)
def no_env_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTROLLER_ENV, raising=False)


def make_sender(cluster: str, port: int, zmq_port: int = 5000, interval: float = 1.0) -> BeaconSender:
    return BeaconSender(
        Beacon(cluster, zmq_port),
        destinations=lambda: [LOOP_BCAST],
        port=port,
        interval=interval,
        source_host="127.0.0.1",
    )


@pytest.fixture
def senders() -> Iterator[list[BeaconSender]]:
    made: list[BeaconSender] = []
    yield made
    for s in made:
        s.stop()


def run_listeners(n: int, **kwargs: object) -> tuple[list[threading.Thread], list[object], list[float]]:
    """n listener threads; each stores its result (or exception) and the time it returned."""
    results: list[object] = [None] * n
    done_at: list[float] = [0.0] * n

    def listen(i: int) -> None:
        try:
            results[i] = listen_for_controller(**kwargs)  # type: ignore[arg-type]
        except Exception as e:  # reported by the test
            results[i] = e
        done_at[i] = time.monotonic()

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results, done_at


def test_two_listeners_share_the_port_and_both_hear_the_beacon(port: int, senders: list[BeaconSender]) -> None:
    threads, results, done_at = run_listeners(2, cluster_id="lab", timeout=5.0, port=port, bind_host=LOOP_BCAST)
    time.sleep(0.2)  # both bound before the first beacon
    sender = make_sender("lab", port, zmq_port=5123)
    senders.append(sender)
    t0 = time.monotonic()
    sender.start()
    for t in threads:
        t.join(6)
    for r in results:
        assert r == ("127.0.0.1", Beacon("lab", 5123)), r
    waits = [d - t0 for d in done_at]
    print(f"\ntime to discover, listeners already waiting: {', '.join(f'{w * 1000:.1f} ms' for w in waits)}")
    assert max(waits) < 1.0  # the first beacon goes out at start()

    # A listener that starts while the controller is already beaconing waits for the next beacon: ≤ 1.2 s.
    t1 = time.monotonic()
    ip, beacon = listen_for_controller(cluster_id="lab", timeout=3.0, port=port, bind_host=LOOP_BCAST)
    late = time.monotonic() - t1
    print(f"time to discover, listener started mid-stream: {late * 1000:.1f} ms (interval 1 s ± 20 %)")
    assert (ip, beacon.zmq_port) == ("127.0.0.1", 5123)
    assert late < 2.0  # next beacon ≤ 1.2 s after the last; slack for a loaded CI machine
    # The sender counts a beacon after sendto() returns, so the listener may hear it first: wait (bounded).
    deadline = time.monotonic() + 1.0
    while sender.sent < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sender.sent >= 2 and sender.errors == 0


def test_other_cluster_and_garbage_are_ignored_until_timeout(port: int, senders: list[BeaconSender]) -> None:
    other = make_sender("other", port, interval=0.1)
    senders.append(other)
    other.start()
    stop = threading.Event()

    def spray_garbage() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind(("127.0.0.1", 0))
        junk = [b"", b"hello", b"BX3B", encode_beacon(Beacon("x", 1)) + b"!", b"\xff" * 600, b"BX3B\x01\x00\x00\x00"]
        try:
            for i in range(200):  # bounded: ≤ 200 datagrams, ≤ ~2 s
                if stop.wait(0.01):
                    break
                s.sendto(junk[i % len(junk)], (LOOP_BCAST, port))
        finally:
            s.close()

    sprayer = threading.Thread(target=spray_garbage, daemon=True)
    sprayer.start()
    ticks: list[float] = []
    t0 = time.monotonic()
    try:
        with pytest.raises(DiscoveryTimeout) as info:
            listen_for_controller(
                cluster_id="wanted", timeout=1.0, port=port, bind_host=LOOP_BCAST, on_tick=ticks.append
            )
    finally:
        stop.set()
        sprayer.join(3)
    took = time.monotonic() - t0
    err = info.value
    assert 1.0 <= took < 2.0
    assert err.exit_code == 3
    assert err.malformed > 10
    assert err.other_clusters.get("other", 0) >= 3
    msg = str(err)
    assert "--controller" in msg and "BXTHRE3_CONTROLLER" in msg and "broadcast" in msg
    assert "'other'" in msg and "'wanted'" in msg
    assert 5 <= len(ticks) <= 12, ticks  # about every 0.1 s despite the flood
    assert ticks == sorted(ticks) and ticks[-1] <= 1.1
    print(f"\nignored {err.malformed} malformed, {err.other_clusters} other-cluster beacons; message: {msg}")


def test_listener_without_cluster_takes_any(port: int, senders: list[BeaconSender]) -> None:
    senders.append(make_sender("whatever", port, zmq_port=7000, interval=0.2))
    senders[-1].start()
    assert listen_for_controller(timeout=2.0, port=port, bind_host=LOOP_BCAST) == (
        "127.0.0.1",
        Beacon("whatever", 7000),
    )


def test_stop_joins_quickly(port: int) -> None:
    s = make_sender("lab", port, interval=1.0)
    s.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 1.0
    assert not any(t.name == "bxthre3-beacon" and t.is_alive() for t in threading.enumerate())


def test_find_controller_precedence(
    port: int, senders: list[BeaconSender], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "last_controller"
    common = {"cluster_id": "lab", "port": port, "bind_host": LOOP_BCAST, "remember_path": state}

    # Nothing anywhere: timeout, with the hint.
    with pytest.raises(DiscoveryTimeout, match="--controller"):
        find_controller(None, timeout=0.3, **common)

    # Remembered only: used after discovery times out.
    remember_controller("10.9.8.7:5000", state)
    assert find_controller(None, timeout=0.3, **common) == Address("10.9.8.7", 5000)

    # A beacon beats the remembered one, and is remembered in turn.
    senders.append(make_sender("lab", port, zmq_port=5555, interval=0.2))
    senders[-1].start()
    t0 = time.monotonic()
    assert find_controller(None, timeout=3.0, **common) == Address("127.0.0.1", 5555)
    print(f"\nfind_controller by beacon: {(time.monotonic() - t0) * 1000:.1f} ms")
    assert last_controller(state) == "127.0.0.1:5555"

    # The environment beats the beacon (no listening at all: returns at once).
    monkeypatch.setenv(CONTROLLER_ENV, "192.0.2.50:6000")
    t0 = time.monotonic()
    assert find_controller(None, timeout=3.0, **common) == Address("192.0.2.50", 6000)
    assert time.monotonic() - t0 < 0.1

    # The explicit value beats the environment.
    assert find_controller("192.0.2.60", timeout=3.0, **common) == Address("192.0.2.60", 5000)
    assert last_controller(state) == "127.0.0.1:5555"  # explicit/env addresses are not remembered
