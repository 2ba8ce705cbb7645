"""Read-only snapshots of scheduler state, as msgpack/JSON-friendly dicts.

The same shapes serve `bxthre3 status --json`, `results --json` and the TUI, so they live in one
pure module. Each shape is a TypedDict below: the contract between the controller that builds it,
the client that returns it and the CLI and TUI that read it (docs/JSON.md documents the fields;
`tests/integration/test_json_formats.py` checks both against each other and a live controller).
Bytes stay bytes on the wire; `--json` prints them as text or `{"base64": ...}`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import TypedDict

from ..common.digests import sha256_hex
from ..dag.structure import DagStructure, group_counts
from ..scheduler import DagRecord, DagState, HostRecord, QuarantineRecord, Scheduler, TaskRecord, TaskState
from ..scheduler.activity import HISTORY_S
from ..scheduler.model import AttemptRecord
from ..wire.liveness import silence_limit

JSON_FORMAT = 1
"""Version of the `status` and `results` shapes (docs/JSON.md); bumped only when a field changes meaning or goes."""


class HostView(TypedDict):
    """One of `status`'s `hosts`."""

    node_id: str
    device: str
    device_id: str
    platform: str
    engine: str
    ram_mb: int
    rss_mb: int
    slots: int
    running: list[str]
    succeeded: int
    failed: int
    recent: list[str]
    modules: int
    last_seen_s: float
    state: str
    paused: str
    uptime_s: float
    rtt_ms: float | None
    silence_limit_s: float
    speed: float
    """How fast it runs tasks against the cluster's reference (1.0; learned from the tasks it finished)."""
    quarantined: bool
    """Its device is quarantined: it gets no new tasks (`state` says `quarantined`)."""


class QuarantineView(TypedDict):
    """One of `status`'s `quarantined`, and the reply to `trust` (the device as it was)."""

    device_id: str
    device: str
    since: float
    mismatches: int
    reason: str
    node_ids: list[str]
    """Its hosts registered now (none while it is switched off)."""


class DeviceView(TypedDict):
    """One of `status`'s `devices`, keyed by device id."""

    name: str
    hosts: int
    slots: int
    ram_mb: int
    platform: str
    ram_total_mb: int
    cpus: int
    node_ids: list[str]


class Totals(TypedDict):
    """`status`'s `totals`: the cluster as one machine."""

    devices: int
    hosts: int
    slots: int
    ram_mb: int
    running: int
    ready: int
    dags: int
    succeeded: int
    failed: int
    tasks_per_s: float


class ControllerStats(TypedDict, total=False):
    """`status`'s `controller`: all of these in a reply to a status request, only `dropped_frames` in
    a pushed update."""

    dropped_frames: int
    auth_failures: int
    version: str
    submissions_validating: int
    journal_error: str | None


class DagSummary(TypedDict):
    """One of `status`'s `dags`, the reply to `progress` and `cancel`, and the top of `results`."""

    dag_id: str
    name: str
    state: str
    total: int
    done: int
    counts: dict[str, int]
    failures: dict[str, int]
    elapsed_s: float
    priority: int
    """Its `priority:` (or `--priority`); 0 when it has none."""
    share: float
    """Its running attempts over the cluster's slots (0.0 in replies other than `status`, or with no slot)."""


class RetriedSummary(DagSummary):
    """The reply to `retry`: the summary and how many tasks start again."""

    retried: int


class _StatusFromController(TypedDict, total=False):
    controller: ControllerStats
    """In replies and pushed updates; not in the status file's copy."""


class StatusView(_StatusFromController):
    """`bxthre3 status`: the whole cluster (also pushed to subscribers, and in the status file)."""

    format: int
    totals: Totals
    waiting: list[str]
    hosts: list[HostView]
    devices: dict[str, DeviceView]
    dags: list[DagSummary]
    quarantined: list[QuarantineView]


class _FileData(TypedDict, total=False):
    data: bytes
    """Only when asked for (`with_files`): named outputs can be 16 MiB each."""


class FileView(_FileData):
    """One of a task's `files`: a named output."""

    name: str
    size: int
    sha256: str


