from __future__ import annotations

from bxthre3.scheduler.ready_queue import ReadyQueue


def test_fifo_within_what_fits() -> None:
    q = ReadyQueue()
    q.push("d", "big", 512)
    q.push("d", "a")
    q.push("d", "mid", 100)
    q.push("d", "b")
    assert len(q) == 4
    assert q.pop_for(128) == ("d", "a", 0)
    assert q.pop_for(128) == ("d", "mid", 100)
    assert q.pop_for(1024) == ("d", "big", 512)
    assert q.pop_for(0) == ("d", "b", 0)
    assert q.pop_for(4096) is None and not q


def test_front_pushes_jump_the_queue_and_iteration_is_fifo() -> None:
    q = ReadyQueue()
    q.push("d", "x")
    q.push("d", "y", 64)
    q.push("d", "lost", 64, front=True)
    assert list(q) == [("d", "lost"), ("d", "x"), ("d", "y")]
    assert q.pop_for(64) == ("d", "lost", 64)


def test_waiting_above() -> None:
    q = ReadyQueue()
    q.push("d", "a", 256)
    q.push("d", "b", 256)
    q.push("d", "c", 64)
    assert q.waiting_above(128) == {256: 2}
    assert q.waiting_above(512) == {}
