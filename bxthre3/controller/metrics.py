"""Prometheus metrics of the controller (`bxthre3 controller --metrics-port 9100`).

The controller's loop owns all state; the HTTP server runs in another thread. So the
loop publishes an immutable snapshot of the numbers every tick (one reference swap)
and the collector reads only that: a scrape never touches live scheduler state.
Attempt durations go to a thread-safe histogram as attempts end.

Names follow Prometheus conventions, all with the ``bxthre3_`` prefix: counters end in
``_total`` (the client adds it to a counter family's name), durations are in seconds, and a
"what is this" series ``bxthre3_build_info`` carries the version and engine as labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from ..scheduler import DagState, Scheduler, TaskState


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    tasks_by_state: dict[str, int] = field(default_factory=dict)
    dags_by_state: dict[str, int] = field(default_factory=dict)
    hosts: int = 0
    slots: int = 0
    queue_depth: int = 0
    retries_total: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_frames_total: int = 0
    succeeded_total: int = 0


def take_snapshot(scheduler: Scheduler, dropped_frames: int) -> MetricsSnapshot:
    tasks = {state.value: 0 for state in TaskState}
    dags = {state.value: 0 for state in DagState}
    for dag in scheduler.dags.values():
        dags[dag.state.value] += 1
        for state, n in dag.counts.items():
            tasks[state.value] += n
    return MetricsSnapshot(
        tasks_by_state=tasks,
        dags_by_state=dags,
        hosts=len(scheduler.hosts),
        slots=sum(h.slots for h in scheduler.hosts.values()),
        queue_depth=len(scheduler.ready),
        retries_total=scheduler.retries_total,
        failures_by_reason=dict(scheduler.failures_by_reason),
        dropped_frames_total=dropped_frames,
        succeeded_total=scheduler.total_succeeded,
    )


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = MetricsSnapshot()

    def collect(self) -> Iterator[Any]:
        s = self.snapshot
        tasks = GaugeMetricFamily("bxthre3_tasks", "Tasks of the DAGs held, by state", labels=["state"])
        for state, n in s.tasks_by_state.items():
            tasks.add_metric([state], n)
        yield tasks
        dags = GaugeMetricFamily("bxthre3_dags", "DAGs held, by state", labels=["state"])
        for state, n in s.dags_by_state.items():
            dags.add_metric([state], n)
        yield dags
        yield GaugeMetricFamily("bxthre3_hosts", "Registered hosts", value=s.hosts)
        yield GaugeMetricFamily("bxthre3_slots", "Task slots of the registered hosts", value=s.slots)
        yield GaugeMetricFamily("bxthre3_queue_depth", "Ready tasks waiting for a slot", value=s.queue_depth)
        yield CounterMetricFamily("bxthre3_task_retries", "Attempts retried after a failure", value=s.retries_total)
        yield CounterMetricFamily("bxthre3_tasks_succeeded", "Tasks succeeded since start", value=s.succeeded_total)
        failures = CounterMetricFamily("bxthre3_tasks_failed", "Tasks failed for good, by reason", labels=["reason"])
        for reason, n in sorted(s.failures_by_reason.items()):
            failures.add_metric([reason], n)
        yield failures
        yield CounterMetricFamily(
            "bxthre3_dropped_frames", "Malformed, unknown or unexpected frames dropped", value=s.dropped_frames_total
        )


ATTEMPT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, float("inf"))
"""Seconds: from a trivial task on wasmtime to the longest timeouts DAGs set."""


class Metrics:
    """Owns the registry and the HTTP endpoint; the controller calls ``publish`` and ``observe``."""

    def __init__(self, engine: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self._collector = _SnapshotCollector()
        self.registry.register(self._collector)
        # process_cpu_seconds_total, process_resident_memory_bytes, ...: the standard names every exporter uses,
        # so stock dashboards work (Linux /proc only;
        # elsewhere the collector yields nothing rather than failing a scrape).
        ProcessCollector(registry=self.registry)
        build = Gauge(
            "bxthre3_build_info", "Always 1; labels: this controller's version and the engine auto picks here",
            labelnames=["version", "engine"], registry=self.registry,
        )  # fmt: skip
        build.labels(version=__version__, engine=engine if engine is not None else _local_engine()).set(1)
        self.durations = Histogram(
            "bxthre3_attempt_duration_seconds",
            "Run time of every finished task attempt, by outcome (succeeded, cancelled or the failure reason) "
            "and the engine of its host",
            labelnames=["outcome", "engine"],
            buckets=ATTEMPT_BUCKETS,
            registry=self.registry,
        )
        self._server: Any = None

    def serve(self, port: int, host: str) -> int:
        """Start the endpoint; returns the bound port (port 0 picks one)."""
        self._server, thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def publish(self, snapshot: MetricsSnapshot) -> None:
        self._collector.snapshot = snapshot

    def observe(self, duration: float, *, outcome: str, engine: str) -> None:
        """One finished attempt. A host reports its own durations: nonsense (NaN, negative, infinite)
        is clamped rather than allowed to poison the histogram's sum."""
        if not math.isfinite(duration) or duration < 0:
            duration = 0.0
        self.durations.labels(outcome=outcome, engine=engine or "unknown").observe(duration)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _local_engine() -> str:
    """The engine `--engine auto` picks on this device ("none" when it cannot pick one)."""
    from ..common.errors import Bxthre3Error
    from ..wasm.choice import AUTO, resolve

    try:
        return resolve(AUTO)
    except Bxthre3Error:
        return "none"
