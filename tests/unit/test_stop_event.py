"""StopEvent: a stop flag a poll loop wakes on at once."""

from __future__ import annotations

import select
import threading
import time

import zmq

from bxthre3.common.stop_event import StopEvent, wake_fd


def test_its_fd_turns_readable_when_set_and_stays_readable() -> None:
    stop = StopEvent()
    try:
        assert select.select([stop], [], [], 0)[0] == []
        stop.set()
        stop.set()  # twice is fine
        assert stop.is_set()
        for _ in range(2):
            assert select.select([stop], [], [], 0)[0] == [stop], "every later poll sees it too"
    finally:
        stop.close()


def test_a_poller_sleeping_on_it_wakes_when_another_thread_sets_it() -> None:
    stop = StopEvent()
    poller = zmq.Poller()
    poller.register(stop.fileno(), zmq.POLLIN)
    timer = threading.Timer(0.05, stop.set)
    started = time.monotonic()
    timer.start()
    try:
        events = dict(poller.poll(10_000))
        assert events == {stop.fileno(): zmq.POLLIN}
        assert time.monotonic() - started < 5.0, "woken by the flag, not by the 10 s timeout"
    finally:
        timer.join()
        stop.close()


def test_wake_fd_only_for_an_open_stop_event() -> None:
    assert wake_fd(threading.Event()) is None
    stop = StopEvent()
    assert wake_fd(stop) == stop.fileno()
    stop.close()
    stop.close()
    assert wake_fd(stop) is None
    stop.set()  # after close: sets the flag, writes to no fd (its number may be reused by now)
    assert stop.is_set()
