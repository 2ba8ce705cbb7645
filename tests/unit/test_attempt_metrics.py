"""Every attempt that ends is reported once, with its outcome and its host's engine; the histogram keeps them apart."""

from __future__ import annotations

import hashlib

from bxthre3 import __version__
from bxthre3.common.failures import FailureReason
from bxthre3.controller.metrics import Metrics
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.scheduler import (
    Assign,
    AttemptEnded,
    DagCancelled,
    DagSubmitted,
    HostJoined,
    HostLeft,
    Scheduler,
    SchedulerConfig,
    TaskFinished,
)

MODULE = b"\x00asm\x01\x00\x00\x00"
SHA = hashlib.sha256(MODULE).hexdigest()


def one_task_dag(retries: int = 3) -> DagSpec:
    return DagSpec(name="m", tasks=(TaskSpec(id="t", module=SHA, module_name="m.wasm", retries=retries),),
                   modules={SHA: MODULE})  # fmt: skip


def ended(instructions: list) -> list[AttemptEnded]:
    return [i for i in instructions if isinstance(i, AttemptEnded)]


def assign(instructions: list) -> Assign:
    [a] = [i for i in instructions if isinstance(i, Assign)]
    return a


def scheduler_with_host(engine: str = "wasmtime") -> tuple[Scheduler, Assign]:
    s = Scheduler(SchedulerConfig(retry_backoff=0.0), rng=lambda: 0.5)
    s.handle(DagSubmitted("d", one_task_dag(), 0.0))
    return s, assign(s.handle(HostJoined("h1", "node-1", 1, 128, 0.0, engine=engine)))


def test_failed_then_succeeded_attempts_each_end_once_and_duplicates_do_not_count() -> None:
    s, a = scheduler_with_host()
    out = s.handle(TaskFinished("h1", "d", "t", a.attempt, 1.0, reason=FailureReason.TRAP, duration=0.25))
    assert ended(out) == [AttemptEnded("d", "t", 1, "trap", "wasmtime", 0.25)]
    again = s.handle(TaskFinished("h1", "d", "t", a.attempt, 1.1, reason=FailureReason.TRAP, duration=0.25))
    assert ended(again) == [], "a resent result is not a second attempt"
    b = assign(s.handle(HostJoined("h2", "node-2", 1, 128, 2.0, engine="wasm3")) + s.handle(HostLeft("h1", 2.0, "x")))
    out = s.handle(TaskFinished(b.host_id, "d", "t", b.attempt, 3.0, output=b"ok", duration=0.5))
    assert ended(out) == [AttemptEnded("d", "t", b.attempt, "succeeded", "wasm3", 0.5)]


def test_attempts_lost_with_their_host_or_cancelled_end_too() -> None:
    s, a = scheduler_with_host("wasm3")
    assert ended(s.handle(HostLeft("h1", 4.0, "silent"))) == [AttemptEnded("d", "t", 1, "host_lost", "wasm3", 4.0)]
    b = assign(s.handle(HostJoined("h2", "node-2", 1, 128, 5.0, engine="wasmtime")))
    assert ended(s.handle(DagCancelled("d", 7.5))) == [AttemptEnded("d", "t", b.attempt, "cancelled", "wasmtime", 2.5)]


def test_histogram_is_labelled_by_outcome_and_engine_and_ignores_nonsense_durations() -> None:
    metrics = Metrics(engine="wasm3")
    metrics.observe(0.2, outcome="succeeded", engine="wasmtime")
    metrics.observe(float("nan"), outcome="trap", engine="")
    metrics.observe(-5, outcome="trap", engine="")

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("bxthre3_attempt_duration_seconds_count", outcome="succeeded", engine="wasmtime") == 1
    assert sample("bxthre3_attempt_duration_seconds_count", outcome="trap", engine="unknown") == 2
    assert sample("bxthre3_attempt_duration_seconds_sum", outcome="trap", engine="unknown") == 0
    assert sample("bxthre3_build_info", version=__version__, engine="wasm3") == 1
