"""The host's slots as a pure state machine: which assignment runs where, and when executors restart.

A host is a second, smaller scheduler: assignments wait in a backlog for a free slot, a slot whose
tasks are short gets the next one queued in its executor's pipe (depth 2), the controller takes
attempts back (abort), deadlines pass, executors die. Those decisions live here, apart from the
sockets, pipes and clocks of `host.py`, so they can be tested as "these events give exactly these
instructions" (`tests/unit/test_host_slots.py`), like the scheduler's. Time comes in events; nothing
here reads a clock, touches a process or imports zmq or the executor.

One thing is not like the scheduler: handing a job to an executor is synchronous I/O that can fail
(the module cannot be stored, the executor is found dead), and what happens next depends on it --
a slot left free takes the next assignment. So `Launch` and `Resubmit` are always the last
instruction of a list, and the shell answers each with one outcome event (`Submitted`,
`SubmitRefused`, `SubmitDied`) before anything else; the core then carries on where it stopped.
Internally that is a generator suspended at the submit, which keeps the decision code in the order
it runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

from ..common.failures import FailureReason
from ..wire.protocol import Assign

AttemptKey = tuple[str, str, int]
"""(dag id, task id, attempt): how the controller names an attempt."""


def attempt_key(assign: Assign) -> AttemptKey:
    return (assign.dag_id, assign.task_id, assign.attempt)


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class SlotsConfig:
    slots: int = 1
    executor_idle_s: float = 60.0
    """An executor without a task for this long is stopped (see `HostConfig.executor_idle_s`)."""
    warm_executors: bool = False
    """Start every slot's executor once welcomed rather than with its first task."""
    grace_s: float = 0.0
    """Seconds past its timeout an attempt may run: an engine that interrupts runs itself gets them to do so."""
    max_timeout_s: float = 7 * 86_400.0
    """No attempt runs longer than this, whatever an assignment says."""
    pipeline_below_s: float = 0.05
    """A slot queues the next job in its executor only while its last task took less than this."""


# ---------------------------------------------------------------------- events (facts the shell saw)


@dataclass(frozen=True, slots=True)
class Assigned:
    """The controller assigned an attempt."""

    assign: Assign
    now: float


@dataclass(frozen=True, slots=True)
class AbortReceived:
    """The controller no longer wants this attempt (cancelled or reassigned)."""

    key: AttemptKey
    now: float


@dataclass(frozen=True, slots=True)
class JobEnded:
    """One result read from an executor."""

    job_id: int
    duration: float


@dataclass(frozen=True, slots=True)
class ResultsRead:
    """One read of a slot's executor completed these results, oldest first.

    ``in_flight`` is what the executor holds after the read: a job queued behind them is missing
    from it when the executor retired and could not be refilled."""

    slot: int
    results: tuple[JobEnded, ...]
    in_flight: frozenset[int]
    now: float


@dataclass(frozen=True, slots=True)
class ExecutorLost:
    """Reading results from or writing jobs to the slot's executor found it dead (or garbled)."""

    slot: int
    error: str
    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed. ``executors_up``: the slots whose executor process is running."""

    now: float
    executors_up: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Welcomed:
    """The controller welcomed this host (each registration). ``executors_up`` as in `Tick`."""

    now: float
    executors_up: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Submitted:
    """Outcome of `Launch` or `Resubmit`: the executor took the job. ``job`` is the shell's (opaque here)."""

    job_id: int
    job: object = None


@dataclass(frozen=True, slots=True)
class SubmitRefused:
    """Outcome of `Launch`: no job could be made (the module is missing or cannot be stored)."""

    job_id: int
    reason: FailureReason
    error: str


@dataclass(frozen=True, slots=True)
class SubmitDied:
    """Outcome of `Launch` or `Resubmit`: the executor was found dead while taking the job."""

    job_id: int
    error: str


Outcome = Submitted | SubmitRefused | SubmitDied
Event = Assigned | AbortReceived | ResultsRead | ExecutorLost | Tick | Welcomed | Outcome


# ---------------------------------------------------------------------- instructions


@dataclass(frozen=True, slots=True)
class StartExecutor:
    """Start the slot's executor ahead of its first task (`warm_executors`)."""

    slot: int


@dataclass(frozen=True, slots=True)
class StopExecutor:
    """Stop the slot's executor: it has been idle ``idle_s`` seconds."""

    slot: int
    idle_s: float


