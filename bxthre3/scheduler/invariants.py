"""The scheduler's invariants, checked on demand: what must hold between any two events.

`Scheduler.validate` runs this after every event in the tests (as dask's `validate_state`
does), so a transition that leaves the records inconsistent fails the test that made it,
not a later one that trips over it. The controller never calls it: it walks every task.

The rules follow from the transitions in `core.py`. Two kinds of stale entry are allowed,
because the scheduler deliberately leaves them behind rather than search for them:
- the ready queue and the retry heap may hold entries for tasks no longer READY / RETRYING
  (adopted while queued, retried after a cancel, of a forgotten DAG): dispatch and `Tick` skip
  them, and an adopted task requeued later is queued twice. A cancel empties the ready queue of
  its DAG (those entries counted as waiting work), so it holds no cancelled task;
- `serving` (tasks waiting for the shell's answer from the result cache) may hold tasks no longer READY
  (adopted, cancelled, of a forgotten DAG): the answer is then ignored;
- a host's `running` may hold attempts that are no longer the task's live one (superseded, or
  taken back from this wedged host as lost): the slot stays counted as busy until it answers.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from ..common.failures import FailureReason
from .model import DagRecord, DagState, TaskState

if TYPE_CHECKING:
    from .core import Scheduler


class InvariantError(AssertionError):
    """The scheduler's records contradict each other; the message lists every rule broken."""


_MAX_LISTED = 20
"""Problems listed in one error: one bad transition can break a rule for thousands of tasks."""

"""States in which no host holds the task's live attempt (its `host_id` is None)."""

_RESTARTABLE = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED})
"""End states a DAG retry starts again: a PENDING task never depends on one (it would have ended too)."""


def check(scheduler: Scheduler) -> None:
    """Raise `InvariantError` naming every broken rule; return None when all hold."""
    problems: list[str] = []
    queued = Counter(scheduler.ready)
    delayed = {(dag_id, task_id, not_before) for not_before, dag_id, task_id in scheduler.delayed}
    for dag in scheduler.dags.values():
        _check_dag(scheduler, dag, queued, delayed, problems)
    for dag_id, task_id in queued:
        owner = scheduler.dags.get(dag_id)
        task = owner.tasks.get(task_id) if owner else None
        if task is not None and task.state is TaskState.CANCELLED:
            problems.append(f"ready queue: holds {dag_id}/{task_id}, which is cancelled")
    if len(scheduler.ready) != queued.total():
        problems.append(f"ready queue: says it holds {len(scheduler.ready)}, but holds {queued.total()}")
    per_dag = Counter(dag_id for dag_id, _ in queued.elements())
    for dag_id in set(per_dag) | set(scheduler.ready.dag_ids()):
        if scheduler.ready.queued(dag_id) != per_dag[dag_id]:
            problems.append(
                f"ready queue: says {scheduler.ready.queued(dag_id)} of {dag_id} wait, but holds {per_dag[dag_id]}"
            )
    _check_hosts(scheduler, problems)
    _check_limbo(scheduler, problems)
    _check_activity(scheduler, problems)
    if problems:
        shown = problems[:_MAX_LISTED]
        more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise InvariantError("scheduler invariants broken:\n  " + "\n  ".join(shown) + more)


