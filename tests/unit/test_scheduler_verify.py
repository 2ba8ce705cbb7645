"""`verify: N`: replicas on distinct devices, majority votes, `unverified`, quarantine and trust.

The pure scheduler with its invariants checked after every event (issue 19 item 3)."""

from __future__ import annotations

import dataclasses

from bxthre3.common.failures import FailureReason
from bxthre3.controller.views import task_view
from bxthre3.dag.spec import TaskSpec
from bxthre3.scheduler import (
    AbortAttempt,
    Assign,
    DagFinished,
    DagState,
    DagSubmitted,
    DeviceTrusted,
    HostJoined,
    SchedulerConfig,
    TaskFinished,
    TaskState,
)
from tests.unit.test_scheduler import RealScheduler, assigns, dag, task


def verified(tid: str, *deps: str, n: int = 2, retries: int | None = 0) -> TaskSpec:
    return dataclasses.replace(task(tid, *deps, retries=retries), verify=n)


def cluster(*devices: str, quarantine_after: int = 2) -> RealScheduler:
    """One host per device letter given (two letters alike: two hosts of one device), named h0, h1, ..."""
    s = RealScheduler(SchedulerConfig(retry_backoff=0.0, quarantine_after=quarantine_after), rng=lambda: 0.5)
    for i, device in enumerate(devices):
        s.handle(HostJoined(f"h{i}", f"n{i}", 1, 128, 0.0, device=f"phone-{device}", device_id=f"dev{device}"))
    return s


def report(s: RealScheduler, a: Assign, output: bytes = b"42\n", now: float = 1.0, **kw: object) -> list:
    return s.handle(TaskFinished(a.host_id, a.dag_id, a.task_id, a.attempt, now, output=output, **kw))  # type: ignore[arg-type]


def test_replicas_run_at_once_on_distinct_devices_deterministically_and_agreement_records_the_result() -> None:
    s = cluster("a", "a", "b")  # h0 and h1 share device a
    given = assigns(s.handle(DagSubmitted("d", dag(verified("t"), task("after", "t")), 0.0)))
    assert sorted(a.host_id for a in given) == ["h0", "h2"], "one replica per device: h1 is h0's device"
    assert all(a.deterministic for a in given) and [a.attempt for a in given] == [1, 2]
    assert report(s, given[0]) and s.dags["d"].tasks["t"].state is TaskState.RUNNING, "one vote is not enough"
    out = report(s, given[1], now=2.0)
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.output, t.recorded, t.votes) == (TaskState.SUCCEEDED, b"42\n", 1, [])
    assert (s.hosts["h0"].succeeded, s.hosts["h2"].succeeded, s.total_succeeded) == (1, 1, 1), "both did it, once"
    [after] = assigns(out)
    assert after.task_id == "after" and not after.deterministic, "an unverified task runs as always"


def test_a_disagreement_runs_a_third_replica_and_the_majority_wins() -> None:
    s = cluster("a", "b", "c")
    r1, r2 = assigns(s.handle(DagSubmitted("d", dag(verified("t")), 0.0)))
    report(s, r1, b"right")
    [r3] = assigns(report(s, r2, b"wrong"))
    assert r3.host_id == "h2" and r3.attempt == 3
    out = report(s, r3, b"right", now=3.0)
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.output) == (TaskState.SUCCEEDED, b"right")
    assert DagFinished("d", DagState.SUCCEEDED) in out
    assert s.mismatches["devb"] == 1 and "devb" not in s.quarantined, "one lost vote: not yet quarantined"
    outvoted = t.attempt_record(r2.attempt)
    assert outvoted is not None and outvoted.error == "outvoted: its output differed from 2 other devices'"
    view = task_view(t, s, with_output=False)
    assert view["node_id"] == "n2", "the node whose result was recorded, not the outvoted one"


def test_a_device_losing_votes_repeatedly_is_quarantined_gets_no_tasks_until_trusted() -> None:
    s = cluster("a", "b", "c")
    s.handle(DagSubmitted("d", dag(verified("t1"), verified("t2", "t1"), task("plain", "t2")), 0.0))
    for _ in range(20):  # bounded: each report ends an attempt
        running = [(h, key, n) for h in s.hosts.values() for key, n in h.running.items() if key[1] != "plain"]
        if not running:
            break
        host, (_, tid), attempt = running[0]
        lie = host.device_id == "devb"
        s.handle(TaskFinished(host.id, "d", tid, attempt, 2.0, output=b"lie" if lie else b"ok"))
    assert s.dags["d"].tasks["t1"].output == s.dags["d"].tasks["t2"].output == b"ok"
    q = s.quarantined["devb"]
    assert (q.device, q.mismatches, s.quarantine_changed) == ("phone-b", 2, True)
    assert "disagreed with 2 devices" in q.reason and "d/t2" in q.reason
    assert ("d", "plain") not in s.hosts["h1"].running, "quarantined: h1 gets nothing"
    out = s.handle(DagSubmitted("d2", dag(task("x"), task("y"), task("z")), 3.0))
    assert "h1" not in {a.host_id for a in assigns(out)}
    s.quarantine_changed = False
    s.handle(DeviceTrusted("devb", 4.0))
    assert "devb" not in s.quarantined and s.mismatches["devb"] == 0 and s.quarantine_changed