class AttemptView(TypedDict):
    """One of a task's `history`."""

    attempt: int
    node_id: str
    reason: str | None
    error: str


class _TaskOutputs(TypedDict, total=False):
    """Only with `with_output` (the TUI's task table asks without)."""

    output: bytes | None
    stderr: bytes
    files: list[FileView]


class TaskView(_TaskOutputs):
    """One of `results`' `tasks`."""

    task_id: str
    state: str
    module: str
    node_id: str | None
    attempts: int
    recorded: int
    duration_s: float
    finished_at: float | None
    exit_code: int | None
    reason: str | None
    error: str
    memory_mb: int | None
    verify: int
    speculate: bool
    cached: bool
    running_s: float | None
    history: list[AttemptView]


class CacheStats(TypedDict):
    """`bxthre3 cache stats|clear`: the controller's result cache."""

    entries: int
    bytes: int
    cap: int
    hits: int
    misses: int
    cleared: int
    enabled: bool
    in_memory: bool


class SegmentView(TypedDict):
    """One attempt on one host, in the task stream (`activity`)."""

    dag_id: str
    task_id: str
    start_ago_s: float
    """Seconds before the reply's `now` that it was given to the host (>= 0; may exceed `window_s`)."""
    end_ago_s: float | None
    """Seconds before `now` that it ended; None while it runs."""
    state: str
    """succeeded | failed | retrying | running | cancelled | aborted | lost | cached (`activity.SEGMENT_STATES`)."""


class HostActivity(TypedDict):
    """One host's part of `activity`."""

    busy: list[float]
    """Per bucket, oldest first: the mean fraction of its slots busy (0..1)."""
    segments: list[SegmentView]
    """Its latest <= 200 attempts overlapping the window, oldest first."""


class ActivityView(TypedDict):
    """`activity`: where the cluster's time went over the last `window_s` seconds (the monitor's task
    stream and sparklines), and the one rate figure."""

    window_s: float
    bucket_s: float
    throughput: list[int]
    """Tasks finished per bucket, oldest first; the last bucket is the current second."""
    tasks_per_s: float
    """The same number as `status()["totals"]["tasks_per_s"]`."""
    hosts: dict[str, HostActivity]
    """By node id: the hosts registered now."""


class GroupView(TypedDict):
    """One of `structure`'s `groups`: tasks of one family at one stage (`dag.structure`)."""

    name: str
    stage: int
    total: int
    counts: dict[str, int]
    """Task state -> n (non-zero only); `cached` counted apart from `succeeded`."""


class StructureView(TypedDict):
    """`structure`: a DAG's groups and stages, with task counts per group and state."""

    dag_id: str
    name: str
    stages: int
    groups: list[GroupView]
    edges: list[tuple[int, int]]


class ResultsView(DagSummary):
    """`bxthre3 results`: a DAG's summary, its format number and (some of) its tasks."""

    format: int
    tasks: list[TaskView]


def host_state(host: HostRecord, now: float, heartbeat_interval: float, quarantined: bool = False) -> str:
    """busy / idle / paused / quarantined (its device is), or silent once two heartbeats are missing
    (declared dead after its silence limit)."""
    if now - host.last_seen > 2 * heartbeat_interval:
        return "silent"
    if quarantined:
        return "quarantined"
    if host.paused:
        return "paused"
    return "busy" if host.running else "idle"


def host_view(
    host: HostRecord, now: float, heartbeat_interval: float = 1.0, liveness: int = 3, quarantined: bool = False
) -> HostView:
    return {
        "node_id": host.node_id,
        "device": host.device,
        "device_id": host.device_id,
        "platform": host.platform,
        "engine": host.engine,
        "ram_mb": host.ram_mb,
        "rss_mb": host.rss_mb,
        "slots": host.slots,
        "running": [f"{d}/{t}" for d, t in host.running],
        "succeeded": host.succeeded,
        "failed": host.failed,
        "recent": list(host.recent),
        "modules": len(host.modules),
        "last_seen_s": round(max(0.0, now - host.last_seen), 3),
        "state": host_state(host, now, heartbeat_interval, quarantined),
        "paused": host.paused,
        "uptime_s": round(max(0.0, now - host.joined_at), 3),
        "rtt_ms": round(host.rtt.srtt * 1000, 1) if host.rtt.srtt is not None else None,
        "silence_limit_s": round(silence_limit(heartbeat_interval, liveness, host.rtt), 3),
        "speed": round(host.speed, 2),
        "quarantined": quarantined,
    }