@dataclass(frozen=True, slots=True)
class RestartExecutor:
    """Kill the slot's executor (and whatever it runs or holds) and start a fresh one."""

    slot: int


@dataclass(frozen=True, slots=True)
class Launch:
    """Make a job of ``assign`` (store its module) and submit it to the slot's executor, starting that
    executor if none runs. Answer with `Submitted`, `SubmitRefused` or `SubmitDied`."""

    slot: int
    job_id: int
    assign: Assign
    timeout_s: float
    """The job's timeout (the assignment's, bounded; the engine's grace is not in it)."""


@dataclass(frozen=True, slots=True)
class Resubmit:
    """Submit an already made job again, to a fresh executor. Answer with `Submitted` or `SubmitDied`."""

    slot: int
    job_id: int
    job: object


@dataclass(frozen=True, slots=True)
class ReportResult:
    """Report the attempt as the executor's result for ``job_id`` says."""

    job_id: int
    assign: Assign


@dataclass(frozen=True, slots=True)
class ReportFailure:
    """Report the attempt failed without a result from the executor, after ``elapsed`` seconds."""

    job_id: int
    assign: Assign
    reason: FailureReason
    error: str
    elapsed: float


@dataclass(frozen=True, slots=True)
class RecordAbort:
    """The attempt was aborted: remember it (nothing is sent). ``started``: it was running, not queued."""

    assign: Assign
    started: bool
    elapsed: float


@dataclass(frozen=True, slots=True)
class IgnoreResult:
    """A result came for a queued job aborted meanwhile: drop it."""

    slot: int
    job_id: int


Instruction = (
    StartExecutor | StopExecutor | RestartExecutor | Launch | Resubmit | ReportResult | ReportFailure | RecordAbort
    | IgnoreResult
)  # fmt: skip


# ---------------------------------------------------------------------- state


@dataclass(slots=True)
class Attempt:
    """An attempt a slot runs or holds queued in its executor."""

    assign: Assign
    job_id: int
    timeout: float
    """Seconds it may run, counted from when it starts (the engine's grace included)."""
    started: float
    deadline: float = float("inf")
    job: object = None
    """The shell's job (from `Submitted`), for a resubmission."""
    aborted: bool = False
    """The controller took it back while it waited in the executor's pipe: kill it once it starts."""

    def start(self, now: float) -> None:
        self.started = now
        self.deadline = now + self.timeout


@dataclass(slots=True)
class Slot:
    """One slot: one executor child, running at most one attempt with at most one queued behind it."""

    attempt: Attempt | None = None
    """The attempt running in the executor."""
    queued: Attempt | None = None
    """The next attempt, already in the executor's pipe: it starts when `attempt` ends."""
    last_used: float = 0.0
    """When it last started or finished a task (its idle executor is stopped `executor_idle_s` later)."""
    last_duration: float = float("inf")
    """How long its last task ran: the next is queued in the executor only behind short ones."""


_Work = Generator[Instruction, Outcome | None, None]
"""Decision code: yields instructions; a `Launch` or `Resubmit` yield returns the submit's outcome."""


