"""Progress of a wait, and why a stalled DAG waits: real scheduler snapshots, a clock passed in."""

from __future__ import annotations

import hashlib
import io

import pytest
from rich.console import Console

from bxthre3.cli import build_parser
from bxthre3.client.progress import STALL_NOTICE_S, DagProgress, StallWatch, describe_stall
from bxthre3.common.failures import FailureReason
from bxthre3.controller.views import dag_summary, results_view, status_view
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.scheduler import DagSubmitted, HostJoined, HostSeen, Scheduler, SchedulerConfig, TaskFinished
from bxthre3.scheduler.instructions import Assign

MODULE = b"\x00asm\x01\x00\x00\x00"
SHA = hashlib.sha256(MODULE).hexdigest()


def spec(tid: str, *deps: str, memory: int | None = None) -> TaskSpec:
    return TaskSpec(id=tid, module=SHA, module_name="m.wasm", depends_on=deps, memory=memory)


def stuck_cluster() -> tuple[Scheduler, list[Assign]]:
    """One 128 MB host with 2 slots: 'forever' runs, 'flaky' failed once and backs off, 'huge' needs
    512 MB, 'after' waits for 'forever'."""
    s = Scheduler(SchedulerConfig(retry_backoff=60.0, retry_jitter=0.0), rng=lambda: 0.5)
    dag = DagSpec(
        name="stuck",
        tasks=(spec("forever"), spec("flaky"), spec("huge", memory=512), spec("after", "forever")),
        modules={SHA: MODULE},
    )
    s.handle(DagSubmitted("d1", dag, 0.0))
    out = s.handle(HostJoined("h1", "phone-1", 2, 128, 0.0))
    assigns = [i for i in out if isinstance(i, Assign)]
    flaky = next(a for a in assigns if a.task_id == "flaky")
    s.handle(
        TaskFinished("h1", "d1", "flaky", flaky.attempt, 1.0, exit_code=3, reason=FailureReason.EXIT_CODE, error="boom")
    )
    return s, assigns


def snapshots(s: Scheduler, now: float) -> tuple[dict, dict]:
    return results_view(s.dags["d1"], s, now, with_output=False, limit=50), status_view(s, now)


def test_a_stall_names_running_tasks_with_hosts_and_times_and_why_the_others_wait() -> None:
    s, _ = stuck_cluster()
    s.handle(HostSeen("h1", 12.0))
    results, status = snapshots(s, 12.5)
    assert describe_stall(results, status, 11.0) == [
        "no progress for 11 s (0/4 done); waiting on:",
        "  running: forever on phone-1 for 12 s",
        "  1 ready: needs 512 MB; the largest host offers 128 MB",
        "  retrying after a failure: flaky (exit_code: boom)",
        "  1 pending: their upstream tasks have not finished",
    ]


def test_a_stall_says_when_the_running_tasks_host_went_silent_or_every_slot_is_busy() -> None:
    s, _ = stuck_cluster()
    s.handle(DagSubmitted("d2", DagSpec(name="more", tasks=(spec("x"), spec("y")), modules={SHA: MODULE}), 2.0))
    results, status = snapshots(s, 9.0)  # h1 last heard at 1.0, with flaky's failure
    lines = describe_stall(results, status, 8.0)
    assert lines[1] == "  running: forever on phone-1 for 9.0 s (host silent for 8.0 s)"
    other = results_view(s.dags["d2"], s, 9.0, with_output=False, limit=50)
    assert describe_stall(other, status, 8.0)[1:] == [
        "  running: x on phone-1 for 7.0 s (host silent for 8.0 s)",  # it took flaky's place
        "  1 ready: every slot is busy (2 running on 2 slots)",
    ]


def test_no_host_at_all_is_said_plainly() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d1", DagSpec(name="lonely", tasks=(spec("t"),), modules={SHA: MODULE}), 0.0))
    results, status = snapshots(s, 15.0)
    assert describe_stall(results, status, 15.0) == [
        "no progress for 15 s (0/1 done); waiting on:",
        "  1 ready: no host is registered with the controller",
    ]


def test_the_stall_watch_speaks_after_ten_quiet_seconds_then_every_thirty_and_never_once_it_moves() -> None:
    s, assigns = stuck_cluster()
    watch = StallWatch()
    assert STALL_NOTICE_S == watch.after == 10.0
    snap = dag_summary(s.dags["d1"], 2.0)
    said = [t for t in (2.0, 5.0, 11.9, 12.0, 13.0, 41.9, 42.0, 60.0) if watch.update(snap, t)]
    assert said == [12.0, 42.0]
    forever = next(a for a in assigns if a.task_id == "forever")
    s.handle(TaskFinished("h1", "d1", "forever", forever.attempt, 70.0, output=b""))
    moved = dag_summary(s.dags["d1"], 70.0)
    assert [t for t in (70.0, 79.0, 80.5) if watch.update(moved, t)] == [80.5], "a change starts the count again"
    finished = {**moved, "state": "failed"}
    assert [t for t in (90.0, 200.0) if watch.update(finished, t)] == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_progress_is_plain_lines_and_a_stall_is_explained() -> None:
    s, _ = stuck_cluster()
    clock = Clock()
    plain = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=False)
    asked: list[float] = []

    def explain(idle: float) -> list[str]:
        asked.append(idle)
        return describe_stall(*snapshots(s, clock.now), idle)

    with DagProgress("stuck", 4, console, explain=explain, clock=clock, plain=plain) as progress:
        for clock.now in (0.5, 1.0, 6.0, 10.0, 10.6, 11.0, 30.0):
            s.handle(HostSeen("h1", clock.now))
            progress.update(dag_summary(s.dags["d1"], clock.now))
    assert asked == [10.1]
    lines = plain.getvalue().splitlines()
    assert lines[0] == "stuck: 0/4 done, 1 running"
    assert lines[1:3] == ["no progress for 10 s (0/4 done); waiting on:", "  running: forever on phone-1 for 11 s"]
    assert "\x1b" not in plain.getvalue() and console.file.getvalue() == ""  # type: ignore[attr-defined]


def test_on_a_terminal_the_bar_says_how_long_nothing_moved_and_the_explanation_prints_above_it() -> None:
    s, _ = stuck_cluster()
    clock = Clock()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system=None)

    def explain(idle: float) -> list[str]:
        return describe_stall(*snapshots(s, clock.now), idle)

    with DagProgress("stuck", 4, console, explain=explain, clock=clock) as progress:
        for clock.now in (0.5, 11.0):
            s.handle(HostSeen("h1", clock.now))
            progress.update(dag_summary(s.dags["d1"], clock.now))
    text = out.getvalue()
    assert "no progress for 10 s (0/4 done); waiting on:" in text
    assert "running: forever on phone-1 for 11 s" in text
    assert "1 running, no progress for 10 s" in text  # the bar's own detail column


@pytest.mark.parametrize("command", [["run", "x.yaml"], ["submit", "x.yaml", "--wait"], ["retry", "dag-1", "--wait"]])
def test_the_stall_notice_threshold_is_an_option_of_every_wait(command: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(command).stall_notice == STALL_NOTICE_S
    assert parser.parse_args([*command, "--stall-notice", "2.5"]).stall_notice == 2.5
    for refused in ("0", "-1", "nan", "soon"):
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--stall-notice", refused])
