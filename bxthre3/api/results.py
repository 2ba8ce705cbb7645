"""What the API hands back: typed, frozen snapshots of a DAG and its tasks. Pure.

Built from the controller's replies (the `controller.views` shapes, docs/JSON.md), so nothing of
the wire format reaches the user: fields are attributes, outputs are bytes, named outputs a mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..controller.views import DagSummary, ResultsView, StatusView, TaskView

DAG_END_STATES = frozenset({"succeeded", "failed", "cancelled"})
TASK_END_STATES = frozenset({"succeeded", "failed", "upstream_failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class DagStatus:
    """A DAG's progress: `state` is running, succeeded, failed or cancelled."""

    id: str
    name: str
    state: str
    total: int
    done: int
    counts: Mapping[str, int]
    """Tasks per state: pending, ready, running, succeeded, failed, upstream_failed, retrying, cancelled."""
    failures: Mapping[str, int]
    """Tasks failed for good, per failure reason."""
    elapsed_s: float
    priority: int = 0

    @property
    def finished(self) -> bool:
        return self.state in DAG_END_STATES

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"

    @classmethod
    def from_view(cls, view: DagSummary) -> DagStatus:
        return cls(
            id=str(view["dag_id"]),
            name=str(view.get("name", "")),
            state=str(view["state"]),
            total=int(view.get("total", 0)),
            done=int(view.get("done", 0)),
            counts=MappingProxyType(dict(view.get("counts", {}))),
            failures=MappingProxyType(dict(view.get("failures", {}))),
            elapsed_s=float(view.get("elapsed_s", 0.0)),
            priority=int(view.get("priority", 0)),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a task: where it ran and how it ended (no reason nor error: it succeeded or runs)."""

    number: int
    node_id: str
    reason: str | None
    error: str


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One task of a DAG: its state and, once it succeeded, its stdout and named outputs (`/out` files)."""

    id: str
    state: str
    reason: str | None
    """The failure reason (README, "Limits and failure reasons"), or None."""
    error: str
    attempts: int
    exit_code: int | None
    node_id: str | None
    duration_s: float
    stdout: bytes = field(default=b"", repr=False)
    stderr: bytes = field(default=b"", repr=False)
    files: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    """Named outputs (`/out/<name>`) -> bytes; empty unless fetched (`results(files=True)`, the default)."""
    history: tuple[Attempt, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"

    @property
    def finished(self) -> bool:
        return self.state in TASK_END_STATES

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @classmethod
    def from_view(cls, view: TaskView, files: Mapping[str, bytes] | None = None) -> TaskResult:
        found = files if files is not None else {f["name"]: f["data"] for f in view.get("files", []) if "data" in f}
        return cls(
            id=str(view["task_id"]),
            state=str(view["state"]),
            reason=view.get("reason"),
            error=str(view.get("error", "")),
            attempts=int(view.get("attempts", 0)),
            exit_code=view.get("exit_code"),
            node_id=view.get("node_id"),
            duration_s=float(view.get("duration_s", 0.0)),
            stdout=bytes(view.get("output") or b""),
            stderr=bytes(view.get("stderr") or b""),
            files=MappingProxyType(dict(found)),
            history=tuple(
                Attempt(int(a["attempt"]), str(a["node_id"]), a.get("reason"), str(a.get("error", "")))
                for a in view.get("history", [])
            ),
        )


@dataclass(frozen=True, slots=True)
class DagResults:
    """A DAG's status and its tasks, in DAG order: ``results["init"].text``, ``for t in results``."""

    status: DagStatus
    tasks: Mapping[str, TaskResult]

    def __getitem__(self, task: object) -> TaskResult:
        """A task by id, or by the `Task` that `Dag.task` returned."""
        return self.tasks[task if isinstance(task, str) else str(getattr(task, "id", task))]

    def __iter__(self) -> Iterator[TaskResult]:
        return iter(self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def ok(self) -> bool:
        return self.status.ok

    @property
    def failed(self) -> list[TaskResult]:
        """The tasks that did not succeed: failed, upstream_failed or cancelled."""
        return [t for t in self.tasks.values() if t.finished and not t.ok]

    @classmethod
    def from_view(cls, view: ResultsView, files: Mapping[str, Mapping[str, bytes]] | None = None) -> DagResults:
        files = files or {}
        tasks = {str(t["task_id"]): TaskResult.from_view(t, files.get(str(t["task_id"]))) for t in view["tasks"]}
        return cls(DagStatus.from_view(view), MappingProxyType(tasks))


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The cluster as one machine: its hosts and slots, and its DAGs."""

    devices: int
    hosts: int
    slots: int
    running: int
    dags: tuple[DagStatus, ...]

    @classmethod
    def from_view(cls, view: StatusView) -> ClusterStatus:
        totals = view["totals"]
        return cls(
            devices=int(totals.get("devices", 0)),
            hosts=int(totals.get("hosts", 0)),
            slots=int(totals.get("slots", 0)),
            running=int(totals.get("running", 0)),
            dags=tuple(DagStatus.from_view(d) for d in view.get("dags", [])),
        )