def test_quarantine_takes_back_what_the_device_runs_and_strikes_its_open_votes() -> None:
    s = cluster("a", "b", "c", "d", quarantine_after=1)
    given = assigns(s.handle(DagSubmitted("d", dag(verified("t1"), verified("t2")), 0.0)))
    by_task = {(a.task_id, a.host_id): a for a in given}
    assert sorted(by_task) == [("t1", "h0"), ("t1", "h1"), ("t2", "h2"), ("t2", "h3")]
    report(s, by_task["t2", "h2"], b"ok")  # t2: device c voted; device d still runs it
    report(s, by_task["t1", "h0"], b"ok")
    report(s, by_task["t1", "h1"], b"lie")
    out = report(s, by_task["t1", "h2"] if ("t1", "h2") in by_task else _only(s, "t1"), b"ok", now=2.0)
    assert "devb" in s.quarantined
    assert s.dags["d"].tasks["t1"].output == b"ok"
    assert not s.hosts["h1"].running
    assert not any(isinstance(i, Assign) and i.host_id == "h1" for i in out)


def _only(s: RealScheduler, tid: str) -> Assign:
    """The attempt of `tid` a host runs now, as an Assign to report on."""
    for h in s.hosts.values():
        n = h.running.get(("d", tid))
        if n is not None:
            return Assign(h.id, "d", tid, n, "", False, (), b"", (), 1.0)
    raise AssertionError(f"nobody runs {tid}")


def test_no_majority_within_the_replica_budget_fails_the_task_unverified() -> None:
    s = cluster("a", "b", "c", "d", "e", "f")
    s.handle(DagSubmitted("d", dag(verified("t"), task("after", "t")), 0.0))
    t = s.dags["d"].tasks["t"]
    for i in range(5):  # at most 2 x N + 1 = 5 replicas
        out = report(s, _only(s, "t"), f"out{i}".encode(), now=1.0 + i)
        if t.state is TaskState.FAILED:
            break
    assert (t.state, t.reason) == (TaskState.FAILED, FailureReason.UNVERIFIED)
    # 4 different outputs: even the fifth replica agreeing with one could not make a majority of 5.
    assert t.error.startswith("4 devices disagreed on its output (1 x sha256 ") and "\n" not in t.error
    assert len(t.attempts) == 5 and t.live == {}, "the fifth replica, started, is stopped"
    assert s.dags["d"].tasks["after"].state is TaskState.UPSTREAM_FAILED
    assert DagFinished("d", DagState.FAILED) in out
    assert not s.quarantined, "no majority: nobody is known to be wrong"


def test_replicas_agreeing_on_a_failure_fail_the_task_with_it() -> None:
    s = cluster("a", "b")
    r1, r2 = assigns(s.handle(DagSubmitted("d", dag(verified("t")), 0.0)))
    report(s, r1, b"", exit_code=3, reason=FailureReason.EXIT_CODE, error="exit 3")
    report(s, r2, b"", exit_code=3, reason=FailureReason.EXIT_CODE, error="exit 3")
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.reason, t.exit_code) == (TaskState.FAILED, FailureReason.EXIT_CODE, 3)


def test_a_replica_that_timed_out_casts_no_vote_and_another_device_runs_it() -> None:
    s = cluster("a", "b", "c")
    r1, r2 = assigns(s.handle(DagSubmitted("d", dag(verified("t", retries=1)), 0.0)))
    [r3] = assigns(report(s, r1, b"", reason=FailureReason.TIMEOUT, error="slow"))
    assert r3.host_id != r2.host_id and s.dags["d"].tasks["t"].votes == []
    report(s, r2, b"ok")
    report(s, r3, b"ok", now=2.0)
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.output, t.failures) == (TaskState.SUCCEEDED, b"ok", 1)


def test_a_verified_task_waits_for_enough_devices_and_status_says_why() -> None:
    s = cluster("a", "a")  # two hosts, one device
    [only] = assigns(s.handle(DagSubmitted("d", dag(verified("t", n=3)), 0.0)))
    assert s.waiting_reasons() == ["1 task(s) with verify: 3 wait for distinct devices: 1 trusted device(s) registered"]
    s.handle(HostJoined("hb", "nb", 1, 128, 1.0, device_id="devb"))
    out = s.handle(HostJoined("hc", "nc", 1, 128, 1.0, device_id="devc"))
    assert [a.host_id for a in assigns(out)] == ["hc"] and s.waiting_reasons() == []
    assert sorted(s.dags["d"].tasks["t"].live.values()) == sorted([only.host_id, "hb", "hc"])


def test_cancel_stops_every_replica() -> None:
    from bxthre3.scheduler import DagCancelled

    s = cluster("a", "b")
    r1, r2 = assigns(s.handle(DagSubmitted("d", dag(verified("t")), 0.0)))
    out = s.handle(DagCancelled("d", 1.0))
    assert {(i.host_id, i.attempt) for i in out if isinstance(i, AbortAttempt)} == {("h0", 1), ("h1", 2)}
    assert s.dags["d"].tasks["t"].state is TaskState.CANCELLED
