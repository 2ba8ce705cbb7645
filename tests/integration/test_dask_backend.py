"""`--backend dask`: DAGs on a real Dask LocalCluster started here on 127.0.0.1 (skipped without Dask).

Prototype tests (docs/BACKENDS.md): the same outputs as the default backend, hostile modules stopped at
their limits inside the Dask workers, and Bxthre3's retry policy instead of Dask's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("distributed")

from bxthre3.backends import parse_backend  # noqa: E402
from bxthre3.backends.dask_backend import DaskBackend, run_dag  # noqa: E402
from bxthre3.backends.driver import Policy  # noqa: E402
from bxthre3.dag.yaml_loader import load_dag  # noqa: E402
from bxthre3.wasm import choice as engines  # noqa: E402
from tests.conftest import REPO, TEST_MODULES, WASM_MODULES, subprocess_env  # noqa: E402

GREET = str(WASM_MODULES / "greet_2.wasm")


@pytest.fixture(scope="module")
def dask_client() -> Any:
    with DaskBackend(parse_backend("dask:local"), workers=2, threads=1) as backend:
        yield backend.client


def run(tmp_path: Path, client: Any, tasks: list[dict[str, Any]], ram_mb: int = 64) -> dict[str, dict[str, Any]]:
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump({"name": "dag", "tasks": tasks}, sort_keys=False))
    policy = Policy(engine=engines.WASM3, ram_mb=ram_mb, retry_backoff=0.05)
    done = run_dag(load_dag(path), client, policy)
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
    assert outputs("--backend", "dask:local") == default


def test_hostile_modules_stop_at_their_limits_in_the_workers(tmp_path: Path, dask_client: Any) -> None:
    # (invalid_module never gets this far: the loader refuses such a DAG, on every backend)
    hostile = [("spin", {"timeout": 2}, "timeout"), ("membomb", {}, "memory_limit"), ("flood", {}, "output_limit"),
               ("trap", {}, "trap"), ("recurse", {}, "trap")]  # fmt: skip
    tasks = []
    for name, extra, _ in hostile:
        tasks.append({"id": f"hostile_{name}", "module": str(TEST_MODULES / f"{name}.wasm"), "retries": 0, **extra})
        tasks.append({"id": f"after_{name}", "module": GREET, "inputs": [name]})
    started = time.monotonic()
    by_id = run(tmp_path, dask_client, tasks)
    assert time.monotonic() - started < 30
    for name, _, reason in hostile:
        bad = by_id[f"hostile_{name}"]
        assert (bad["state"], bad["reason"]) == ("failed", reason), (name, bad)
        assert by_id[f"after_{name}"]["output"] == f"Hola, {name}!\n".encode()
    assert 1.9 <= by_id["hostile_spin"]["duration_s"] < 4
    assert "64 MiB" in by_id["hostile_membomb"]["error"]


def test_retries_follow_bxthre3s_policy_not_dasks(tmp_path: Path, dask_client: Any) -> None:
    tasks = [
        {"id": "exits", "module": str(TEST_MODULES / "exit3.wasm"), "retries": 2},  # exit_code: retried
        {"id": "bomb", "module": str(TEST_MODULES / "membomb.wasm"), "retries": 2},  # deterministic: not retried
        {"id": "child", "module": GREET, "inputs": ["output_of_exits"], "depends_on": ["exits"]},
        {"id": "missing", "module": GREET, "inputs": ["output_of_ok/nope"], "depends_on": ["ok"], "retries": 2},
        {"id": "ok", "module": GREET, "inputs": ["x"]},
    ]
    by_id = run(tmp_path, dask_client, tasks)
    assert (by_id["exits"]["reason"], by_id["exits"]["attempts"], by_id["exits"]["exit_code"]) == ("exit_code", 3, 3)
    assert (by_id["bomb"]["reason"], by_id["bomb"]["attempts"]) == ("memory_limit", 1)
    assert by_id["child"]["state"] == "upstream_failed"
    assert (by_id["missing"]["reason"], by_id["missing"]["attempts"]) == ("missing_input", 1)
