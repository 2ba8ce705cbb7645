"""Random event sequences through the scheduler, its invariants checked after every step.

`test_scheduler.py` says "these events give exactly these instructions" for the cases someone
thought of; this drives the interleavings nobody wrote down -- hosts joining with stale holdings,
results arriving twice or from the wrong host, cancels and retries mid-flight, controller
restarts with attempts in limbo, the result cache answering, missing and evicting -- and asks
`Scheduler.validate` after each one. It also plays the controller's cache, and checks that an output is
only ever served to a task whose inputs are exactly those of the task that stored it.
"""

from __future__ import annotations

import copy
import hashlib

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bxthre3.common.failures import FailureReason
from bxthre3.dag.spec import DagSpec, InputKind, TaskFile, TaskInput, TaskSpec
from bxthre3.scheduler import (
    Assign,
    CacheEvicted,
    CacheMissing,
    CacheServed,
    DagCancelled,
    DagRetried,
    DagSubmitted,
    DeviceTrusted,
    HostJoined,
    HostLeft,
    HostSeen,
    Instruction,
    Scheduler,
    SchedulerConfig,
    ServeCached,
    StoreCached,
    TaskFinished,
    Tick,
)
from bxthre3.scheduler.core import prepare_dag
from bxthre3.scheduler.events import Event

MODULES = {hashlib.sha256(b).hexdigest(): b for b in (b"\x00asm\x01\x00\x00\x00A", b"\x00asm\x01\x00\x00\x00B")}
SHAS = tuple(MODULES)
CONNECTIONS = ("c0", "c1", "c2", "c3", "c4")
"""Host connection identities: more than nodes, so a node re-registers from a new connection."""
NODES = ("n0", "n1", "n2")
DEVICES = ("dev-a", "dev-b", "dev-c")
"""Devices hosts run on: fewer than connections, so replicas of a verified task must skip some hosts."""
KEYS = ("k0", "k1")
"""Two identity keys: a node id claimed with the other key is refused while its holder lives."""

CONFIG = SchedulerConfig(
    heartbeat_interval=1.0,
    liveness=3,
    default_timeout=4.0,
    default_retries=1,
    max_host_losses=2,
    retry_backoff=0.5,
    retry_backoff_max=2.0,
    reclaim_grace=3.0,
    assignment_grace=2.0,
    deep_prefetch_min_ready=1,
    speculate_min_s=0.1,
    result_cache=True,
)
"""Small numbers, so that the few steps of one example reach retries, timeouts, host losses and limbo."""


@st.composite
def dag_specs(draw: st.DrawFn) -> DagSpec:
    """1-5 tasks, each depending on up to two earlier ones (a repeat included), reading their stdout or a
    named output they may not write (a missing input), some needing more memory than every host has."""
    tasks: list[TaskSpec] = []
    for i in range(draw(st.integers(1, 5))):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=2)) if i else []
        reads = [TaskInput(InputKind.OUTPUT, f"t{d}", output=draw(st.sampled_from(("", "x")))) for d in deps]
        files: tuple[TaskFile, ...] = ()
        if reads and draw(st.booleans()):
            files, reads = (TaskFile("in", reads[0]),), reads[1:]
        tasks.append(
            TaskSpec(
                id=f"t{i}",
                module=draw(st.sampled_from(SHAS)),
                module_name="m.wasm",
                inputs=(TaskInput(InputKind.LITERAL, "arg"), *reads),
                depends_on=tuple(f"t{d}" for d in deps),
                timeout=draw(st.sampled_from((None, 1.0))),
                retries=draw(st.sampled_from((None, 0, 2))),
                memory=draw(st.sampled_from((None, None, 100, 2000))),
                files=files,
                verify=draw(st.sampled_from((1, 1, 2, 3))),
                speculate=draw(st.booleans()),
                cache=draw(st.sampled_from((True, True, True, False))),
            )
        )
    priority = draw(st.sampled_from((0, 0, 1, -2)))
    return DagSpec(
        name="random",
        tasks=tuple(tasks),
        modules=MODULES,
        priority=priority,
        cache=draw(st.sampled_from((True, True, True, False))),
        volatile_modules=draw(st.sampled_from((frozenset(), frozenset(), frozenset(), frozenset({SHAS[1]})))),
    )


