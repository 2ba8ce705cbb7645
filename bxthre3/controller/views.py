"""Read-only snapshots of scheduler state, as msgpack/JSON-friendly dicts.

The same shapes serve `bxthre3 status --json`, `results --json` and (later) the TUI, so
they live in one pure module and are documented by the tests that check them.
"""

from __future__ import annotations

import heapq
from typing import Any

from ..common.digests import sha256_hex
from ..scheduler import DagRecord, HostRecord, Scheduler, TaskRecord, TaskState
from ..wire.liveness import silence_limit

JSON_FORMAT = 1
"""Version of the `status` and `results` shapes (docs/JSON.md); bumped only when a field changes meaning or goes."""

def host_state(host: HostRecord, now: float, heartbeat_interval: float) -> str:
    """busy / idle, or silent once two heartbeats are missing (it is declared dead after `liveness`)."""
    if now - host.last_seen > 2 * heartbeat_interval:
        return "silent"
    if host.paused:
        return "paused"
    return "busy" if host.running else "idle"


def host_view(host: HostRecord, now: float, heartbeat_interval: float = 1.0, liveness: int = 3) -> dict[str, Any]:
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
        "state": host_state(host, now, heartbeat_interval),
        "paused": host.paused,
        "uptime_s": round(max(0.0, now - host.joined_at), 3),
        "rtt_ms": round(host.rtt.srtt * 1000, 1) if host.rtt.srtt is not None else None,
        "silence_limit_s": round(silence_limit(heartbeat_interval, liveness, host.rtt), 3),
    }


def counts_view(dag: DagRecord) -> dict[str, int]:
    return {state.value: dag.counts[state] for state in TaskState}


def dag_summary(dag: DagRecord, now: float) -> dict[str, Any]:
    end = dag.finished_at if dag.finished_at is not None else now
    return {
        "dag_id": dag.id,
        "name": dag.spec.name,
        "state": dag.state.value,
        "total": len(dag.tasks),
        "done": dag.done,
        "counts": counts_view(dag),
        "failures": dict(dag.failures),
        "elapsed_s": round(end - dag.submitted_at, 3),
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


def status_view(scheduler: Scheduler, now: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    beat = scheduler.config.heartbeat_interval
    hosts = [host_view(h, now, beat, scheduler.config.liveness) for h in scheduler.hosts.values()]
    devices: dict[str, dict[str, Any]] = {}
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
    return {
        "format": JSON_FORMAT,
        "totals": {
            "devices": len(devices),
            "hosts": len(hosts),
            "slots": sum(h.slots for h in scheduler.hosts.values()),
            "ram_mb": sum(h.ram_mb for h in scheduler.hosts.values()),
            "running": sum(len(h.running) for h in scheduler.hosts.values()),
            "ready": len(scheduler.ready),
            "dags": len(scheduler.dags),
            "succeeded": scheduler.total_succeeded,
            "failed": scheduler.total_failed,
            "tasks_per_s": round(scheduler.tasks_per_second(), 2),
        },
        "waiting": scheduler.waiting_reasons(),
        "hosts": hosts,
        "devices": devices,
        "dags": [dag_summary(d, now) for d in scheduler.dags.values()],
        **(extra or {}),
    }


def _waiting_for(task: TaskRecord, scheduler: Scheduler) -> str:
    need = task.spec.memory
    if task.state is not TaskState.READY or not need:
        return ""
    largest = max((h.ram_mb for h in scheduler.hosts.values()), default=0)
    if need <= largest:
        return ""
    return f"waiting: needs {need} MB; the largest host offers {largest} MB"


def files_view(task: TaskRecord, with_data: bool = False) -> list[dict[str, Any]]:
    """A task's named outputs by name: `name`, `size`, `sha256`, and with `with_data` the bytes.

    Digests are computed here, when someone asks, not when the result arrives: the controller's
    result path stays as cheap as it was, and `results` is not on any hot path."""
    if not task.files:
        return []
    out = []
    for name in sorted(task.files):
        data = task.files[name]
        entry: dict[str, Any] = {"name": name, "size": len(data), "sha256": sha256_hex(data)}
        if with_data:
            entry["data"] = data
        out.append(entry)
    return out


def task_view(
    task: TaskRecord, scheduler: Scheduler, with_output: bool, with_files: bool = False, now: float | None = None
) -> dict[str, Any]:
    last = task.attempts[-1] if task.attempts else None
    view: dict[str, Any] = {
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
) -> dict[str, Any]:
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