@dataclass(slots=True)
class HostSlots:
    """The decisions of a host's work: events in (`handle`), instructions out."""

    config: SlotsConfig = field(default_factory=SlotsConfig)
    slots: list[Slot] = field(init=False)
    backlog: deque[Assign] = field(init=False, default_factory=deque)
    """Assignments no slot has taken yet, in arrival order."""
    next_job_id: int = field(init=False, default=1)
    """Job ids number the jobs of this host's executors (the controller names attempts by `AttemptKey`)."""
    _suspended: _Work | None = field(init=False, default=None, repr=False)
    """The work waiting for the outcome of its last `Launch` or `Resubmit`."""
    _submitting: int = field(init=False, default=0, repr=False)
    """The job id of that submit."""

    def __post_init__(self) -> None:
        self.slots = [Slot() for _ in range(max(1, self.config.slots))]

    # -- the one entry point

    def handle(self, event: Event) -> list[Instruction]:
        """The instructions ``event`` calls for, in order. A list ending in `Launch` or `Resubmit` waits
        for that submit's outcome: the next event must be it."""
        if self._suspended is not None:
            if not isinstance(event, (Submitted, SubmitRefused, SubmitDied)) or event.job_id != self._submitting:
                raise RuntimeError(f"the outcome of submitting job {self._submitting} must come first, not {event}")
            work, self._suspended = self._suspended, None
            return self._run(work, event)
        if isinstance(event, (Submitted, SubmitRefused, SubmitDied)):
            raise RuntimeError("no submit is waiting for an outcome")
        return self._run(self._dispatch(event), None)

    def _run(self, work: _Work, value: Outcome | None) -> list[Instruction]:
        out: list[Instruction] = []
        try:
            while True:
                instruction = work.send(value)
                out.append(instruction)
                if isinstance(instruction, (Launch, Resubmit)):
                    self._suspended, self._submitting = work, instruction.job_id
                    return out
                value = None
        except StopIteration:
            return out

    def _dispatch(self, event: Event) -> _Work:
        match event:
            case Assigned():
                self.backlog.append(event.assign)
                yield from self._start_work(event.now)
            case AbortReceived():
                yield from self._abort(event.key, event.now)
            case ResultsRead():
                yield from self._results(self.slots[event.slot], event)
            case ExecutorLost():
                yield from self._executor_lost(event.slot, event.error, event.now)
            case Tick():
                yield from self._tick(event.now, event.executors_up)
            case Welcomed():
                yield from self._welcomed(event.now, event.executors_up)

    # -- queries for the shell

    def busy(self, slot: int) -> bool:
        """Whether the slot runs an attempt (its executor's pipes are then worth watching)."""
        return self.slots[slot].attempt is not None

    def jobs_in(self, slot: int) -> list[int]:
        """The jobs the slot's executor should hold: its running attempt's and its queued one's."""
        s = self.slots[slot]
        return [a.job_id for a in (s.attempt, s.queued) if a is not None]

    def next_deadline(self) -> float:
        """When the earliest running attempt times out (inf: none runs)."""
        return min((s.attempt.deadline for s in self.slots if s.attempt is not None), default=float("inf"))

    def tick_due(self, executors_up: Iterable[int]) -> float:
        """When a `Tick` can next do something: the earliest deadline of a running attempt, or when an idle
        slot's running executor passes `executor_idle_s` (inf: never). A host loop turns over once or twice
        per task; asking this instead of handling a Tick every turn saves the event and its generator."""
        due = float("inf")
        idle_s = self.config.executor_idle_s
        for i, slot in enumerate(self.slots):
            if slot.attempt is not None:
                due = min(due, slot.attempt.deadline)
            elif i in executors_up:
                due = min(due, slot.last_used + idle_s)
        return due

    def running(self) -> list[Attempt]:
        return [s.attempt for s in self.slots if s.attempt is not None]

    def queued_count(self) -> int:
        """Assignments not running yet: in the backlog or queued in an executor."""
        return len(self.backlog) + sum(s.queued is not None for s in self.slots)

    def holding(self) -> list[AttemptKey]:
        """The attempts this host runs or will run, declared when it registers."""
        assigns = [a.assign for s in self.slots for a in (s.attempt, s.queued) if a is not None] + list(self.backlog)
        return [attempt_key(a) for a in assigns]

    # -- decisions

    def _start_work(self, now: float) -> _Work:
        """Give queued assignments to idle slots, and queue the next in executors running short tasks."""
        for i, slot in enumerate(self.slots):
            while self.backlog and slot.attempt is None:
                yield from self._launch(i, self.backlog.popleft(), now)
        for i, slot in enumerate(self.slots):
            if self.backlog and slot.attempt is not None and slot.queued is None:
                if slot.last_duration < self.config.pipeline_below_s:
                    yield from self._launch(i, self.backlog.popleft(), now)

    def _launch(self, i: int, assign: Assign, now: float) -> _Work:
        """Run `assign` in slot `i` now, or queue it behind the slot's running attempt."""
        timeout = min(self.config.max_timeout_s, assign.timeout) if assign.timeout > 0 else 0.001  # NaN too
        job_id = self.next_job_id
        self.next_job_id += 1
        attempt = Attempt(assign, job_id, timeout + self.config.grace_s, started=now)
        outcome = yield Launch(i, job_id, assign, timeout)
        if isinstance(outcome, SubmitRefused):
            yield ReportFailure(job_id, assign, outcome.reason, outcome.error, 0.0)
            return
        yield from self._submitted(i, attempt, outcome, now)

    def _submit(self, i: int, attempt: Attempt, now: float) -> _Work:
        outcome = yield Resubmit(i, attempt.job_id, attempt.job)
        yield from self._submitted(i, attempt, outcome, now)

    def _submitted(self, i: int, attempt: Attempt, outcome: Outcome | None, now: float) -> _Work:
        slot = self.slots[i]
        slot.last_used = now
        if isinstance(outcome, SubmitDied):
            yield RestartExecutor(i)
            yield ReportFailure(attempt.job_id, attempt.assign, FailureReason.EXECUTOR_CRASHED, outcome.error,
                                now - attempt.started)  # fmt: skip
            return
        if not isinstance(outcome, Submitted):
            raise RuntimeError(f"a submit answered with {outcome!r}")
        attempt.job = outcome.job
        if slot.attempt is None:
            attempt.start(now)
            slot.attempt = attempt
        else:
            slot.queued = attempt

    def _restart_executor(self, i: int, now: float) -> _Work:
        """A fresh executor for slot `i` (its running attempt is dealt with); what was queued runs in it."""
        slot = self.slots[i]
        yield RestartExecutor(i)
        queued, slot.queued = slot.queued, None
        if queued is not None and not queued.aborted:
            yield from self._submit(i, queued, now)

    def _next_in(self, i: int, now: float, answered: frozenset[int], in_flight: frozenset[int]) -> _Work:
        """The running attempt ended: the queued one, already in the executor, is running now.

        `answered` holds the jobs whose results came in the same read (so still to be reported)."""
        slot = self.slots[i]
        queued, slot.queued = slot.queued, None
        if queued is None:
            return
        done = queued.job_id in answered
        if not done and queued.job_id not in in_flight:
            yield from self._submit(i, queued, now)  # the executor lost it (it retired and could not be refilled)
        elif queued.aborted:
            if not done:
                yield from self._restart_executor(i, now)  # kill it before it runs (or as it runs)
        else:
            queued.start(now)
            slot.attempt = queued

    def _results(self, slot: Slot, event: ResultsRead) -> _Work:
        i = event.slot
        answered = frozenset(r.job_id for r in event.results)
        for result in event.results:
            attempt = slot.attempt
            if attempt is None or result.job_id != attempt.job_id:
                yield IgnoreResult(i, result.job_id)  # the answer to a queued job aborted meanwhile
                continue
            slot.attempt = None
            slot.last_used = event.now
            slot.last_duration = result.duration
            yield from self._next_in(i, event.now, answered, event.in_flight)
            yield ReportResult(result.job_id, attempt.assign)
        yield from self._start_work(event.now)

    def _executor_lost(self, i: int, error: str, now: float) -> _Work:
        slot = self.slots[i]
        attempt, slot.attempt = slot.attempt, None
        yield from self._restart_executor(i, now)
        if attempt is not None:
            yield ReportFailure(attempt.job_id, attempt.assign, FailureReason.EXECUTOR_CRASHED, error,
                                now - attempt.started)  # fmt: skip
        yield from self._start_work(now)

    def _abort(self, key: AttemptKey, now: float) -> _Work:
        self.backlog = deque(a for a in self.backlog if attempt_key(a) != key)
        for i, slot in enumerate(self.slots):
            a = slot.attempt
            if a is not None and attempt_key(a.assign) == key:
                yield RecordAbort(a.assign, started=True, elapsed=now - a.started)
                slot.attempt = None
                yield from self._restart_executor(i, now)
            q = slot.queued
            if q is not None and attempt_key(q.assign) == key and not q.aborted:
                yield RecordAbort(q.assign, started=False, elapsed=0.0)
                q.aborted = True
        yield from self._start_work(now)

    def _tick(self, now: float, executors_up: Iterable[int]) -> _Work:
        up = frozenset(executors_up)
        for i, slot in enumerate(self.slots):
            idle = now - slot.last_used
            if slot.attempt is None and i in up and idle > self.config.executor_idle_s:
                yield StopExecutor(i, idle)
        for i, slot in enumerate(self.slots):
            attempt = slot.attempt
            if attempt is not None and now >= attempt.deadline:
                slot.attempt = None
                yield from self._restart_executor(i, now)
                yield ReportFailure(attempt.job_id, attempt.assign, FailureReason.TIMEOUT,
                                    f"killed after the {attempt.assign.timeout:g}s timeout",
                                    now - attempt.started)  # fmt: skip
                yield from self._start_work(now)

    def _welcomed(self, now: float, executors_up: Iterable[int]) -> _Work:
        if not self.config.warm_executors:
            return
        up = frozenset(executors_up)
        for i, slot in enumerate(self.slots):
            if i not in up:
                yield StartExecutor(i)
                slot.last_used = now  # idle from now on, as after a task
