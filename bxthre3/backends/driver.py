"""One DAG's bookkeeping when another engine (Dask, Ray) runs its tasks: which task may start, what a
finished attempt means, the retry policy, and the same summary and results shapes the controller sends.

Pure: no I/O, no clocks (callers pass `now`), nothing of Dask or Ray. The engine-specific loop
(`dask_backend.py`) asks :meth:`DagRun.startable` for attempts to submit, reports each outcome with
:meth:`DagRun.finished`, and shows :meth:`DagRun.summary` in the CLI's progress bar; `bxthre3 run` prints
:meth:`DagRun.results` with the renderer it uses for the default backend, so outputs, `--json` and exit
codes come out the same.

The retry policy is the scheduler's (`scheduler/core.py` `_fail_or_retry`, `_retry_later`): a failure
whose reason is retryable (`FailureReason.retryable`: not invalid_module, memory_limit, output_limit,
input_limit, missing_input) runs again while the task's `retries` (else the default, 3) last, after an
exponential backoff with jitter; anything else fails the task and everything downstream of it. An attempt
lost with its worker (`host_lost`) runs again at once without using up `retries`, up to `max_host_losses`
(`_requeue_lost`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..common.digests import sha256_hex
from ..common.failures import FailureReason
from ..dag.spec import DagSpec, InputKind, TaskFile, TaskInput, TaskSpec
from ..scheduler.core import SchedulerConfig

JSON_FORMAT = 1
"""As `controller.views.JSON_FORMAT` (the shape `results --json` documents)."""

TERMINAL = frozenset({"succeeded", "failed", "upstream_failed", "cancelled"})
STATES = ("pending", "ready", "running", "succeeded", "failed", "upstream_failed", "retrying", "cancelled")


@dataclass(frozen=True, slots=True)
class AttemptSpec:
    """Everything one attempt needs but its module bytes and its upstream results.

    An object, not a dict or tuple: Dask looks inside containers passed to `submit` for futures (and, in
    older versions, for strings equal to a key); it passes other objects through untouched."""

    task_id: str
    attempt: int
    module_sha: str
    args: tuple[str, ...]
    stdin_inputs: tuple[TaskInput, ...]
    files: tuple[TaskFile, ...]
    upstream_ids: tuple[str, ...]
    """The task ids whose results follow the spec as arguments, in this order."""
    timeout_s: float
    ram_mb: int
    """The memory cap of the module's linear memory (a host's `--ram-limit`)."""
    engine: str
    deterministic: bool = False
    memory_mb: int = 0
    """The task's `memory:` (0: none): what the engine should reserve on the worker that runs it, where it can."""


@dataclass(slots=True)
class _Task:
    spec: TaskSpec
    reads: tuple[str, ...]
    """Upstream tasks whose outputs it reads (its stdin inputs and `/in` files), each once, in first-use order."""
    waiting_on: int
    state: str = "pending"
    attempt: int = 0
    failures: int = 0
    host_losses: int = 0
    not_before: float = 0.0
    started_at: float | None = None
    attempt_started_at: float = 0.0
    finished_at: float | None = None
    outcome: dict[str, Any] | None = None
    node_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


_SCHEDULER = SchedulerConfig()


@dataclass(frozen=True, slots=True)
class Policy:
    """What a controller's `SchedulerConfig` and a host's settings decide, for a run on another engine; the
    retry defaults are the scheduler's own, so a DAG retries alike on every backend."""

    engine: str
    ram_mb: int = 128
    """The module's memory cap (a host's `--ram-limit`); a task's `memory:` raises it for that task."""
    default_timeout: float = _SCHEDULER.default_timeout
    default_retries: int = _SCHEDULER.default_retries
    retry_backoff: float = _SCHEDULER.retry_backoff
    retry_backoff_max: float = _SCHEDULER.retry_backoff_max
    retry_jitter: float = _SCHEDULER.retry_jitter
    max_host_losses: int = _SCHEDULER.max_host_losses


