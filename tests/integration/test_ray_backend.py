"""`--backend ray`: DAGs on a real local Ray started here (skipped without Ray; docs/BACKENDS.md).

Run it in a loopback-only network namespace, `benchmarks/ray_in_netns.sh` (root): Ray opens many ports and,
outside one, may bind beyond loopback. The README's test command does not install Ray (heavy), so there
this module is skipped.

As `test_dask_backend.py`: the same outputs as the default backend, hostile modules stopped at their
limits inside the Ray workers, Bxthre3's retry policy instead of Ray's, and a worker killed mid-attempt
costing a `host_lost` attempt that runs again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("ray")

import psutil  # noqa: E402

from bxthre3.backends.driver import Policy  # noqa: E402
from bxthre3.backends.opening import new_run, parse_backend  # noqa: E402
from bxthre3.backends.ray_backend import RayBackend, run_dag  # noqa: E402
from bxthre3.common.errors import ClusterError  # noqa: E402
from bxthre3.dag.yaml_loader import load_dag  # noqa: E402
from bxthre3.wasm import choice as engines  # noqa: E402
from tests.backend_checks import (  # noqa: E402
    EXAMPLES,
    GREET,
    check_hostile,
    check_retries,
    comparable,
    hostile_tasks,
    printed_json,
    retry_tasks,
)
from tests.conftest import REPO, TEST_MODULES, subprocess_env  # noqa: E402

TASK_TITLE = "ray::_attempt_on_ray_worker"
"""A Ray worker's process title while it runs one of our attempts."""


@pytest.fixture(scope="module")
def ray_local() -> Any:
    with RayBackend(parse_backend("ray:local"), workers=2, threads=1) as backend:
        yield backend


def run(tmp_path: Path, tasks: list[dict[str, Any]], ram_mb: int = 64) -> dict[str, dict[str, Any]]:
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump({"name": "dag", "tasks": tasks}, sort_keys=False))
    policy = Policy(engine=engines.WASM3, ram_mb=ram_mb, retry_backoff=0.05)
    done = run_dag(new_run(load_dag(path), policy))
    return {t["task_id"]: t for t in done.results(time.time())["tasks"]}


def test_hello_fanout_gives_the_default_backends_outputs(tmp_path: Path) -> None:
    def outputs(*extra: str) -> dict[str, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "bxthre3", "run", str(REPO / "dags" / "hello_fanout.yaml"), "--json", *extra],
            capture_output=True, text=True, timeout=120, env=subprocess_env(), cwd=REPO, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return {t["task_id"]: t["output"] for t in json.loads(proc.stdout)["tasks"]}

    default = outputs()
    assert default["aggregate"] == "Hello, Bxthre3!\nHola, Bxthre3!\n"
    assert outputs("--backend", "ray:local") == default


def test_no_cluster_is_one_line_not_a_traceback() -> None:
    with pytest.raises(ClusterError, match=r"--backend ray:auto: cannot find a Ray cluster.*ray start --head"):
        with RayBackend(parse_backend("ray:auto")):
            pass


def test_hostile_modules_stop_at_their_limits_in_the_workers(tmp_path: Path, ray_local: Any) -> None:
    started = time.monotonic()
    check_hostile(run(tmp_path, hostile_tasks()))
    assert time.monotonic() - started < 30


def test_retries_follow_bxthre3s_policy_not_rays(tmp_path: Path, ray_local: Any) -> None:
    check_retries(run(tmp_path, retry_tasks()))


def _our_attempt_workers() -> list[psutil.Process]:
    """Ray workers running one of our attempts: descendants of this process (its Ray), by title."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if " ".join(proc.cmdline()).startswith(TASK_TITLE):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_a_worker_killed_mid_attempt_is_host_lost_and_runs_again(tmp_path: Path, ray_local: Any) -> None:
    killed: list[int] = []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            time.sleep(0.2)
            for proc in _our_attempt_workers():
                children = proc.children(recursive=True)  # the executor child must not outlive it
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
                killed.extend(c.pid for c in children)
                return

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    tasks = [{"id": "spin", "module": str(TEST_MODULES / "spin.wasm"), "timeout": 3, "retries": 0}]
    by_id = run(tmp_path, tasks)
    killer.join(timeout=30)
    assert killed, "no Ray worker ran the attempt"
    spin = by_id["spin"]
    assert [h["reason"] for h in spin["history"]] == ["host_lost", "timeout"], spin["history"]
    assert "WorkerCrashedError" in spin["history"][0]["error"]
    assert spin["attempts"] == 2 and spin["reason"] == "timeout"
    time.sleep(1.0)
    assert not [pid for pid in killed if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_dag_gives_the_default_backends_results(example: str, ray_local: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", "run", f"dags/{example}", "--json"], capture_output=True, text=True,
        timeout=180, env=subprocess_env(), cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    done = run_dag(new_run(load_dag(REPO / "dags" / example), Policy(engine=engines.AUTO)))
    code, on_ray = printed_json(done.results(time.time()))
    assert code == proc.returncode
    assert comparable(on_ray) == comparable(json.loads(proc.stdout))


def test_memory_is_reserved_on_the_node_and_raises_the_modules_cap(tmp_path: Path, ray_local: Any) -> None:
    bomb = str(TEST_MODULES / "membomb.wasm")
    by_id = run(tmp_path, [{"id": "bomb", "module": bomb, "retries": 0, "memory": 96},
                           {"id": "ok", "module": GREET, "inputs": ["x"], "memory": 100}])  # fmt: skip
    assert by_id["bomb"]["reason"] == "memory_limit" and "96 MiB" in by_id["bomb"]["error"]
    assert by_id["ok"]["output"] == b"Hola, x!\n"  # ran with Ray's `memory` resource reserved