def quarantine_view(record: QuarantineRecord, hosts: Iterable[HostRecord]) -> QuarantineView:
    return {
        "device_id": record.device_id,
        "device": record.device,
        "since": record.since,
        "mismatches": record.mismatches,
        "reason": record.reason,
        "node_ids": [h.node_id for h in hosts if h.device_id == record.device_id],
    }


def counts_view(dag: DagRecord) -> dict[str, int]:
    return {state.value: dag.counts[state] for state in TaskState}


def dag_summary(dag: DagRecord, now: float, slots: int = 0) -> DagSummary:
    """``slots``: the cluster's slots, for `share` (0: share 0.0)."""
    end = dag.finished_at if dag.finished_at is not None else now
    running = dag.counts[TaskState.RUNNING]
    return {
        "dag_id": dag.id,
        "name": dag.spec.name,
        "state": dag.state.value,
        "total": len(dag.tasks),
        "done": dag.done,
        "counts": counts_view(dag),
        "failures": dict(dag.failures),
        "elapsed_s": round(end - dag.submitted_at, 3),
        "priority": dag.spec.priority,
        "share": round(running / slots, 3) if slots and dag.state is DagState.RUNNING else 0.0,
    }


MAX_FAILURES_LOGGED = 3
"""Failed tasks named one by one in the controller's "DAG … failed" line; the rest are counted."""


def dag_end_line(dag: DagRecord) -> str:
    """The controller's log line for a DAG that ended: which task(s) failed and why, not just "failed".

    Failed tasks come in the DAG's own order; each with its failure reason and the first line of its
    error (a module's text: escaped, and cut short so one line stays one line)."""
    from ..common.errors import printable

    line = f"DAG {dag.id} ({printable(dag.spec.name)}) {dag.state.value}"
    failed = [t for t in dag.tasks.values() if t.state is TaskState.FAILED]
    if failed:
        named = []
        for task in failed[:MAX_FAILURES_LOGGED]:
            reason = task.reason.value if task.reason is not None else "failed"
            error = printable((task.error or "").strip().split("\n")[0])[:160]
            named.append(f"{printable(task.spec.id)} ({reason}{': ' + error if error else ''})")
        more = len(failed) - len(named)
        line += ": task " + "; ".join(named) + (f"; and {more} more failed" if more > 0 else "")
    skipped = dag.counts.get(TaskState.UPSTREAM_FAILED, 0)
    if skipped:
        line += f"; {skipped} downstream task(s) not run"
    cancelled = dag.counts.get(TaskState.CANCELLED, 0)
    if cancelled:
        line += f"; {cancelled} task(s) cancelled"
    return line


def status_view(scheduler: Scheduler, now: float, controller: ControllerStats | None = None) -> StatusView:
    """The cluster's status; ``controller`` adds the controller's own figures (as its last field)."""
    beat, out = scheduler.config.heartbeat_interval, scheduler.quarantined
    hosts = [
        host_view(h, now, beat, scheduler.config.liveness, bool(out) and h.device_id in out)
        for h in scheduler.hosts.values()
    ]
    devices: dict[str, DeviceView] = {}
    for h in scheduler.hosts.values():
        # By device id: same-named devices (clones, one phone model) are still several devices.
        d = devices.setdefault(
            h.device_id or h.device or h.node_id,
            {"name": h.device or h.node_id, "hosts": 0, "slots": 0, "ram_mb": 0, "platform": h.platform,
             "ram_total_mb": h.device_ram_mb, "cpus": h.device_cpus, "node_ids": []},
        )  # fmt: skip
        d["node_ids"].append(h.node_id)
        d["hosts"] += 1
        d["slots"] += h.slots
        d["ram_mb"] += h.ram_mb
    slots = sum(h.slots for h in scheduler.hosts.values())
    view: StatusView = {
        "format": JSON_FORMAT,
        "totals": {
            "devices": len(devices),
            "hosts": len(hosts),
            "slots": slots,
            "ram_mb": sum(h.ram_mb for h in scheduler.hosts.values()),
            "running": sum(len(h.running) for h in scheduler.hosts.values()),
            "ready": len(scheduler.ready),
            "dags": len(scheduler.dags),
            "succeeded": scheduler.total_succeeded,
            "failed": scheduler.total_failed,
            "tasks_per_s": round(scheduler.tasks_per_second(now), 2),
        },
        "waiting": scheduler.waiting_reasons(),
        "hosts": hosts,
        "devices": devices,
        "dags": [dag_summary(d, now, slots) for d in scheduler.dags.values()],
        "quarantined": [quarantine_view(q, scheduler.hosts.values()) for q in out.values()],
    }
    if controller is not None:
        view["controller"] = controller
    return view


