"""docs/JSON.md against a live controller: every documented field is there, and nothing undocumented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import HostProcesses, RunningController, subprocess_env, wait_for

REPO = Path(__file__).resolve().parents[2]


def documented_tables() -> list[set[str]]:
    """The field names of each table in docs/JSON.md, in order."""
    tables: list[set[str]] = []
    current: set[str] | None = None
    for line in (REPO / "docs" / "JSON.md").read_text().splitlines():
        row = re.match(r"^\| `([a-z0-9_]+)` \|", line)
        if row:
            if current is None:
                current = set()
                tables.append(current)
            current.add(row.group(1))
        elif not line.startswith("|"):
            current = None
    return tables


def bxthre3_json(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", *args, "--json"], capture_output=True, text=True, timeout=30,
        env=subprocess_env(),
    )  # fmt: skip
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def test_status_and_results_json_match_the_documentation(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    status_top, totals, host, device, quarantined, summary, task, named_output, *_ = documented_tables()
    hosts.start(controller.address, "json-host")
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
    wait_for(lambda: client.status()["hosts"][0]["rss_mb"] > 0, 10, "a heartbeat with the host's memory use")

    status = bxthre3_json("status", "--controller", str(controller.address))
    assert set(status) == status_top and status["format"] == 1
    assert set(status["totals"]) == totals
    [h] = status["hosts"]
    assert set(h) == host
    assert 5 < h["rss_mb"] < 1024 and h["state"] in ("idle", "busy")
    assert all(set(d) == device for d in status["devices"].values())
    assert status["quarantined"] == [] and h["quarantined"] is False and h["speed"] > 0
    assert set(status["dags"][0]) == summary

    results = bxthre3_json("results", dag_id, "--controller", str(controller.address))
    assert set(results) == summary | {"format", "tasks"}
    assert all(set(t) == task for t in results["tasks"])
    assert {h2 for t in results["tasks"] for entry in t["history"] for h2 in entry} == {
        "attempt",
        "node_id",
        "reason",
        "error",
    }

    # Named outputs: the image pipeline writes files under /out.
    pipeline = client.submit(load_dag(REPO / "dags" / "image_pipeline.yaml"))
    assert client.wait(pipeline, timeout=60)["state"] == "succeeded"
    results = bxthre3_json("results", pipeline, "--controller", str(controller.address))
    assert results["format"] == 1 and all(set(t) == task for t in results["tasks"])
    listed = [f for t in results["tasks"] for f in t["files"]]
    assert len(listed) == 5 and all(set(f) == named_output for f in listed)
    assert all(isinstance(f["size"], int) and re.fullmatch("[0-9a-f]{64}", f["sha256"]) for f in listed)


def test_the_view_types_name_the_documented_fields() -> None:
    """`bxthre3.controller.views`' TypedDicts, which the CLI and TUI are type-checked against, name exactly the
    fields docs/JSON.md lists (no controller needed: this is the contract, the test above its output)."""
    from bxthre3.controller import views

    def keys(shape: Any) -> set[str]:
        return set(shape.__required_keys__ | shape.__optional_keys__)

    (status_top, totals, host, device, quarantined, summary, task, named_output, cache,
     activity, host_activity, segment, structure, group) = documented_tables()  # fmt: skip
    lines = (REPO / "docs" / "JSON.md").read_text().splitlines()
    [controller_row] = [line for line in lines if line.startswith("| `controller` |")]
    assert keys(views.StatusView) == status_top
    assert keys(views.ControllerStats) == set(re.findall(r"`([a-z_]+)` \(", controller_row))
    assert keys(views.Totals) == totals
    assert keys(views.HostView) == host
    assert keys(views.DeviceView) == device
    assert keys(views.QuarantineView) == quarantined
    assert keys(views.DagSummary) == summary
    assert keys(views.ResultsView) == summary | {"format", "tasks"}
    assert keys(views.TaskView) == task
    assert keys(views.AttemptView) == {"attempt", "node_id", "reason", "error"}
    assert keys(views.FileView) == named_output | {"data"}  # `data`: only when asked for, never in --json
    assert views.FileView.__optional_keys__ == {"data"}
    assert keys(views.CacheStats) == cache
    assert keys(views.ActivityView) == activity
    assert keys(views.HostActivity) == host_activity
    assert keys(views.SegmentView) == segment
    assert keys(views.StructureView) == structure
    assert keys(views.GroupView) == group
