"""Deterministic runs of the WASI shim (a verified task): logical clocks, seeded random bytes, no sleeping."""

from __future__ import annotations

import hashlib
import struct
import time

import pytest

from bxthre3.wasm import wasi
from tests.unit.test_wasi import Shim, _poll, _subscription

REALTIME, MONOTONIC, PROCESS, THREAD = 0, 1, 2, 3
MS = 1_000_000
EPOCH_2000_NS = 946_684_800 * 10**9


def deterministic(task_id: str = "t1", **kwargs: object) -> Shim:
    return Shim(seed=wasi.task_seed(task_id), **kwargs)


def read_clock(s: Shim, clock: int) -> int:
    assert s.call("clock_time_get", clock, 1, 0) == 0
    return s.mem.u64(0)


def random_bytes(s: Shim, length: int) -> bytes:
    pointer, _ = s.mem.put(bytes(length))
    assert s.call("random_get", pointer, length) == 0
    return s.mem.read(pointer, length)


def test_the_seed_is_sha256_of_the_task_id() -> None:
    assert wasi.task_seed("t1") == hashlib.sha256(b"t1").digest()
    assert wasi.task_seed("é") == hashlib.sha256("é".encode()).digest()


def test_random_is_sha256_in_counter_mode_however_the_requests_split() -> None:
    seed = wasi.task_seed("t1")
    expected = b"".join(hashlib.sha256(seed + struct.pack("<Q", i)).digest() for i in range(8))
    assert random_bytes(deterministic(), 256) == expected
    s = deterministic()
    pieces = [random_bytes(s, n) for n in (1, 0, 31, 33, 64, 7, 120)]
    assert b"".join(pieces) == expected
    generator = wasi.SeededRandom(seed)
    assert generator(5) + generator(100_000)[:251] == expected


def test_different_task_ids_get_different_bytes_and_real_runs_real_ones() -> None:
    assert random_bytes(deterministic("t1"), 32) != random_bytes(deterministic("t2"), 32)
    assert random_bytes(Shim(), 32) != random_bytes(Shim(), 32)  # os.urandom


def test_every_clock_is_one_logical_clock_moving_one_step_per_read() -> None:
    s = deterministic()
    readings = [read_clock(s, clock) for clock in (REALTIME, MONOTONIC, PROCESS, THREAD, REALTIME)]
    assert readings == [EPOCH_2000_NS, 1 * MS, 2 * MS, 3 * MS, EPOCH_2000_NS + 4 * MS]
    assert wasi.DETERMINISTIC_STEP_NS == MS and wasi.DETERMINISTIC_EPOCH_NS == EPOCH_2000_NS
    for clock in (REALTIME, MONOTONIC, PROCESS, THREAD):
        assert s.call("clock_res_get", clock, 8) == 0
        assert s.mem.u64(8) == MS
    assert s.call("clock_time_get", 4, 1, 0) == wasi.EINVAL
    assert s.call("clock_res_get", 4, 0) == wasi.EINVAL
    assert read_clock(s, MONOTONIC) == 5 * MS  # refused ids and resolutions do not move it


def test_a_real_run_reads_the_device_clocks() -> None:
    s = Shim()
    assert abs(read_clock(s, REALTIME) - time.time_ns()) < 10**9
    assert s.call("clock_res_get", MONOTONIC, 8) == 0 and s.mem.u64(8) == 1_000


def test_poll_oneoff_moves_the_logical_clock_instead_of_sleeping() -> None:
    s = deterministic(timeout_s=60.0, stdin=b"abc")
    started = time.monotonic()
    assert _poll(s, _subscription(7, 0, MONOTONIC, 10 * 10**9)) == [(7, 0, 0, 0, 0)]  # 10 s, relative
    assert read_clock(s, MONOTONIC) == 10 * 10**9
    # Absolute monotonic and realtime deadlines are on the logical clock too; the earliest wins.
    events = _poll(s, _subscription(8, 0, MONOTONIC, 12 * 10**9, flags=1), _subscription(9, 0, MONOTONIC, 20 * 10**9))
    assert events == [(8, 0, 0, 0, 0)]
    assert read_clock(s, MONOTONIC) == 12 * 10**9
    assert _poll(s, _subscription(1, 0, REALTIME, EPOCH_2000_NS + 15 * 10**9, flags=1)) == [(1, 0, 0, 0, 0)]
    assert read_clock(s, REALTIME) == EPOCH_2000_NS + 15 * 10**9
    assert _poll(s, _subscription(2, 0, REALTIME, EPOCH_2000_NS, flags=1)) == [(2, 0, 0, 0, 0)]  # past: at once
    assert read_clock(s, MONOTONIC) == 15 * 10**9 + MS
    # A ready fd answers without moving the clock.
    assert _poll(s, _subscription(3, 0, MONOTONIC, 10**12), _subscription(4, 1, 0)) == [(4, 0, 1, 3, 0)]
    assert read_clock(s, MONOTONIC) == 15 * 10**9 + 2 * MS
    assert time.monotonic() - started < 1.0


def test_sleeping_past_the_timeout_on_the_logical_clock_is_a_timeout_at_once() -> None:
    s = deterministic(timeout_s=30.0)
    assert _poll(s, _subscription(1, 0, MONOTONIC, 29 * 10**9)) == [(1, 0, 0, 0, 0)]
    started = time.monotonic()
    with pytest.raises(wasi.DeadlineExceeded):
        _poll(s, _subscription(2, 0, MONOTONIC, 2 * 10**9))
    assert time.monotonic() - started < 0.5
    untimed = deterministic()  # no timeout: any sleep returns at once
    assert _poll(untimed, _subscription(3, 0, MONOTONIC, (1 << 64) - 1)) == [(3, 0, 0, 0, 0)]