def _check_dag(
    scheduler: Scheduler,
    dag: DagRecord,
    queued: Counter[tuple[str, str]],
    delayed: set[tuple[str, str, float]],
    problems: list[str],
) -> None:
    name = f"DAG {dag.id}"
    actual = Counter(task.state for task in dag.tasks.values())
    if +dag.counts != actual or any(n < 0 for n in dag.counts.values()):
        problems.append(f"{name}: counts {_states(dag.counts)} but its tasks are {_states(actual)}")
    failures = Counter(
        (task.reason.value if task.reason else FailureReason.INTERNAL.value)
        for task in dag.tasks.values()
        if task.state is TaskState.FAILED
    )
    if +dag.failures != failures:
        problems.append(f"{name}: failures by reason {dict(+dag.failures)} but its failed tasks say {dict(failures)}")
    all_ended = all(task.state.terminal for task in dag.tasks.values())
    if dag.state is DagState.RUNNING:
        if all_ended:
            problems.append(f"{name}: running, but every task has ended")
        if dag.finished_at is not None:
            problems.append(f"{name}: running, but has a finish time")
    else:
        if not all_ended:
            problems.append(f"{name}: {dag.state.value}, but has tasks not ended: {_states(actual)}")
        if dag.finished_at is None:
            problems.append(f"{name}: {dag.state.value}, but has no finish time")
        all_ok = actual[TaskState.SUCCEEDED] == len(dag.tasks)
        if (dag.state is DagState.SUCCEEDED) != all_ok and dag.state is not DagState.CANCELLED:
            problems.append(f"{name}: {dag.state.value}, but its tasks are {_states(actual)}")
    succeeded = TaskState.SUCCEEDED
    tasks = dag.tasks
    for task_id, task in tasks.items():
        state = task.state
        deps = task.spec.depends_on
        if len(deps) > 1:
            deps = tuple(set(deps))
        not_done = sum(1 for dep in deps if tasks[dep].state is not succeeded)
        found: list[str] = []
        if task.waiting_on != not_done:
            found.append(f"waiting_on {task.waiting_on}, but {not_done} of its inputs are not done")
        if state is TaskState.PENDING:
            if not_done == 0:
                found.append("pending, but every task it depends on succeeded")
            ended = [dep for dep in deps if tasks[dep].state in _RESTARTABLE]
            if ended:
                found.append(f"pending, but depends on tasks that ended badly: {sorted(ended)}")
        elif state is TaskState.UPSTREAM_FAILED:
            if not_done == 0:
                found.append("every task it depends on succeeded")
        elif not_done and not state.terminal:
            found.append(f"started, but {not_done} of its inputs are not done")
        if task.live and state is not TaskState.RUNNING:
            found.append(f"not running, but attempts {sorted(task.live)} run")
        if task.votes and (state.terminal or task.spec.verify < 2):
            found.append(
                f"{len(task.votes)} replica votes are open, but it is {state.value} (verify: {task.spec.verify})"
            )
        if state is TaskState.READY and queued[dag.id, task_id] == 0 and (dag.id, task_id) not in scheduler.serving:
            found.append("ready, but neither in the ready queue nor waiting for the result cache")
        if task.cached and state is not succeeded:
            found.append("served from the result cache, but not succeeded")
        elif state is TaskState.RETRYING and (dag.id, task_id, task.not_before) not in delayed:
            found.append(f"retrying, but not in the retry heap at {task.not_before}")
        if state is TaskState.RUNNING:
            _check_running(scheduler, dag, task_id, found)
        elif scheduler.limbo and (dag.id, task_id) in scheduler.limbo:
            found.append("in limbo, but not running")
        if task.recorded:
            if task.recorded > 1:
                found.append(f"its end was recorded {task.recorded} times")
            elif not state.terminal:
                found.append("an end is recorded, but it has not ended")
        elif state is succeeded:
            found.append("succeeded, but its result is not recorded")
        if task.attempts:
            numbers = [a.attempt for a in task.attempts]
            if numbers != sorted(set(numbers)) or numbers[-1] > task.attempt:
                found.append(f"attempt {task.attempt}, but its attempt records are numbered {numbers}")
            open_ = sorted(a.attempt for a in task.attempts if a.ended_at is None)
            expected = sorted(task.live)
            if state is TaskState.RUNNING and not task.live:
                expected = [task.attempt]  # in limbo: its latest attempt waits to be claimed
            if open_ != expected:
                found.append(f"attempts {open_} have not ended, but attempts {expected} run")
        if found:
            problems.extend(f"task {dag.id}/{task_id} ({state.value}): {p}" for p in found)


def _check_running(scheduler: Scheduler, dag: DagRecord, task_id: str, found: list[str]) -> None:
    """Each running attempt is held by exactly the host the task names for it -- or, with none, the task waits in
    limbo; replicas of a verified task run on distinct devices."""
    task = dag.tasks[task_id]
    key = (dag.id, task_id)
    if not task.live:
        holders = sorted(h.id for h in scheduler.hosts.values() if h.running.get(key) == task.attempt)
        if key not in scheduler.limbo:
            found.append("runs on no host and is not in limbo")
        if holders:
            found.append(f"in limbo, but held by {holders}")
        return
    if key in scheduler.limbo:
        found.append(f"in limbo, but attempts {sorted(task.live)} run")
    for attempt, host_id in task.live.items():
        record = task.attempt_record(attempt)
        if record is None:
            found.append(f"attempt {attempt} is running, but has no attempt record")
        elif record.host_id != host_id:
            found.append(f"attempt {attempt} is held by {host_id}, but its record says {record.host_id}")
        host = scheduler.hosts.get(host_id)
        if host is None:
            found.append(f"attempt {attempt} is held by host {host_id}, which is gone")
        elif host.running.get(key) != attempt:
            found.append(f"attempt {attempt} is given to {host_id}, which holds {host.running.get(key)}")
    if task.spec.verify > 1:
        devices = [
            scheduler._device_of(h) for h in (scheduler.hosts.get(i) for i in task.live.values()) if h is not None
        ]
        devices += [v.device_id for v in task.votes]
        if len(devices) != len(set(devices)):
            found.append(f"replicas share a device: {sorted(devices)}")


