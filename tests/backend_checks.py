"""What every backend (`--backend dask…`, `ray…`) must show, shared by tests/integration/test_dask_backend.py and
test_ray_backend.py: the DAGs and the checks, not the engines (nothing of Dask or Ray is imported here).

Each test file runs a list of task dicts on its engine and hands the per-task results (`DagRun.results()`'s
tasks by id) to the checks below.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from bxthre3.commands.dag_results import _print_results
from tests.conftest import REPO, TEST_MODULES, WASM_MODULES

GREET = str(WASM_MODULES / "greet_2.wasm")
EXAMPLES = sorted(p.name for p in (REPO / "dags").glob("*.yaml"))

HOSTILE = [("spin", {"timeout": 2}, "timeout"), ("membomb", {}, "memory_limit"), ("flood", {}, "output_limit"),
           ("trap", {}, "trap"), ("recurse", {}, "trap")]  # fmt: skip
"""Module, extra task fields, the reason it must fail with (invalid_module never gets this far: the loader
refuses such a DAG, on every backend)."""


def hostile_tasks() -> list[dict[str, Any]]:
    """Each hostile module, and after each a greeter that must still run (the worker survived)."""
    tasks = []
    for name, extra, _ in HOSTILE:
        tasks.append({"id": f"hostile_{name}", "module": str(TEST_MODULES / f"{name}.wasm"), "retries": 0, **extra})
        tasks.append({"id": f"after_{name}", "module": GREET, "inputs": [name]})
    return tasks


def check_hostile(by_id: dict[str, dict[str, Any]], ram_mb: int = 64) -> None:
    for name, _, reason in HOSTILE:
        bad = by_id[f"hostile_{name}"]
        assert (bad["state"], bad["reason"]) == ("failed", reason), (name, bad["error"])
        assert by_id[f"after_{name}"]["output"] == f"Hola, {name}!\n".encode()
    assert 1.9 <= by_id["hostile_spin"]["duration_s"] < 4
    assert f"{ram_mb} MiB" in by_id["hostile_membomb"]["error"]


def retry_tasks() -> list[dict[str, Any]]:
    return [
        {"id": "exits", "module": str(TEST_MODULES / "exit3.wasm"), "retries": 2},  # exit_code: retried
        {"id": "bomb", "module": str(TEST_MODULES / "membomb.wasm"), "retries": 2},  # deterministic: not retried
        {"id": "child", "module": GREET, "inputs": ["output_of_exits"], "depends_on": ["exits"]},
        {"id": "missing", "module": GREET, "inputs": ["output_of_ok/nope"], "depends_on": ["ok"], "retries": 2},
        {"id": "ok", "module": GREET, "inputs": ["x"]},
    ]


def check_retries(by_id: dict[str, dict[str, Any]]) -> None:
    """Bxthre3's retry policy, not the engine's: exit_code retried, deterministic failures not."""
    assert (by_id["exits"]["reason"], by_id["exits"]["attempts"], by_id["exits"]["exit_code"]) == ("exit_code", 3, 3)
    assert (by_id["bomb"]["reason"], by_id["bomb"]["attempts"]) == ("memory_limit", 1)
    assert by_id["child"]["state"] == "upstream_failed"
    assert (by_id["missing"]["reason"], by_id["missing"]["attempts"]) == ("missing_input", 1)


def comparable(results_json: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the backend: each task's state, output, reason, exit code, files."""
    keys = ("state", "output", "stderr", "reason", "exit_code", "files")  # not attempts: a loaded machine retries
    return {t["task_id"]: {k: t[k] for k in keys} for t in results_json["tasks"]} | {"state": results_json["state"]}


def printed_json(results: Any) -> tuple[int, dict[str, Any]]:
    """`bxthre3 run --json`'s output for these results (the CLI's own printer), and its exit code."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = _print_results(results, as_json=True)
    return code, json.loads(out.getvalue())
