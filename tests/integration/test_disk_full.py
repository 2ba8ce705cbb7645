"""The controller's disk fills up mid-DAG: a real controller, host and CLI on a real, tiny tmpfs.

It stays up, answers status and results from memory, refuses submissions with one line saying
the disk is full, sends no assignment it could not journal, logs once, and when space returns it
resumes by itself: the DAG finishes and a restarted controller finds every result in its journal.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, subprocess_env, wait_for
from tests.integration.test_cli import free_port

TASKS = 10
ITERATIONS = 40_000
"""SHA-256 rounds per task: ~0.4 s on Wasm3 here, so the DAG is still running when the disk fills."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs of our own (root only), unmounted in teardown."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)  # never left mounted


def fill(path: Path) -> None:
    """Write zeros until the filesystem says ENOSPC (a real full disk, not a mock)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)


def bx(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bxthre3", *args], capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(), cwd=REPO, stdin=subprocess.DEVNULL)  # fmt: skip


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "bxthre3", *args, "--log-file", str(log)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=subprocess_env(), cwd=REPO)  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def write_dag(path: Path) -> Path:
    tasks = "".join(
        f"  - id: t{i}\n    module: {REPO / 'wasm_modules' / 'pwhash_chunk.wasm'}\n"
        f'    inputs: ["{ITERATIONS}", "password{i}"]\n'
        for i in range(TASKS)
    )
    path.write_text(f"name: slow\ntasks:\n{tasks}")
    return path


def test_a_full_disk_holds_the_work_refuses_submissions_and_resumes_when_space_returns(
    tmp_path: Path, small_disk: Path
) -> None:
    state = small_disk / "state"
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = tmp_path / "controller.log"
    controller_args = ("controller", "--host", "127.0.0.1", "--port", str(port), "--no-beacon", "--state-dir",
                       str(state))  # fmt: skip
    controller = start(*controller_args, log=log)
    host = start("host", "--controller", address, "--node-id", "h1", "--cache-dir", str(tmp_path / "cache"),
                 "--heartbeat", "0.5", "--engine", "wasm3", log=tmp_path / "host.log")  # fmt: skip
    filler = small_disk / "filler"
    try:
        wait_for(lambda: bx("status", "--controller", address, "--timeout", "1").returncode == 0, 20, "controller")
        dag = write_dag(tmp_path / "slow.yaml")
        submitted = bx("submit", str(dag), "--controller", address)
        assert submitted.returncode == 0, submitted.stderr
        dag_id = submitted.stdout.split()[-1] if submitted.stdout.split() else ""
        assert dag_id.startswith("dag-"), submitted.stdout

        def progress() -> dict[str, object]:
            proc = bx("status", "--json", "--controller", address, "--timeout", "2")
            assert proc.returncode == 0, proc.stderr
            status = json.loads(proc.stdout)
            (only,) = [d for d in status["dags"] if d["dag_id"] == dag_id]
            return {"done": only["done"], "state": only["state"], "error": status["controller"].get("journal_error"),
                    "stderr": proc.stderr}  # fmt: skip

        wait_for(lambda: progress()["done"] >= 2, 30, "two tasks done")
        fill(filler)
        wait_for(lambda: progress()["error"], 10, "the controller to find its disk full")

        # it stays up; a submission is refused at once with one line saying why
        started = time.monotonic()
        refused = bx("submit", str(dag), "--controller", address)
        took = time.monotonic() - started
        assert refused.returncode == 3, refused.stderr
        assert refused.stderr.count("\n") == 1 and "controller's disk is full" in refused.stderr, refused.stderr
        assert took < 3, took
        # status and results answer from memory; status warns
        held = progress()
        assert "controller's disk is full" in str(held["stderr"]) and held["state"] == "running"
        results = bx("results", dag_id, "--json", "--controller", address)
        assert results.returncode == 0, results.stderr
        # no assignment goes out that the journal does not hold: the DAG stands still
        time.sleep(2.5)  # five tasks' time
        still = progress()
        assert still["done"] == held["done"] and still["state"] == "running", (held, still)
        assert controller.poll() is None and host.poll() is None
        full_lines = [line for line in log.read_text().splitlines() if "disk is full" in line]
        assert len(full_lines) == 1, full_lines  # once a minute, not once per batch
        assert "Traceback" not in log.read_text()

        filler.unlink()  # space returns: it resumes by itself
        wait_for(lambda: progress()["state"] == "succeeded", 30, "the DAG to finish")
        assert "written again" in log.read_text()
        before = json.loads(bx("results", dag_id, "--json", "--controller", address).stdout)
        assert progress()["error"] is None

        stop(controller)  # nothing lost: a fresh controller reads every result back from the journal
        controller = start(*controller_args, log=log)
        wait_for(lambda: bx("status", "--controller", address, "--timeout", "1").returncode == 0, 20, "restart")
        after = json.loads(bx("results", dag_id, "--json", "--controller", address).stdout)
        assert after["state"] == "succeeded"
        assert [(t["task_id"], t["state"], t["output"]) for t in after["tasks"]] == [
            (t["task_id"], t["state"], t["output"]) for t in before["tasks"]
        ]
        assert all(t["state"] == "succeeded" and t["output"] for t in after["tasks"]) and len(after["tasks"]) == TASKS
    finally:
        stop(host)
        stop(controller)
        filler.unlink(missing_ok=True)


def test_the_store_keeps_every_change_through_enospc_on_an_output_file(tmp_path: Path, small_disk: Path) -> None:
    """A large output (a file beside the database) hitting ENOSPC: the commit fails as a whole, no
    partial file is left to eat the space, the rows stay dirty, and the next flush writes them."""
    import hashlib

    from bxthre3.controller.store import INLINE_OUTPUT_BYTES, JournalWriteError, Store
    from bxthre3.dag.spec import DagSpec, TaskSpec
    from bxthre3.scheduler import DagSubmitted, HostJoined, Scheduler, TaskFinished

    module = (REPO / "wasm_modules" / "noop.wasm").read_bytes()
    sha = hashlib.sha256(module).hexdigest()
    spec = DagSpec(name="big", tasks=(TaskSpec(id="big", module=sha, module_name="noop.wasm"),), modules={sha: module})
    state = small_disk / "state"
    scheduler, store = Scheduler(), Store(state)
    store.add_dag("dag-big", spec, 1000.0)
    scheduler.handle(DagSubmitted("dag-big", spec, 1000.0))
    scheduler.handle(HostJoined("h", "node", 1, 128, 1000.0))
    store.flush(scheduler)
    filler = small_disk / "filler"
    fill(filler)
    big = os.urandom(INLINE_OUTPUT_BYTES * 2)
    scheduler.handle(TaskFinished("h", "dag-big", "big", 1, 1001.0, output=big))
    with pytest.raises(JournalWriteError, match="the controller's disk is full") as failed:
        store.flush(scheduler)
    assert failed.value.disk_full
    assert not list((state / "outputs").rglob(".*.tmp")), "no partial output file is left behind"
    assert scheduler.dags["dag-big"].dirty, "the change is still to be written"
    with pytest.raises(JournalWriteError) as refused:
        store.add_dag("dag-other", spec, 1002.0)
    assert refused.value.disk_full

    filler.unlink()
    assert store.flush(scheduler) >= 1
    store.close()
    restored, reopened = Scheduler(), Store(state)
    try:
        assert reopened.load(restored, 2000.0) == 1, "the refused DAG was never journalled"
        assert restored.dags["dag-big"].tasks["big"].output == big
    finally:
        reopened.close()