class DagRun:
    def __init__(
        self, spec: DagSpec, dag_id: str, policy: Policy, now: float, rng: Callable[[], float] = lambda: 0.5
    ) -> None:
        self.spec = spec
        self.dag_id = dag_id
        self.policy = policy
        self.rng = rng
        self.submitted_at = now
        self.ended_at: float | None = None
        self.failures: dict[str, int] = {}
        self.cancel_requested = False
        """Set from any thread (the Python API's `DagHandle.cancel`); the engine's loop, on its own thread,
        sees it at its next turn and calls :meth:`cancel` (the run is only ever changed by that thread)."""
        self.cancelled = False
        self.tasks: dict[str, _Task] = {}
        self.counts = dict.fromkeys(STATES, 0)
        """Tasks per state, kept as states change: a turn of the engine's loop costs what changed, not
        a walk over every task (a 10,000-task DAG has hundreds of turns)."""
        self._ready: list[_Task] = []
        self._retrying: dict[str, _Task] = {}
        self.dependents: dict[str, list[str]] = {t.id: [] for t in spec.tasks}
        for t in spec.tasks:
            sources = [i.value for i in t.sources if i.kind is InputKind.OUTPUT]
            reads = tuple(dict.fromkeys(sources))
            deps = set(t.depends_on) | set(reads)
            for d in deps:
                self.dependents[d].append(t.id)
            task = self.tasks[t.id] = _Task(t, reads, len(deps))
            self.counts["pending"] += 1
            if not deps:
                self._move(task, "ready")

    def _move(self, task: _Task, state: str) -> None:
        """The one place a task changes state: the counts, the ready list and the retrying set follow."""
        self.counts[task.state] -= 1
        self.counts[state] += 1
        if task.state == "retrying":
            del self._retrying[task.spec.id]
        task.state = state
        if state == "ready":
            self._ready.append(task)
        elif state == "retrying":
            self._retrying[task.spec.id] = task

    # ------------------------------------------------------------------ what to run

    def startable(self, now: float) -> list[AttemptSpec]:
        """Attempts to submit now (ready tasks, and retrying ones whose backoff is over); marks them running."""
        out = []
        for task in [t for t in self._retrying.values() if t.not_before <= now]:
            self._move(task, "ready")
        ready, self._ready = self._ready, []
        for task in ready:
            if task.state != "ready":  # cancelled meanwhile
                continue
            self._move(task, "running")
            task.attempt += 1
            task.attempt_started_at = now
            if task.started_at is None:
                task.started_at = now
            spec = task.spec
            out.append(
                AttemptSpec(
                    task_id=spec.id,
                    attempt=task.attempt,
                    module_sha=spec.module,
                    args=spec.args,
                    stdin_inputs=spec.stdin_inputs,
                    files=spec.files,
                    upstream_ids=task.reads,
                    timeout_s=spec.timeout if spec.timeout is not None else self.policy.default_timeout,
                    ram_mb=max(self.policy.ram_mb, spec.memory or 0),
                    engine=self.policy.engine,
                    deterministic=spec.verify > 1,
                    memory_mb=spec.memory or 0,
                )
            )
        return out

    def unneeded_outputs(self, task_id: str) -> list[str]:
        """Tasks whose outputs no attempt will read any more, now that `task_id` ended: its upstream tasks
        whose dependents have all ended, and itself if nothing depends on it. The engine may drop its copies
        of those (the driver keeps each outcome it was given)."""
        task = self.tasks[task_id]
        if task.state not in TERMINAL:
            return []
        candidates = [*task.reads, task_id] if task.state == "succeeded" else list(task.reads)
        return [
            u
            for u in candidates
            if self.tasks[u].state == "succeeded" and all(self.tasks[d].state in TERMINAL for d in self.dependents[u])
        ]

    def cancel_if_requested(self, now: float) -> bool:
        """Called by the engine's loop at each turn: cancels the run if another thread asked for it (True then)."""
        if not self.cancel_requested or self.done:
            return False
        self.cancel(now)
        return True

    def wait_at_most(self, now: float, longest: float) -> float:
        """How long the engine's loop may wait for an attempt to end: `longest`, less when a backoff ends sooner."""
        wakeup = self.next_wakeup()
        return longest if wakeup is None else max(0.0, min(longest, wakeup - now))

    def next_wakeup(self) -> float | None:
        """When the earliest backoff ends (None: no task waits out one)."""
        return min((t.not_before for t in self._retrying.values()), default=None)

    # ------------------------------------------------------------------ what happened

    def finished(self, task_id: str, attempt: int, outcome: dict[str, Any], node_id: str | None, now: float) -> None:
        """An attempt ended (`outcome` as `worker_side.run_attempt` returns it, or made up by the backend)."""
        task = self.tasks[task_id]
        if task.state != "running" or attempt != task.attempt:
            return  # stale: cannot happen with one attempt at a time, kept for backends that race
        reason = FailureReason(outcome["reason"]) if outcome.get("reason") else None
        task.node_id = node_id
        task.outcome = outcome
        task.history.append(
            {
                "attempt": attempt,
                "node_id": node_id or "",
                "reason": outcome.get("reason"),
                "error": outcome.get("error", ""),
            }
        )
        if reason is None:
            self._move(task, "succeeded")
            task.finished_at = now
            for child_id in self.dependents[task_id]:
                child = self.tasks[child_id]
                child.waiting_on -= 1
                if child.waiting_on == 0 and child.state == "pending":
                    self._move(child, "ready")
        elif reason is FailureReason.HOST_LOST:  # as the scheduler's _requeue_lost: at once, retries untouched
            task.host_losses += 1
            if task.host_losses > self.policy.max_host_losses:
                outcome["error"] = (
                    f"lost {task.host_losses} attempts with their workers; last: {outcome.get('error', '')}"
                )
                self._fail(task, reason, now)
            else:
                self._move(task, "ready")
        else:
            retries = task.spec.retries if task.spec.retries is not None else self.policy.default_retries
            if reason.retryable and task.failures < retries:
                task.failures += 1
                p = self.policy
                delay = min(p.retry_backoff_max, p.retry_backoff * 2 ** (task.failures - 1))
                delay *= 1 + p.retry_jitter * (2 * self.rng() - 1)
                task.not_before = now + max(0.0, delay)
                self._move(task, "retrying")
            else:
                self._fail(task, reason, now)
        if self.done and self.ended_at is None:
            self.ended_at = now

    def cancel(self, now: float) -> None:
        """Stop the run: every task not ended yet is cancelled (outcomes of attempts still out are ignored)."""
        for task in self.tasks.values():
            if task.state not in TERMINAL:
                self._move(task, "cancelled")
                task.finished_at = now
        self.cancelled = True
        if self.ended_at is None:
            self.ended_at = now

    def _fail(self, task: _Task, reason: FailureReason, now: float) -> None:
        self._move(task, "failed")
        task.finished_at = now
        self.failures[reason.value] = self.failures.get(reason.value, 0) + 1
        stack = list(self.dependents[task.spec.id])
        while stack:
            child = self.tasks[stack.pop()]
            if child.state == "pending":
                self._move(child, "upstream_failed")
                child.finished_at = now
                child.outcome = {"error": f"upstream task '{task.spec.id}' failed"}  # the controller's words
                stack.extend(self.dependents[child.spec.id])

    # ------------------------------------------------------------------ views

    @property
    def done(self) -> bool:
        return sum(self.counts[s] for s in TERMINAL) == len(self.tasks)

    @property
    def state(self) -> str:
        if not self.done:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "failed" if self.counts["failed"] or self.counts["upstream_failed"] else "succeeded"

    def summary(self, now: float) -> dict[str, Any]:
        """A `DagSummary` (controller/views.py), for the progress bar."""
        counts = dict(self.counts)
        end = self.ended_at if self.ended_at is not None else now
        return {
            "dag_id": self.dag_id, "name": self.spec.name, "state": self.state, "total": len(self.tasks),
            "done": sum(counts[s] for s in TERMINAL), "counts": counts, "failures": dict(self.failures),
            "elapsed_s": round(end - self.submitted_at, 3), "priority": self.spec.priority, "share": 0.0,
        }  # fmt: skip

    def results(self, now: float, with_files: bool = False) -> dict[str, Any]:
        """A `ResultsView` with every task and its output, as `bxthre3 results` gets from a controller."""
        return {
            "format": JSON_FORMAT,
            **self.summary(now),
            "tasks": [self._task_view(t, with_files, now) for t in self.tasks.values()],
        }

    @staticmethod
    def _task_view(task: _Task, with_files: bool, now: float) -> dict[str, Any]:
        o = task.outcome or {}
        ok = task.state == "succeeded"
        files = []
        for name in sorted(o.get("files") or {}) if ok else []:
            data = o["files"][name]
            entry: dict[str, Any] = {"name": name, "size": len(data), "sha256": sha256_hex(data)}
            if with_files:
                entry["data"] = data
            files.append(entry)
        return {
            "task_id": task.spec.id,
            "state": task.state,
            "module": task.spec.module_name,
            "node_id": task.node_id,
            "attempts": task.attempt,
            "recorded": 1 if task.state in ("succeeded", "failed") else 0,
            "duration_s": round(float(o.get("duration", 0.0)), 6),
            "finished_at": task.finished_at,
            "exit_code": o.get("exit_code"),
            "reason": o.get("reason") if not ok else None,
            "error": o.get("error", "") if not ok else "",
            "memory_mb": task.spec.memory,
            "verify": task.spec.verify,
            "speculate": task.spec.speculate,
            "cached": False,
            "running_s": round(now - task.attempt_started_at, 3) if task.state == "running" else None,
            "history": list(task.history),
            "output": o.get("stdout") if ok else None,
            "stderr": o.get("stderr", b""),
            "files": files,
        }
