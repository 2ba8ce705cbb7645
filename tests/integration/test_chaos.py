"""Chaos: hosts SIGKILLed and SIGSTOPped, the controller SIGKILLed and restarted, tasks that keep failing.

Every process is real (`python -m bxthre3 controller|host`) on 127.0.0.1 with heartbeat 0.25 s and
liveness 4, and is killed by PID at the end (tests/chaos_support.py). Kill moments are random:
set CHAOS_SEED=<n> to replay a run (the seed is in every failure message).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bxthre3.dag.yaml_loader import load_dag
from tests.chaos_support import (
    TEST_MODULES,
    WASM_MODULES,
    ChaosCluster,
    by_id,
    chains_with_tiles,
    check_all_succeeded_once,
    check_tasks_succeeded_once,
    cpu_seconds,
    descendants,
    has_recorded_field,
    inc_output,
    kill_pid,
    retry,
    subprocess_env,
    tile_cpu_seconds,
    tile_output,
    tile_task,
    wait_until,
    write_dag,
)

pytestmark = pytest.mark.timeout(60)

HEARTBEAT = 0.25
LIVENESS = 4


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
    r = random.Random(seed)
    r.seed_value = seed  # type: ignore[attr-defined]
    return r


def ctx(rng: random.Random) -> str:
    return f"[CHAOS_SEED={rng.seed_value}] "  # type: ignore[attr-defined]


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    """A durable controller (--state-dir in the test's directory) and its hosts, all real processes."""
    with ChaosCluster(tmp_path / "cluster", heartbeat=HEARTBEAT, liveness=LIVENESS, state_dir="default") as c:
        yield c


def cli(cluster: ChaosCluster, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = subprocess_env()
    env["BXTHRE3_CONTROLLER"] = str(cluster.address)
    return subprocess.run(
        [sys.executable, "-m", "bxthre3", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def json_output(value: Any) -> bytes:
    """Undo `results --json`'s encoding of outputs (text, or {"base64": ...})."""
    import base64

    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    return str(value).encode("utf-8")


def started(cluster: ChaosCluster, node_ids: list[str]) -> Any:
    cluster.start_controller()
    cluster.wait_controller()
    for n in node_ids:
        cluster.start_host(n)
    client = cluster.client(timeout=5)
    cluster.wait_hosts(client, node_ids)
    return client


def fresh_session(client: Any, cluster: ChaosCluster, node_id: str, since: float) -> bool:
    """The host is registered in a session that began after `since` (a monotonic time)."""
    host = cluster.registered(client).get(node_id)
    return bool(host) and host["uptime_s"] < time.monotonic() - since


# ---------------------------------------------------------------------- 1. hosts SIGKILLed


def test_500_task_dag_survives_a_host_sigkilled_three_times(
    cluster: ChaosCluster, rng: random.Random, tmp_path: Path
) -> None:
    tasks, expected = chains_with_tiles(chains=25, steps=16, tile_every=4, max_iter=5_000_000)
    assert len(tasks) == 500
    path = write_dag(tmp_path / "chaos_hosts.yaml", "chaos_hosts", tasks)
    nodes = ["host-a", "host-b", "host-c"]
    client = started(cluster, nodes)
    dag_id = retry(lambda: client.submit(load_dag(path)), 10, "submit")

    kills: list[str] = []
    for lo, hi in ((0.08, 0.25), (0.35, 0.5), (0.6, 0.75)):
        at = int(rng.uniform(lo, hi) * len(tasks))
        p = wait_until(lambda at=at: (p := client.progress(dag_id))["done"] >= at and p, 40, f"{at} tasks done")
        assert p["state"] == "running", f"{ctx(rng)}DAG already {p['state']} before kill {len(kills) + 1}: too fast"
        time.sleep(rng.uniform(0, 0.1))
        busy = sorted(h["node_id"] for h in client.status()["hosts"] if h["running"])
        victim = rng.choice(busy or nodes)
        cluster.kill_host(victim)
        killed_at = time.monotonic()
        kills.append(f"{victim}@{p['done']}")
        cluster.start_host(victim)
        wait_until(lambda v=victim, t=killed_at: fresh_session(client, cluster, v, t), 20, f"{victim} to re-register")

    final = client.wait(dag_id, timeout=45)
    results = client.results(dag_id)
    context = f"{ctx(rng)}kills {kills}: "
    assert final["state"] == "succeeded", f"{context}DAG ended {final}"
    check_all_succeeded_once(results, expected, context)
    lost = [(t["task_id"], a["node_id"]) for t in results["tasks"] for a in t["history"] if a["reason"] == "host_lost"]
    assert lost, f"{context}no attempt was lost with a killed host: the kills did not land mid-task"
    assert {node for _, node in lost} <= {k.split("@")[0] for k in kills}, f"{context}{lost}"
    assert all(cluster.hosts[n].poll() is None for n in nodes), "a restarted host exited"
    print(f"{ctx(rng)}kills {kills}; {len(lost)} attempt(s) lost with a killed host")


# ---------------------------------------------------------------------- 2. controller SIGKILLed


def test_controller_sigkilled_mid_dag_resumes_from_its_state_dir(
    cluster: ChaosCluster, rng: random.Random, tmp_path: Path
) -> None:
    tasks, expected = chains_with_tiles(chains=20, steps=12, tile_every=3, max_iter=5_000_000)
    path = write_dag(tmp_path / "chaos_controller.yaml", "chaos_controller", tasks)
    inc = str(WASM_MODULES / "inc.wasm")
    small_tasks = [{"id": f"s{i}", "module": inc, "inputs": [str(i)]} for i in range(5)]
    small = write_dag(tmp_path / "small.yaml", "small", small_tasks)
    nodes = ["host-a", "host-b"]
    client = started(cluster, nodes)
    host_pids = {n: cluster.hosts[n].pid for n in nodes}

    small_id = client.submit(load_dag(small))
    assert client.wait(small_id, timeout=20)["state"] == "succeeded"
    small_before = client.results(small_id)

    submitted = cli(cluster, "submit", str(path))
    assert submitted.returncode == 0, submitted.stderr
    dag_id = submitted.stdout.splitlines()[0].strip()
    assert dag_id and " " not in dag_id, f"submit's first stdout line is not a DAG id: {submitted.stdout!r}"

    at = int(rng.uniform(0.3, 0.5) * len(tasks))
    wait_until(lambda: client.progress(dag_id)["done"] >= at, 40, f"{at} tasks done")
    before = client.results(dag_id)
    assert before["state"] == "running", f"{ctx(rng)}DAG already {before['state']}: too fast"
    cluster.kill_controller(signal.SIGKILL)
    time.sleep(rng.uniform(0.3, 1.0))  # hosts finish what they were running while the controller is down
    assert all(cluster.hosts[n].poll() is None for n in nodes), "a host exited when the controller died"
    cluster.start_controller()
    restarted = time.monotonic()
    cluster.wait_controller()
    context = f"{ctx(rng)}killed at {before['done']}/{before['total']} done: "

    # Nothing accepted is lost: both DAGs are back, every result recorded before the kill is intact.
    after = retry(lambda: client.results(dag_id), 10, "results after restart")
    assert after["done"] >= before["done"], f"{context}done went back from {before['done']} to {after['done']}"
    done_before = {t["task_id"]: t for t in before["tasks"] if t["state"] == "succeeded"}
    now = by_id(after)
    changed = [
        tid
        for tid, t in done_before.items()
        if (now[tid]["state"], bytes(now[tid]["output"]), now[tid]["node_id"], now[tid]["history"])
        != ("succeeded", bytes(t["output"]), t["node_id"], t["history"])
    ]
    assert not changed, f"{context}results a client saw before the kill changed or were lost: {changed[:10]}"
    small_after = client.results(small_id)
    assert small_after["state"] == "succeeded"
    assert [(t["task_id"], bytes(t["output"])) for t in small_after["tasks"]] == [
        (t["task_id"], bytes(t["output"])) for t in small_before["tasks"]
    ]

    # The same host processes come back on their own.
    cluster.wait_hosts(client, nodes, timeout=20)
    reconnect_s = time.monotonic() - restarted
    assert {n: cluster.hosts[n].pid for n in nodes} == host_pids and all(cluster.hosts[n].poll() is None for n in nodes)

    final = client.wait(dag_id, timeout=45)
    assert final["state"] == "succeeded", f"{context}DAG ended {final} (hosts back after {reconnect_s:.1f}s)"
    results = client.results(dag_id)
    check_all_succeeded_once(results, expected, context)

    # The CLI sees the same thing, `recorded` included.
    shown = cli(cluster, "results", dag_id, "--json")
    assert shown.returncode == 0, shown.stderr
    as_json = json.loads(shown.stdout)
    for t in as_json["tasks"]:
        t["output"] = json_output(t["output"])
    check_all_succeeded_once(as_json, expected, context + "(CLI) ")
    status = json.loads(cli(cluster, "status", "--json").stdout)
    assert {small_id, dag_id} <= {d["dag_id"] for d in status["dags"]}
    requeued = sum(a["reason"] == "host_lost" for t in results["tasks"] for a in t["history"])
    print(f"{context}hosts back {reconnect_s:.2f}s after the restart; {requeued} attempt(s) requeued as host_lost")


# ---------------------------------------------------------------------- 3. a host hung (SIGSTOP)


def test_hung_host_tasks_reassigned_within_liveness_and_late_result_ignored(
    cluster: ChaosCluster, tmp_path: Path
) -> None:
    long = tile_task("long", 16, 10, 7, 4, 1, 40_000_000)  # 4 interior pixels x 40M iterations: ~3 s
    long["retries"] = 0
    long_cpu = tile_cpu_seconds(long)
    inc = str(WASM_MODULES / "inc.wasm")
    quick = [{"id": f"q{i}", "module": inc, "inputs": [str(i)]} for i in range(6)]
    expected = {"long": tile_output(long), **{f"q{i}": inc_output(i + 1) for i in range(6)}}
    path = write_dag(tmp_path / "hung.yaml", "hung", [long, *quick])
    nodes = ["host-a", "host-b"]
    client = started(cluster, nodes)
    dag_id = client.submit(load_dag(path))

    def runner() -> str | None:
        for h in client.status()["hosts"]:
            if f"{dag_id}/long" in h["running"]:
                return str(h["node_id"])
        return None

    victim = wait_until(runner, 20, "the long task to start")
    other = next(n for n in nodes if n != victim)
    proc = cluster.hosts[victim]
    # "running" at the controller means assigned: the host starts its executor a moment later.
    executors = wait_until(lambda: descendants(proc.pid), 10, "the host's executor child")
    # Hang the host late in attempt 1 (its executor has ~40 % of the work left), so attempt 1
    # ends well before attempt 2, started elsewhere a liveness period later, and its result waits.
    start_cpu = cpu_seconds(executors)
    wait_until(lambda: cpu_seconds(executors) - start_cpu >= 0.6 * long_cpu, 20, "attempt 1 to be 60 % done")
    os.kill(proc.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:

        def moved() -> dict[str, Any] | None:
            task = by_id(client.results(dag_id))["long"]
            return task if any(a["node_id"] == other for a in task["history"]) else None

        task = wait_until(moved, 15, "the long task to be reassigned", interval=0.02)
        reassign_s = time.monotonic() - stopped_at
        bound = LIVENESS * HEARTBEAT + 2.0
        assert reassign_s < bound, f"reassigned after {reassign_s:.2f}s, over {bound:.2f}s"
        first = task["history"][0]
        assert (first["node_id"], first["reason"]) == (victim, "host_lost"), task["history"]

        # Let the stopped host's executor finish attempt 1, so a late result is waiting to go out.
        def executor_idle() -> bool:
            a = cpu_seconds(executors)
            time.sleep(0.3)
            return cpu_seconds(executors) - a < 0.02

        wait_until(executor_idle, 15, "the hung host's executor to finish attempt 1", interval=0)
        still = by_id(client.results(dag_id))["long"]
        timing = (
            f"reassigned after {reassign_s:.2f}s, attempt 1 done after {time.monotonic() - stopped_at:.2f}s "
            f"({cpu_seconds(executors):.2f} CPU s)"
        )
        assert still["state"] == "running" and still["node_id"] == other, (
            f"attempt 2 no longer running when the late result is released ({timing}): "
            f"{still['state']} {still['history']}"
        )
    finally:
        kill_pid(proc.pid, signal.SIGCONT)
    resumed_at = time.monotonic()

    final = client.wait(dag_id, timeout=30)
    results = client.results(dag_id)
    assert final["state"] == "succeeded", final
    check_all_succeeded_once(results, expected)
    task = by_id(results)["long"]
    assert task["node_id"] == other and task["attempts"] == 2, task
    assert [(a["node_id"], a["reason"]) for a in task["history"]] == [(victim, "host_lost"), (other, None)]
    if has_recorded_field(results):
        assert task["recorded"] == 1

    # The hung host, once resumed, rejoins by itself.
    wait_until(lambda: fresh_session(client, cluster, victim, resumed_at), 20, f"{victim} to re-register")
    assert proc.poll() is None, f"{victim} exited after SIGCONT with {proc.returncode}"
    print(f"{timing}; bound {bound:.2f}s")


# ---------------------------------------------------------------------- 4. retries exhausted


def test_task_failing_every_attempt_fails_its_dependents_and_the_rest_finishes(
    cluster: ChaosCluster, tmp_path: Path
) -> None:
    inc = str(WASM_MODULES / "inc.wasm")
    tasks: list[dict[str, Any]] = [
        {"id": "bad", "module": str(TEST_MODULES / "exit3.wasm"), "retries": 2},
        {"id": "dep1", "module": inc, "inputs": ["output_of_bad"], "depends_on": ["bad"]},
        {"id": "dep2", "module": inc, "inputs": ["output_of_dep1", "output_of_c9"], "depends_on": ["dep1", "c9"]},
    ]
    expected: dict[str, bytes] = {}
    for i in range(20):
        tasks.append({"id": f"i{i}", "module": inc, "inputs": [str(i)]})
        expected[f"i{i}"] = inc_output(i + 1)
    for i in range(10):
        deps = {"inputs": [f"output_of_c{i - 1}"], "depends_on": [f"c{i - 1}"]} if i else {"inputs": ["100"]}
        tasks.append({"id": f"c{i}", "module": inc, **deps})
        expected[f"c{i}"] = inc_output(100 + i + 1)
    path = write_dag(tmp_path / "failing.yaml", "failing", tasks)
    client = started(cluster, ["host-a", "host-b"])
    dag_id = client.submit(load_dag(path))

    final = client.wait(dag_id, timeout=30)
    results = client.results(dag_id)
    assert final["state"] == "failed", final
    assert results["state"] == "failed"
    check_tasks_succeeded_once(results, expected)
    tasks_by_id = by_id(results)
    bad = tasks_by_id["bad"]
    assert bad["state"] == "failed" and bad["reason"] == "exit_code", bad
    assert bad["attempts"] == 3, bad
    assert [a["attempt"] for a in bad["history"]] == [1, 2, 3], bad["history"]
    assert all(a["reason"] == "exit_code" for a in bad["history"]), bad["history"]
    for dep in ("dep1", "dep2"):
        t = tasks_by_id[dep]
        assert t["state"] == "upstream_failed" and t["attempts"] == 0 and not t["history"], t
    counts = final["counts"]
    assert (counts["succeeded"], counts["failed"], counts["upstream_failed"]) == (30, 1, 2), counts
    assert final["done"] == final["total"] == 33, final