def _waiting_for(task: TaskRecord, scheduler: Scheduler) -> str:
    need = task.spec.memory
    if task.state is not TaskState.READY or not need:
        return ""
    largest = max((h.ram_mb for h in scheduler.hosts.values()), default=0)
    if need <= largest:
        return ""
    return f"waiting: needs {need} MB; the largest host offers {largest} MB"


def files_view(task: TaskRecord, with_data: bool = False) -> list[FileView]:
    """A task's named outputs by name: `name`, `size`, `sha256`, and with `with_data` the bytes.

    Digests are computed here, when someone asks, not when the result arrives: the controller's
    result path stays as cheap as it was, and `results` is not on any hot path."""
    if not task.files:
        return []
    out = []
    for name in sorted(task.files):
        data = task.files[name]
        entry: FileView = {"name": name, "size": len(data), "sha256": sha256_hex(data)}
        if with_data:
            entry["data"] = data
        out.append(entry)
    return out


def _shown_attempt(task: TaskRecord) -> AttemptRecord | None:
    """The attempt whose result was recorded -- not always the latest: a backup that lost its race, or a
    verified task's later replicas, ended after it -- else the latest one."""
    if task.state is TaskState.SUCCEEDED:
        for record in reversed(task.attempts):
            if record.ended_at is not None and record.reason is None and not record.error:
                return record
    return task.attempts[-1] if task.attempts else None


def task_view(
    task: TaskRecord, scheduler: Scheduler, with_output: bool, with_files: bool = False, now: float | None = None
) -> TaskView:
    last = _shown_attempt(task)
    view: TaskView = {
        "task_id": task.spec.id,
        "state": task.state.value,
        "module": task.spec.module_name,
        "node_id": last.node_id if last else None,
        "attempts": task.attempt,
        "recorded": task.recorded,
        "duration_s": round(task.duration, 6),
        "finished_at": task.finished_at,
        "exit_code": task.exit_code,
        "reason": task.reason.value if task.reason else None,
        "error": task.error or _waiting_for(task, scheduler),
        "memory_mb": task.spec.memory,
        "verify": task.spec.verify,
        "speculate": task.spec.speculate,
        "cached": task.cached,
        "running_s": (
            round(max(0.0, now - task.started_at), 3)
            if now is not None and task.state is TaskState.RUNNING and task.started_at is not None
            else None
        ),
        "history": [
            {
                "attempt": a.attempt,
                "node_id": a.node_id,
                "reason": a.reason.value if a.reason else None,
                "error": a.error,
            }
            for a in task.attempts
        ],
    }
    if with_output:
        view["output"] = task.output
        view["stderr"] = task.stderr
        view["files"] = files_view(task, with_files)
    return view


def results_view(
    dag: DagRecord,
    scheduler: Scheduler,
    now: float,
    with_output: bool = True,
    task_id: str = "",
    limit: int = 0,
    with_files: bool = False,
) -> ResultsView:
    """The DAG's summary and its tasks: all of them, only ``task_id`` (KeyError if unknown), or at
    most ``limit`` chosen by `pick_tasks` (a UI's table of a 100,000-task DAG needs a page, not all).
    ``with_files`` adds the bytes of each named output (with ``with_output``)."""
    if task_id:
        tasks: list[TaskRecord] = [dag.tasks[task_id]]
    elif limit > 0:
        tasks = pick_tasks(list(dag.tasks.values()), limit)
    else:
        tasks = list(dag.tasks.values())
    return {
        "format": JSON_FORMAT,
        **dag_summary(dag, now),
        "tasks": [task_view(t, scheduler, with_output=with_output, with_files=with_files, now=now) for t in tasks],
    }


