"""The executor child process and its parent-side handle, with real processes and Wasm3."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bxthre3.common.failures import FailureReason
from bxthre3.executor.parent import ExecJob, ExecResult, Executor, ExecutorDied
from bxthre3.wasm.choice import wasmtime_installed
from tests.conftest import ENGINES

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "wasm_modules"
TEST_MODULES = ROOT / "tests" / "data" / "modules"
RESULT_TIMEOUT_S = 10.0

_job_ids = itertools.count(1)


def module_path(name: str) -> Path:
    for directory in (MODULES, TEST_MODULES):
        path = directory / f"{name}.wasm"
        if path.exists():
            return path
    raise FileNotFoundError(f"{name}.wasm not built: run wasm_modules/build.sh")


def make_job(name: str | Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> ExecJob:
    path = name if isinstance(name, Path) else module_path(name)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ExecJob(next(_job_ids), sha, str(path), tuple(args), stdin, env or {})


def readable(executor: Executor, timeout: float) -> bool:
    ready, _, _ = select.select([executor.fileno()], [], [], timeout)
    return bool(ready)


def wait_result(executor: Executor, timeout: float = RESULT_TIMEOUT_S) -> ExecResult:
    """A lost result fails the test instead of hanging it."""
    assert readable(executor, timeout), f"no result within {timeout} s"
    return executor.read_result()


def run(executor: Executor, job: ExecJob) -> ExecResult:
    executor.submit(job)
    result = wait_result(executor)
    assert result.job_id == job.job_id
    return result


@pytest.fixture(params=ENGINES)
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    executor = Executor(log_path=tmp_path / "executor.log", engine=request.param)
    executor.start()
    try:
        yield executor
    finally:
        executor.kill()
        executor.close()


def test_jobs_run_and_results_come_back(executor: Executor) -> None:
    init = run(executor, make_job("init", "Bxthre3"))
    assert (init.reason, init.exit_code, init.stdout) == (None, 0, b"Bxthre3\n")
    hello = run(executor, make_job("greet_1", stdin=init.stdout))
    assert hello.stdout == b"Hello, Bxthre3!\n"
    assert hello.duration > 0
    failed = run(executor, make_job("exit3"))
    assert (failed.reason, failed.exit_code) == (FailureReason.EXIT_CODE, 3)
    assert failed.stderr == b"something went wrong\n"


def test_a_trap_does_not_disturb_the_child(executor: Executor) -> None:
    pid = executor.pid
    assert run(executor, make_job("recurse")).reason is FailureReason.TRAP
    assert run(executor, make_job("trap")).error == "trap: unreachable executed"
    assert run(executor, make_job("init", "still")).stdout == b"still\n"
    assert executor.pid == pid


def test_binary_stdin_and_env_cross_the_pipes_intact(executor: Executor) -> None:
    data = bytes(range(256)) * 4 + os.urandom(300_000)
    assert run(executor, make_job("echo_stdin", stdin=data)).stdout == data
    out = run(executor, make_job("env_dump", "a", env={"BXTHRE3_TASK_ID": "t9"})).stdout
    assert b"argv[1]=a\n" in out and b"BXTHRE3_TASK_ID=t9\n" in out and b"environ=1\n" in out


def test_runaway_job_is_killed_at_its_deadline_and_the_executor_restarts(
    executor: Executor,
) -> None:
    fd = executor.fileno()
    old_pid = executor.pid
    executor.submit(make_job("spin"))
    assert not readable(executor, 0.3)  # still spinning at the deadline
    executor.kill()
    assert executor.pid is None
    assert not readable(executor, 0.0)  # a killed executor's fd is quiet, not at EOF
    executor.start()
    assert executor.pid not in (None, old_pid)
    assert executor.fileno() == fd  # registered once, valid across restarts
    assert run(executor, make_job("init", "next")).stdout == b"next\n"


def test_child_killed_from_outside_is_executor_died(executor: Executor) -> None:
    executor.submit(make_job("spin"))
    os.kill(executor.pid, signal.SIGKILL)
    assert readable(executor, RESULT_TIMEOUT_S)
    with pytest.raises(ExecutorDied, match="signal 9"):
        executor.read_result()
    executor.start()
    assert run(executor, make_job("noop")).reason is None


def test_a_child_that_died_idle_is_replaced_by_the_next_submit(executor: Executor) -> None:
    """It owed nothing: the next job is not its victim (it used to fail with executor_crashed)."""
    pid = executor.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert executor._process is not None
    executor._process.wait(timeout=5)
    assert run(executor, make_job("init", "again")).stdout == b"again\n"
    assert executor.pid not in (None, pid)


def test_a_child_that_dies_after_a_result_fails_the_job_queued_behind_it(tmp_path: Path) -> None:
    executor = Executor(log_path=tmp_path / "executor.log", depth=2)
    executor.start()
    try:
        executor.submit(make_job("noop"))
        executor.submit(make_job("spin"))  # queued in the pipe behind it
        assert wait_result(executor).reason is None
        pid = executor.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # while it runs the queued job
        with pytest.raises(ExecutorDied, match="signal 9"):
            executor.read_result(timeout=RESULT_TIMEOUT_S)
        assert executor.in_flight == 0
    finally:
        executor.close()


def test_module_is_served_from_cache_once_read(executor: Executor, tmp_path: Path) -> None:
    copy = tmp_path / "init.wasm"
    shutil.copy(module_path("init"), copy)
    job = make_job(copy, "first")
    assert run(executor, job).stdout == b"first\n"
    copy.unlink()
    again = ExecJob(next(_job_ids), job.module_sha, str(copy), ("cached",), b"", {})
    assert run(executor, again).stdout == b"cached\n"


def test_module_whose_bytes_do_not_match_its_sha_is_refused(executor: Executor, tmp_path: Path) -> None:
    job = make_job("noop")
    wrong = ExecJob(job.job_id, "0" * 64, job.module_path, (), b"", {})
    result = run(executor, wrong)
    assert result.reason is FailureReason.INTERNAL
    assert "sha256" in result.error
    missing = ExecJob(next(_job_ids), "1" * 64, str(tmp_path / "gone.wasm"), (), b"", {})
    assert run(executor, missing).reason is FailureReason.INTERNAL


def test_relative_module_path_works_from_any_cwd(executor: Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    job = make_job("init", "rel")
    relative = ExecJob(job.job_id, job.module_sha, "wasm_modules/init.wasm", job.args, b"", {})
    assert run(executor, relative).stdout == b"rel\n"


def test_a_retiring_child_is_replaced_transparently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BXTHRE3_EXECUTOR_RETIRE_RSS_BYTES", "1")  # retire after every job
    executor = Executor()
    try:
        executor.start()
        fd = executor.fileno()
        pids = set()
        for word in ("a", "b", "c"):
            pids.add(executor.pid)
            result = run(executor, make_job("init", word))
            assert result.retired and result.stdout == f"{word}\n".encode()
            assert executor.fileno() == fd
        assert len(pids) == 3
    finally:
        executor.kill()
        executor.close()


def test_one_job_at_a_time(executor: Executor) -> None:
    executor.submit(make_job("noop"))
    with pytest.raises(RuntimeError):
        executor.submit(make_job("noop"))
    assert wait_result(executor).reason is None


def test_close_shuts_the_child_down_politely(tmp_path: Path) -> None:
    executor = Executor()
    executor.start()
    process = executor._process
    assert process is not None
    try:
        started = time.perf_counter()
        executor.close()
        assert time.perf_counter() - started < 2.0
        assert process.returncode == 0
        executor.close()  # twice is fine
        executor.kill()
    finally:
        executor.kill()


def test_parent_side_does_not_import_wasm3_or_zmq() -> None:
    code = (
        "import sys, bxthre3.executor.parent;"
        "bad = {'wasm3', 'zmq', 'bxthre3.wasm.wasm3'} & set(sys.modules);"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)


def test_a_child_of_a_big_parent_does_not_retire_after_every_job() -> None:
    """Linux hands a parent's peak RSS to the child it forks: an executor started by a process that once held
    more than the retire limit (the test runner after a 100,000-task DAG) used to retire after every job."""
    code = (
        "import sys\n"
        "block = bytearray(200 << 20)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "del block\n"
        "from bxthre3.executor.parent import Executor, ExecJob\n"
        "from tests.integration.test_executor import make_job, run\n"
        "ex = Executor(); ex.start(); pid = ex.pid; job = make_job('noop')\n"
        "for k in range(5):\n"
        "    assert run(ex, ExecJob(100 + k, job.module_sha, job.module_path, (), b'', {})).reason is None\n"
        "same = ex.pid == pid; ex.kill(); ex.close()\n"
        "sys.exit(0 if same else 'the executor was replaced after a job')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BXTHRE3_EXECUTOR_RETIRE_RSS_BYTES": str(150 << 20)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_startup_time_and_noop_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    executor = Executor()
    try:
        started = time.perf_counter()
        executor.start()
        first = run(executor, make_job("noop"))
        startup = time.perf_counter() - started - first.duration
        job = make_job("noop")
        count = 500
        started = time.perf_counter()
        for job_id in range(count):
            executor.submit(ExecJob(job_id, job.module_sha, job.module_path, (), b"", {}))
            assert wait_result(executor).reason is None
        rate = count / (time.perf_counter() - started)
        hello = make_job("greet_1", "x")
        hello_runs = [run(executor, hello).duration for _ in range(50)]
    finally:
        executor.kill()
        executor.close()
    with capsys.disabled():
        print(
            f"\nexecutor: startup to first result {startup * 1000:.0f} ms, "
            f"{rate:.0f} noop jobs/s, greet_1 engine time "
            f"{sorted(hello_runs)[len(hello_runs) // 2] * 1000:.2f} ms (median)"
        )
    assert startup < 5.0
    assert rate > 100


@pytest.mark.skipif(not wasmtime_installed(), reason="wasmtime is not installed")
def test_wasmtime_stops_a_runaway_module_itself_and_the_executor_lives_on(tmp_path: Path) -> None:
    """Epoch interruption ends the run at its timeout: no kill, no restart, the next job runs at once."""
    executor = Executor(log_path=tmp_path / "executor.log", engine="wasmtime")
    executor.start()
    try:
        pid = executor.pid
        spin = dataclasses.replace(make_job("spin"), timeout_s=0.3)
        started = time.monotonic()
        result = run(executor, spin)
        assert (result.reason, result.exit_code) == (FailureReason.TIMEOUT, None)
        assert result.error == "stopped after the 0.3s timeout"
        assert 0.3 <= time.monotonic() - started < 2.0
        assert executor.pid == pid
        hello = run(executor, make_job("greet_1", stdin=b"again"))
        assert hello.stdout == b"Hello, again!\n" and executor.pid == pid
    finally:
        executor.close()


def test_asking_for_an_unknown_engine_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3.executor", "0", "1", str(os.getpid()), "0", "v8"],
        capture_output=True, timeout=30, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and b"wasm3|wasmtime" in proc.stderr


# -- large jobs and results, pipelined ------------------------------------------------


def drive(executor: Executor, jobs: list[ExecJob], time_limit: float = 120.0) -> tuple[list[ExecResult], float]:
    """Run `jobs` through `executor` the way a host loop does: keep `depth` in flight, write job bytes
    only when the pipe is writable, read results only when readable. Returns the results and the
    longest single flush/take_results call (the loop must never wait inside one)."""
    pending = list(jobs)
    results: list[ExecResult] = []
    longest = 0.0
    deadline = time.monotonic() + time_limit
    while len(results) < len(jobs):
        assert time.monotonic() < deadline, f"{len(results)}/{len(jobs)} results after {time_limit} s"
        while pending and executor.in_flight < executor.depth:
            started = time.perf_counter()
            executor.submit(pending.pop(0))
            longest = max(longest, time.perf_counter() - started)
        write = [executor.write_fileno()] if executor.wants_write else []
        readable, writable, _ = select.select([executor.fileno()], write, [], 5.0)
        assert readable or writable, "neither pipe moved for 5 s: deadlock"
        started = time.perf_counter()
        if writable:
            executor.flush()
        if readable:
            results += executor.take_results()
        longest = max(longest, time.perf_counter() - started)
    return results, longest


@pytest.mark.parametrize("engine", ENGINES)
def test_jobs_and_results_far_larger_than_a_pipe_cross_at_any_pipeline_depth(engine: str, tmp_path: Path) -> None:
    """Blocking writes both ways deadlocked here: the parent writing job N+1 while the child wrote result N,
    each larger than the pipe."""
    rng = random.Random(11)
    for depth in (2, 4):
        executor = Executor(log_path=tmp_path / "executor.log", engine=engine, depth=depth)
        executor.start()
        try:
            datas = [rng.randbytes(3 * 1024 * 1024 + i) for i in range(6)]
            jobs = [make_job("echo_stdin", stdin=d) for d in datas]
            results, longest = drive(executor, jobs)
        finally:
            executor.close()
        assert [r.job_id for r in results] == [j.job_id for j in jobs]
        assert [(r.reason, r.stdout) for r in results] == [(None, d) for d in datas]
        assert longest < 1.0, f"a non-blocking call took {longest:.2f} s"


@pytest.mark.parametrize("engine", ENGINES)
def test_the_largest_stdin_and_stdout_cross_the_pipes(engine: str, tmp_path: Path) -> None:
    """32 MiB of stdin (limits.MAX_TASK_INPUT_BYTES) and 16 MiB of stdout (MAX_OUTPUT_BYTES), pipelined."""
    from bxthre3.common.limits import MAX_OUTPUT_BYTES, MAX_TASK_INPUT_BYTES

    executor = Executor(log_path=tmp_path / "executor.log", engine=engine, depth=2)
    executor.start()
    try:
        biggest_out = os.urandom(MAX_OUTPUT_BYTES)
        too_much = biggest_out + os.urandom(MAX_TASK_INPUT_BYTES - MAX_OUTPUT_BYTES)
        jobs = [make_job("echo_stdin", stdin=biggest_out), make_job("echo_stdin", stdin=too_much)]
        jobs.append(make_job("echo_stdin", stdin=biggest_out))
        results, _ = drive(executor, jobs)
    finally:
        executor.close()
    assert (results[0].reason, results[0].stdout == biggest_out) == (None, True)
    assert results[1].reason is FailureReason.OUTPUT_LIMIT  # all 32 MiB arrived; only 16 may leave
    assert (results[2].reason, results[2].stdout == biggest_out) == (None, True)


def test_a_retiring_child_hands_its_half_written_queue_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs written (in part) to a child that retires are sent whole to its successor."""
    monkeypatch.setenv("BXTHRE3_EXECUTOR_RETIRE_RSS_BYTES", "1")  # retire after every job
    executor = Executor(depth=2)
    executor.start()
    try:
        datas = [os.urandom(2 * 1024 * 1024 + i) for i in range(4)]
        results, _ = drive(executor, [make_job("echo_stdin", stdin=d) for d in datas])
    finally:
        executor.close()
    assert [(r.retired, r.stdout) for r in results] == [(True, d) for d in datas]
