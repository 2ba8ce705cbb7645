"""Status files: whole or absent, never half-written; junk reads as nothing."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from bxthre3.common.status_file import MAX_STATUS_BYTES, StatusFile, read_status_file


def test_write_read_and_rate_limit(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "s.json"
    status = StatusFile(path, interval=0.5, clock=lambda: now[0])
    assert read_status_file(path) is None
    assert status.maybe_write(lambda: {"n": 1})
    assert not status.maybe_write(lambda: {"n": 2}), "within the interval: no write"
    now[0] = 0.6
    assert status.maybe_write(lambda: {"n": 3})
    data = read_status_file(path)
    assert data is not None and data["n"] == 3 and data["pid"] == os.getpid() and data["written_at"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"], "no temporary file left behind"


def test_junk_and_oversized_files_read_as_none(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    for junk in (b"{not json", b"[1, 2]", b"\xff\xfe", b""):
        path.write_bytes(junk)
        assert read_status_file(path) is None
    path.write_text(json.dumps({"x": "y" * MAX_STATUS_BYTES}))
    assert read_status_file(path) is None


def test_an_unwritable_place_fails_quietly(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "missing-dir" / "s.json")
    assert status.write({"a": 1}) is False
    assert status.write({"a": 1}) is False


def test_the_thread_writes_until_stopped_and_survives_a_bad_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    calls = []

    def snapshot() -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return {"calls": len(calls)}

    stop = threading.Event()
    thread = StatusFile(path, interval=0.01).start_thread(stop, snapshot)
    deadline = 200
    while (read_status_file(path) or {}).get("calls", 0) < 3 and deadline:
        stop.wait(0.01)
        deadline -= 1
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and (read_status_file(path) or {}).get("calls", 0) >= 3