_FINISHED_OK = frozenset({TaskState.SUCCEEDED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED})
"""Finished and not failed: the tasks that make room for the others when a DAG is big."""

_STATE_RANK = {TaskState.RUNNING: 0, TaskState.RETRYING: 1, TaskState.FAILED: 2, TaskState.READY: 3}


def pick_tasks(tasks: list[TaskRecord], limit: int) -> list[TaskRecord]:
    """At most ``limit`` tasks in DAG order: unfinished and failed first (running, retrying, failed,
    ready, pending), then the most recently finished."""
    if len(tasks) <= limit:
        return tasks

    def rank(item: tuple[int, TaskRecord]) -> tuple[int, float, int]:
        i, task = item
        if task.state in _FINISHED_OK:
            return (1, -(task.finished_at or 0.0), i)
        return (0, _STATE_RANK.get(task.state, 4), i)

    chosen = heapq.nsmallest(limit, enumerate(tasks), key=rank)
    chosen.sort(key=lambda item: item[0])
    return [task for _, task in chosen]


ACTIVITY_MAX_WINDOW_S = float(HISTORY_S)
"""The longest `activity` window: the recorder keeps this much per-second history."""

ACTIVITY_BUCKET_S = 1.0


def activity_window(asked: object) -> float:
    """The window an `activity` request gets: whole seconds, at least 1, at most ACTIVITY_MAX_WINDOW_S
    (longer is capped: the reply's `window_s` says what was given). ValueError, one line, otherwise."""
    if type(asked) not in (int, float) or not math.isfinite(asked):  # type: ignore[arg-type]
        raise ValueError(f"activity: window_s must be a number of seconds, not {str(asked)[:40]!r}")
    if asked < 1:  # type: ignore[operator]
        raise ValueError(f"activity: window_s must be at least 1 second (got {asked:g})")
    return float(min(ACTIVITY_MAX_WINDOW_S, math.ceil(asked)))  # type: ignore[call-overload]


def activity_view(scheduler: Scheduler, now: float, window_s: float) -> ActivityView:
    """Throughput, busy fractions and attempt segments of the registered hosts over the last `window_s`
    seconds (a value `activity_window` returned), in one-second buckets, the last being the current one."""
    recorder = scheduler.activity
    buckets = int(window_s / ACTIVITY_BUCKET_S)
    hosts: dict[str, HostActivity] = {}
    for host in scheduler.hosts.values():
        node = host.node_id
        hosts[node] = {
            "busy": [round(b, 3) for b in recorder.busy(node, now, buckets)],
            "segments": [
                {
                    "dag_id": seg.dag_id,
                    "task_id": seg.task_id,
                    "start_ago_s": round(max(0.0, now - seg.start), 3),
                    "end_ago_s": None if seg.end is None else round(max(0.0, now - seg.end), 3),
                    "state": seg.state,
                }
                for seg in recorder.segments(node, now, window_s)
            ],
        }
    return {
        "window_s": window_s,
        "bucket_s": ACTIVITY_BUCKET_S,
        "throughput": recorder.throughput(now, buckets),
        "tasks_per_s": round(scheduler.tasks_per_second(now), 2),
        "hosts": hosts,
    }


def structure_view(dag: DagRecord, structure: DagStructure) -> StructureView:
    """The DAG's groups (`structure`, computed once per DAG by `dag_structure`) with each group's task
    counts by state now: one pass over the tasks (~15 ms for 100,000)."""
    tasks = dag.tasks.values()
    counts = group_counts(structure, (t.state for t in tasks), (t.cached for t in tasks))
    return {
        "dag_id": dag.id,
        "name": dag.spec.name,
        "stages": structure.stages,
        "groups": [
            {"name": g.name, "stage": g.stage, "total": g.total, "counts": c}
            for g, c in zip(structure.groups, counts, strict=True)
        ],
        "edges": list(structure.edges),
    }
