"""Host identity: a node id is pinned to the key of the live host holding it (scheduler rules, pure),
and a host's key is kept per node id on its device (files)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from bxthre3.scheduler import (
    AbortAttempt,
    AckResult,
    Assign,
    DagSubmitted,
    ForgetHost,
    HostJoined,
    HostLeft,
    RefuseHost,
    Scheduler,
    SchedulerConfig,
    TaskFinished,
    TaskState,
    Tick,
)
from bxthre3.wire.security import HOST_KEY_BYTES, host_key_path, host_key_pin, load_or_create_host_key
from tests.unit.test_scheduler import dag, task

REAL, THIEF = host_key_pin(b"r" * 32), host_key_pin(b"t" * 32)


def joined(host_id: str, key: str, now: float = 0.0, holding: tuple = (), node: str = "phone-1") -> HostJoined:
    return HostJoined(host_id, node, 1, 128, now, holding=holding, key=key)


def running_on_real() -> tuple[Scheduler, Assign]:
    s = Scheduler(SchedulerConfig(heartbeat_interval=1.0, liveness=3))
    s.handle(DagSubmitted("d", dag(task("t")), 0.0))
    [a] = [i for i in s.handle(joined("conn-real", REAL)) if isinstance(i, Assign)]
    return s, a


def test_another_key_for_a_live_node_id_is_refused_and_the_live_host_untouched() -> None:
    s, a = running_on_real()
    out = s.handle(joined("conn-thief", THIEF, 1.0, holding=(("d", "t", a.attempt),)))
    assert len(out) == 1 and isinstance(out[0], RefuseHost)
    assert out[0].host_id == "conn-thief" and "--node-id" in out[0].reason and "\n" not in out[0].reason
    assert set(s.hosts) == {"conn-real"}
    assert s.hosts["conn-real"].running == {("d", "t"): a.attempt}
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.host_id, t.attempt) == (TaskState.RUNNING, "conn-real", 1)
    # Its forged result, were it sent anyway, comes from a connection the scheduler does not know.
    assert s.handle(TaskFinished("conn-thief", "d", "t", 1, 1.5, output=b"forged")) == []
    s.handle(TaskFinished("conn-real", "d", "t", 1, 2.0, output=b"genuine"))
    assert (t.state, t.output, t.recorded) == (TaskState.SUCCEEDED, b"genuine", 1)


def test_the_same_key_replaces_its_own_stale_connection_and_keeps_its_attempts() -> None:
    s, a = running_on_real()
    out = s.handle(joined("conn-restarted", REAL, 1.0, holding=(("d", "t", a.attempt),)))
    assert ForgetHost("conn-real", "replaced by a new registration", "phone-1") in out
    assert not any(isinstance(i, (RefuseHost, AbortAttempt)) for i in out)
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.host_id, t.attempt) == (TaskState.RUNNING, "conn-restarted", 1)
    s.handle(TaskFinished("conn-restarted", "d", "t", 1, 2.0, output=b"genuine"))
    assert (t.state, t.recorded, t.attempt) == (TaskState.SUCCEEDED, 1, 1)


@pytest.mark.parametrize("how", ["bye", "silence"])
def test_the_pin_is_released_when_the_host_is_gone_but_its_attempts_are_not(how: str) -> None:
    s, a = running_on_real()
    if how == "bye":
        s.handle(HostLeft("conn-real", 1.0, "said goodbye"))
        now = 1.0
    else:
        now = 10.0
        assert any(isinstance(i, ForgetHost) for i in s.handle(Tick(now)))
    out = s.handle(joined("conn-other", THIEF, now, holding=(("d", "t", a.attempt),)))
    assert not any(isinstance(i, RefuseHost) for i in out)
    assert "conn-other" in s.hosts
    # The attempt was the other key's: it is not adopted (it would let a newcomer report its result).
    assert AbortAttempt("conn-other", "d", "t", 1) in out
    t = s.dags["d"].tasks["t"]
    assert t.attempt == 2 and t.host_id == "conn-other", "run again as a new attempt"
    s.handle(TaskFinished("conn-other", "d", "t", 1, now + 1, output=b"forged"))
    assert t.state is TaskState.RUNNING and t.output is None


def test_a_host_with_its_key_adopts_its_requeued_attempt_after_being_declared_dead() -> None:
    s = Scheduler(SchedulerConfig(heartbeat_interval=1.0, liveness=3))
    s.handle(DagSubmitted("d", dag(task("t")), 0.0))
    s.handle(joined("conn-real", REAL))
    s.handle(Tick(10.0))  # declared dead, its attempt requeued (no other host to take it)
    out = s.handle(joined("conn-back", REAL, 11.0, holding=(("d", "t", 1),)))
    assert not any(isinstance(i, (AbortAttempt, RefuseHost)) for i in out)
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.host_id, t.attempt) == (TaskState.RUNNING, "conn-back", 1)


def test_a_claim_of_an_attempt_never_given_is_aborted_not_a_crash() -> None:
    s = Scheduler()
    s.handle(DagSubmitted("d", dag(task("t", "u"), task("u")), 0.0))
    out = s.handle(joined("conn", REAL, holding=(("d", "t", 0),)))
    assert AbortAttempt("conn", "d", "t", 0) in out and not any(isinstance(i, AckResult) for i in out)


def test_a_host_key_is_kept_per_node_id_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "state" / "host_keys" / "k"
    key = load_or_create_host_key("phone-1", path)
    assert len(key) == HOST_KEY_BYTES
    assert load_or_create_host_key("phone-1", path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["k"], "no temporary files left behind"
    path.write_bytes(b"short")  # damaged: replaced by a good one
    fresh = load_or_create_host_key("phone-1", path)
    assert len(fresh) == HOST_KEY_BYTES and path.read_bytes() == fresh


def test_host_keys_are_named_by_a_digest_of_the_node_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    a, b = host_key_path("../../etc/passwd"), host_key_path("phone-2")
    assert a.parent == b.parent == tmp_path / "bxthre3" / "host_keys" and a != b
    assert load_or_create_host_key("phone-2") != load_or_create_host_key("phone-3")


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(load_or_create_host_key("n", path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and path.read_bytes() == keys[0]
    assert os.listdir(tmp_path) == ["k"]


def test_after_a_controller_restart_only_the_node_the_attempt_was_given_to_claims_it() -> None:
    from bxthre3.scheduler import DagState, TaskRecord
    from bxthre3.scheduler.model import AttemptRecord

    spec = dag(task("t"))
    saved = {
        "t": TaskRecord(spec=spec.tasks[0], waiting_on=0, state=TaskState.RUNNING, attempt=1,
                        attempts=[AttemptRecord(1, "old-conn", "phone-1", 0.0)])
    }  # fmt: skip
    s = Scheduler()
    s.restore_dag("d", spec, 0.0, DagState.RUNNING, None, saved, 1.0)
    out = s.handle(joined("conn-other", THIEF, 2.0, holding=(("d", "t", 1),), node="tablet-9"))
    assert AbortAttempt("conn-other", "d", "t", 1) in out
    out = s.handle(joined("conn-back", REAL, 3.0, holding=(("d", "t", 1),)))
    assert not any(isinstance(i, AbortAttempt) for i in out)
    t = s.dags["d"].tasks["t"]
    assert (t.state, t.host_id, t.attempt, t.attempts[-1].key) == (TaskState.RUNNING, "conn-back", 1, REAL)
