"""A damaged state dir, as a user meets it: the real `bxthre3 controller` on a real SQLite journal.

An empty or damaged journal is refused at start with one line naming the file and the remedy;
`--reset-state` moves the damaged files aside (never deletes them) and starts empty.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bxthre3.controller.store import INLINE_OUTPUT_BYTES, Store
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.scheduler import DagSubmitted, HostJoined, Scheduler, TaskFinished
from tests.conftest import REPO, TEST_TOKEN, WASM_MODULES, subprocess_env

MODULE = (WASM_MODULES / "noop.wasm").read_bytes()
SHA = hashlib.sha256(MODULE).hexdigest()
TASKS = 300


def journal_with_a_finished_dag(state_dir: Path) -> None:
    """A journal as a controller leaves it: one DAG whose tasks all succeeded, with outputs, checkpointed."""
    tasks = tuple(TaskSpec(id=f"t{i}", module=SHA, module_name="noop.wasm") for i in range(TASKS))
    spec = DagSpec(name="kept", tasks=tasks, modules={SHA: MODULE})
    scheduler = Scheduler()
    store = Store(state_dir)
    store.add_dag("dag-kept", spec, time.time())
    scheduler.handle(DagSubmitted("dag-kept", spec, time.time()))
    scheduler.handle(HostJoined("h", "node", TASKS, 128, time.time()))
    for i in range(TASKS):
        scheduler.handle(TaskFinished("h", "dag-kept", f"t{i}", 1, time.time(), output=b"x" * 3000))
    store.flush(scheduler)
    store.close()  # the last connection checkpoints: everything is in state.db itself
    assert not (state_dir / "state.db-wal").exists()


def controller(state_dir: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", "0", "--no-beacon",
            "--state-dir", str(state_dir), "--log-file", str(state_dir.parent / "controller.log"), *extra]  # fmt: skip
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(), cwd=REPO,
    )  # fmt: skip


def start_or_exit(proc: subprocess.Popen[str]) -> tuple[int | None, list[str]]:
    """Its stderr lines up to 'listening' (it runs: killed by PID here) or to its exit."""
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if "listening on" in line:
                return None, lines
        return proc.wait(10), lines
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)


PAGE = 4096


def damage_pages(db: Path) -> None:
    """Garbage over three pages in the middle of the file: what a bad sector or a torn copy leaves."""
    with open(db, "r+b") as f:
        f.seek((db.stat().st_size // PAGE // 2) * PAGE)
        f.write(random.Random(16).randbytes(3 * PAGE))


def damage_a_free_page(db: Path) -> None:
    """Damage only SQLite's own check sees: the load never reads the free list (pages pruning freed)."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM tasks WHERE task_id >= 't1'")
    conn.close()
    trunk = int.from_bytes(db.read_bytes()[32:36], "big")  # the header's first free-list trunk page
    assert trunk > 0
    with open(db, "r+b") as f:
        f.seek((trunk - 1) * PAGE)
        f.write(b"\xff" * 16)


@pytest.mark.parametrize("damage", ["empty", "garbage pages", "garbage header", "a damaged free page"])
def test_a_damaged_journal_is_refused_with_one_line_then_moved_aside_by_reset_state(
    tmp_path: Path, damage: str
) -> None:
    state = tmp_path / "state"
    journal_with_a_finished_dag(state)
    db = state / "state.db"
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "garbage pages":
        damage_pages(db)
    elif damage == "a damaged free page":
        damage_a_free_page(db)
    else:
        with open(db, "r+b") as f:
            f.write(random.Random(17).randbytes(100))
    before = db.read_bytes()
    token = state / "token"
    token.write_text(TEST_TOKEN + "\n")
    token.chmod(0o600)

    code, lines = start_or_exit(controller(state))
    assert code == 2, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"bxthre3: error: the controller's journal {db} "), lines
    assert "--state-dir" in lines[0] and "--reset-state" in lines[0]
    assert db.read_bytes() == before, "a refused journal is left exactly as it was"

    code, lines = start_or_exit(controller(state, "--reset-state"))
    assert code is None, lines  # it started
    moved = [line for line in lines if "moved aside" in line]
    assert len(moved) == 1 and str(db) in moved[0], lines
    kept = [p for p in state.iterdir() if p.name.startswith("state.db.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == before, "moved aside byte for byte, never deleted"
    assert any(p.name.startswith("outputs.damaged-") for p in state.iterdir())
    assert token.read_text() == TEST_TOKEN + "\n", "the cluster keeps its token (hosts need not change it)"


def test_a_healthy_journal_starts_and_reset_state_moves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    journal_with_a_finished_dag(state)
    code, lines = start_or_exit(controller(state, "--reset-state"))
    assert code is None, lines
    assert any("healthy" in line and "moved nothing" in line for line in lines), lines
    assert not [p for p in state.iterdir() if "damaged" in p.name]
    assert "restored 1 DAG(s)" in (tmp_path / "controller.log").read_text()


def test_an_output_file_the_journal_points_at_going_missing_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    tasks = (TaskSpec(id="big", module=SHA, module_name="noop.wasm"),)
    spec = DagSpec(name="big", tasks=tasks, modules={SHA: MODULE})
    scheduler, store = Scheduler(), Store(state)
    store.add_dag("dag-big", spec, time.time())
    scheduler.handle(DagSubmitted("dag-big", spec, time.time()))
    scheduler.handle(HostJoined("h", "node", 1, 128, time.time()))
    scheduler.handle(TaskFinished("h", "dag-big", "big", 1, time.time(), output=b"y" * (INLINE_OUTPUT_BYTES + 1)))
    store.flush(scheduler)
    store.close()
    (state / "outputs" / "dag-big" / "big").unlink()
    code, lines = start_or_exit(controller(state))
    assert code == 2 and len(lines) == 1, lines
    assert "points at an output it cannot read" in lines[0] and "--reset-state" in lines[0]