def _check_hosts(scheduler: Scheduler, problems: list[str]) -> None:
    nodes = Counter(host.node_id for host in scheduler.hosts.values())
    for node_id, n in nodes.items():
        if n > 1:
            problems.append(f"node {node_id}: {n} live hosts (a node has one)")
    by_node: dict[str, list[str]] = {}
    for host in scheduler.hosts.values():
        by_node.setdefault(host.node_id, []).append(host.id)
    if {n: sorted(ids) for n, ids in scheduler._by_node.items()} != {n: sorted(ids) for n, ids in by_node.items()}:
        problems.append(f"the node index {scheduler._by_node} is not the hosts' node ids {by_node}")
    if scheduler._slots_total != sum(h.slots for h in scheduler.hosts.values()):
        problems.append(
            f"slots counted {scheduler._slots_total}, hosts have {sum(h.slots for h in scheduler.hosts.values())}"
        )
    for host_id, host in scheduler.hosts.items():
        where = f"host {host_id}"
        if host.id != host_id:
            problems.append(f"{where}: filed under another id ({host.id})")
        if host.slots < 1:
            problems.append(f"{where}: {host.slots} slots")
        if host.head is not None and host.head not in host.running:
            problems.append(f"{where}: times {host.head}, which it does not hold")
        for (dag_id, task_id), attempt in host.running.items():
            dag = scheduler.dags.get(dag_id)
            task = dag.tasks.get(task_id) if dag else None
            if task is None:
                continue  # its DAG was pruned: the host still owes an answer
            if not 1 <= attempt <= task.attempt:
                problems.append(f"{where}: holds attempt {attempt} of {dag_id}/{task_id}, issued {task.attempt}")
            elif attempt in task.live:
                if task.live[attempt] != host_id:
                    problems.append(
                        f"{where}: holds attempt {attempt} of {dag_id}/{task_id}, given to {task.live[attempt]}"
                    )
            elif attempt == task.attempt and not (task.state is TaskState.RUNNING and not task.live):
                # Its latest attempt, not running: only an attempt taken back from this very host (lost).
                record = task.attempt_record(attempt)
                if record is None or record.host_id != host_id or record.reason is not FailureReason.HOST_LOST:
                    problems.append(
                        f"{where}: holds attempt {attempt} of {dag_id}/{task_id} ({task.state.value}), "
                        "which was not taken back from it"
                    )


def _check_activity(scheduler: Scheduler, problems: list[str]) -> None:
    """The task stream has a running segment for exactly the attempts hosts hold live: one it never saw end
    would stay running in the monitor (and in memory) for good."""
    live = {
        (dag.id, task.spec.id, attempt)
        for dag in scheduler.dags.values()
        for task in dag.tasks.values()
        for attempt, host_id in task.live.items()
        if host_id
    }
    recorded = set(scheduler.activity._live)
    for dag_id, task_id, attempt in sorted(recorded - live)[:5]:
        problems.append(f"activity: attempt {attempt} of {dag_id}/{task_id} still runs in the stream, but is not live")
    for dag_id, task_id, attempt in sorted(live - recorded)[:5]:
        problems.append(f"activity: live attempt {attempt} of {dag_id}/{task_id} has no running segment")
    if scheduler.activity.running != len(recorded):
        problems.append(f"activity: counts {scheduler.activity.running} running, but holds {len(recorded)}")


def _check_limbo(scheduler: Scheduler, problems: list[str]) -> None:
    for dag_id, task_id in scheduler.limbo:
        dag = scheduler.dags.get(dag_id)
        if dag is None or task_id not in dag.tasks:
            problems.append(f"limbo: holds {dag_id}/{task_id}, which does not exist")


def _states(counts: Counter[TaskState]) -> dict[str, int]:
    return {state.value: n for state, n in sorted(counts.items()) if n}