Inputs = tuple[object, ...]


def inputs_of(scheduler: Scheduler, dag_id: str, task_id: str) -> Inputs:
    """Everything a task's output is a function of, as the scheduler would give it to a host now."""
    dag = scheduler.dags[dag_id]
    task = dag.tasks[task_id]
    parts = scheduler._stdin_parts(dag, task)
    files = scheduler._in_files(dag, task) if task.spec.files else {}
    spec = task.spec
    return (spec.module, spec.args, tuple(parts), tuple(sorted(files.items())), spec.memory, spec.verify > 1)


outcomes = st.one_of(st.none(), st.sampled_from(list(FailureReason)))
"""None: success; else the failure reason the host reports."""


class SchedulerMachine(RuleBasedStateMachine):
    """One scheduler and a fake clock; each rule is an event the controller's loop could deliver."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.scheduler = Scheduler(CONFIG, rng=lambda: 0.5)
        self.given: list[tuple[str, str, str, int]] = []
        """Every assignment made, as (host, dag, task, attempt): results, stale ones included, come from here."""
        self.submitted = 0
        self.cache: dict[str, tuple[bytes, dict[str, bytes] | None, Inputs]] = {}
        """The controller's cache: key -> (output, files, the inputs of the task that stored it)."""
        self.specs: list[DagSpec] = []
        self.serves: list[ServeCached] = []
        """ServeCached not answered yet."""

    def handle(self, event: Event) -> list[Instruction]:
        out = self.scheduler.handle(event)
        for instruction in out:
            if isinstance(instruction, StoreCached):
                stored = inputs_of(self.scheduler, instruction.dag_id, instruction.task_id)
                files = dict(instruction.files) if instruction.files else None
                self.cache[instruction.key] = (instruction.output, files, stored)
            elif isinstance(instruction, ServeCached):
                entry = self.cache.get(instruction.key)
                if entry is not None:
                    asking = inputs_of(self.scheduler, instruction.dag_id, instruction.task_id)
                    assert asking == entry[2], f"{instruction.task_id} asks for an output made from other inputs"
                self.serves.append(instruction)
            if isinstance(instruction, Assign):
                host = self.scheduler.hosts.get(instruction.host_id)
                assert host is not None, f"assigned to {instruction.host_id}, which it does not know"
                assert not host.paused, f"assigned to {host.id}, which is paused"
                self.given.append((instruction.host_id, instruction.dag_id, instruction.task_id, instruction.attempt))
        return out

    @initialize(spec=dag_specs(), slots=st.lists(st.integers(1, 3), min_size=1, max_size=3))
    def start(self, spec: DagSpec, slots: list[int]) -> None:
        """A DAG and a host or three to run it, so that every example gets going at once."""
        self.scheduler.validate()
        self.submit(spec, prepared=False)
        for i, n in enumerate(slots):
            self.handle(HostJoined(CONNECTIONS[i], NODES[i], n, 1024, self.now, key=KEYS[0], device_id=DEVICES[i]))

    # ---------------------------------------------------------------- the user

    @rule(spec=dag_specs(), prepared=st.booleans())
    def submit(self, spec: DagSpec, prepared: bool) -> None:
        dag_id = f"d{self.submitted}"
        self.submitted += 1
        self.specs.append(spec)
        ready = prepare_dag(dag_id, spec, self.now) if prepared else None
        self.handle(DagSubmitted(dag_id, spec, self.now, ready))

    @rule(data=st.data(), prepared=st.booleans())
    def resubmit(self, data: st.DataObject, prepared: bool) -> None:
        """A DAG submitted before, again: its tasks' outputs may be in the cache."""
        self.submit(data.draw(st.sampled_from(self.specs), label="again"), prepared)

    def dag_id(self, data: st.DataObject) -> str:
        """One submitted so far, or the next one (not submitted yet: the event is for an unknown DAG)."""
        return f"d{data.draw(st.integers(0, self.submitted), label='dag')}"

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.handle(DagCancelled(self.dag_id(data), self.now))

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        self.handle(DagRetried(self.dag_id(data), self.now))

    @rule(data=st.data())
    def prune(self, data: st.DataObject) -> None:
        self.scheduler.forget_dag(self.dag_id(data))

    # ---------------------------------------------------------------- hosts

    @rule(
        host=st.sampled_from(CONNECTIONS),
        node=st.sampled_from(NODES),
        key=st.sampled_from(KEYS),
        slots=st.integers(1, 3),
        ram=st.sampled_from((64, 256, 1024)),
        modules=st.sets(st.sampled_from(SHAS)),
        device=st.sampled_from(DEVICES),
        data=st.data(),
    )
    def join(
        self,
        host: str,
        node: str,
        key: str,
        slots: int,
        ram: int,
        modules: set[str],
        device: str,
        data: st.DataObject,
    ) -> None:
        """A host registers, declaring attempts it holds: any given so far (its own, another node's, stale)."""
        holding: list[tuple[str, str, int]] = []
        if self.given:
            picked = data.draw(st.lists(st.sampled_from(self.given), max_size=3), label="holding")
            holding = [(dag_id, task_id, attempt) for _, dag_id, task_id, attempt in picked]
        self.handle(HostJoined(host, node, slots, ram, self.now, modules=frozenset(modules),
                               holding=tuple(holding), key=key, device_id=device))  # fmt: skip

    @rule(
        host=st.sampled_from(CONNECTIONS),
        paused=st.sampled_from((None, "", "battery low")),
        rtt=st.sampled_from((None, 0.001, 0.4)),
    )
    def seen(self, host: str, paused: str | None, rtt: float | None) -> None:
        self.handle(HostSeen(host, self.now, rss_mb=50, paused=paused, rtt=rtt))

    @rule(host=st.sampled_from(CONNECTIONS))
    def leave(self, host: str) -> None:
        self.handle(HostLeft(host, self.now))

    def report(
        self,
        host: str,
        attempt: tuple[str, str, int],
        outcome: FailureReason | None,
        named: bool,
        duration: float,
        lie: bool = False,
    ) -> None:
        dag_id, task_id, number = attempt
        files = {"x": b"X"} if named and outcome is None else None
        self.handle(TaskFinished(host, dag_id, task_id, number, self.now, output=b"lie" if lie else b"out",
                                 exit_code=0 if outcome is None else 1, reason=outcome,
                                 error="" if outcome is None else "boom", duration=duration, files=files))  # fmt: skip

    @precondition(lambda self: any(h.running for h in self.scheduler.hosts.values()))
    @rule(
        data=st.data(),
        outcome=outcomes,
        named=st.booleans(),
        duration=st.sampled_from((0.001, 0.05, 2.0)),
        lie=st.sampled_from((False, False, True)),
    )
    def finish(
        self, data: st.DataObject, outcome: FailureReason | None, named: bool, duration: float, lie: bool
    ) -> None:
        """A host reports an attempt it holds (maybe one taken back from it, or superseded), maybe a wrong output."""
        held = [(h.id, key, n) for h in self.scheduler.hosts.values() for key, n in h.running.items()]
        host, key, number = data.draw(st.sampled_from(held), label="held")
        self.report(host, (*key, number), outcome, named, duration, lie)

    @precondition(lambda self: bool(self.given))
    @rule(
        data=st.data(),
        outcome=outcomes,
        sender=st.sampled_from((None, *CONNECTIONS)),
        named=st.booleans(),
        duration=st.sampled_from((0.001, 0.05, 2.0)),
    )
    def finish_any(
        self, data: st.DataObject, outcome: FailureReason | None, sender: str | None, named: bool, duration: float
    ) -> None:
        """A report of any attempt ever given: a duplicate, a late one, or one from a host not given it."""
        host, dag_id, task_id, number = data.draw(st.sampled_from(self.given), label="given")
        self.report(sender or host, (dag_id, task_id, number), outcome, named, duration)

    # ---------------------------------------------------------------- the controller's result cache

    @precondition(lambda self: bool(self.serves))
    @rule(data=st.data(), lose=st.sampled_from((False, False, True)))
    def answer_cache(self, data: st.DataObject, lose: bool) -> None:
        """The controller reads an entry a ServeCached asked for (or finds it gone: `lose`)."""
        serve = self.serves.pop(data.draw(st.integers(0, len(self.serves) - 1), label="serve"))
        entry = self.cache.get(serve.key)
        if lose and entry is not None:
            del self.cache[serve.key]
            entry = None
        if entry is None:
            self.handle(CacheMissing(serve.dag_id, serve.task_id, serve.key, self.now))
            return
        self.handle(CacheServed(serve.dag_id, serve.task_id, serve.key, self.now, entry[0], entry[1]))
        dag = self.scheduler.dags.get(serve.dag_id)
        task = dag.tasks.get(serve.task_id) if dag else None
        if task is not None and task.cached:
            assert task.output == entry[0] and inputs_of(self.scheduler, serve.dag_id, serve.task_id) == entry[2]

    @precondition(lambda self: bool(self.cache))
    @rule(data=st.data())
    def evict(self, data: st.DataObject) -> None:
        """The cache's size cap (or `bxthre3 cache clear`) drops entries."""
        keys = data.draw(st.sets(st.sampled_from(sorted(self.cache)), min_size=1), label="evicted")
        for key in keys:
            del self.cache[key]
        self.handle(CacheEvicted(frozenset(keys), self.now))

    # ---------------------------------------------------------------- time and the controller

    @rule(dt=st.sampled_from((0.2, 1.0, 2.5, 6.0)), beats=st.sets(st.sampled_from(CONNECTIONS)))
    def tick(self, dt: float, beats: set[str]) -> None:
        """Time passes; the hosts in `beats` heartbeat meanwhile (the others fall silent)."""
        self.now += dt
        for host in sorted(beats):
            self.handle(HostSeen(host, self.now))
        self.handle(Tick(self.now))

    @rule(device=st.sampled_from(DEVICES))
    def trust(self, device: str) -> None:
        self.handle(DeviceTrusted(device, self.now))

    @rule(rejoin=st.booleans())
    def restart(self, rejoin: bool) -> None:
        """The controller restarts: a new scheduler restores every DAG from its records, as the journal
        keeps them (no key pins, no hosts). The hosts keep what they hold; with `rejoin`, each registers
        again at once declaring it (else they may come back later, with `join`)."""
        old = self.scheduler
        self.scheduler = Scheduler(CONFIG, rng=lambda: 0.5)
        self.scheduler.cache_keys = set(self.cache)  # as the store loads them, before the DAGs
        for dag in old.dags.values():
            saved = copy.deepcopy(dag.tasks)
            for record in saved.values():
                for attempt in record.attempts:
                    attempt.key = ""
            self.scheduler.restore_dag(dag.id, dag.spec, dag.submitted_at, dag.state, dag.finished_at, saved, self.now)
        self.scheduler.validate()
        for host in old.hosts.values() if rejoin else ():
            holding = tuple((*key, attempt) for key, attempt in host.running.items())
            self.handle(HostJoined(host.id, host.node_id, host.slots, host.ram_mb, self.now,
                                   modules=frozenset(host.modules), holding=holding, key=host.key,
                                   device_id=host.device_id))  # fmt: skip

    @invariant()
    def consistent(self) -> None:
        self.scheduler.validate()


SchedulerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None, database=None)
test_scheduler_state_machine = pytest.mark.one_python(SchedulerMachine.TestCase)  # pure scheduler code
