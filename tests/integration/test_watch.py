"""Pushed updates for UIs: subscribe, get coalesced snapshots, stop when the lease ends."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from tests.conftest import WASM_MODULES, HostProcesses, RunningController


def test_updates_are_pushed_coalesced_and_stop_after_the_lease(
    tmp_path: Path, controller: RunningController, hosts: HostProcesses
) -> None:
    watcher = controller.client()
    other = controller.client()
    try:
        assert watcher.watch(lease=30)["push_interval"] == 0.25
        first = watcher.next_update(2.0)
        assert first is not None and first["totals"]["hosts"] == 0
        hosts.start(controller.address, "w1", slots=2)
        deadline = time.monotonic() + 20
        seen = first
        while seen["totals"]["hosts"] < 1 and time.monotonic() < deadline:
            seen = watcher.next_update(1.0) or seen
        assert seen["totals"]["hosts"] == 1
        tasks = [{"id": f"t{i}", "module": str(WASM_MODULES / "noop.wasm")} for i in range(300)]
        path = tmp_path / "many.yaml"
        path.write_text(yaml.safe_dump({"name": "many", "tasks": tasks}))
        started = time.monotonic()
        dag_id = other.submit(load_dag(path))
        updates = 0
        while time.monotonic() - started < 30:
            update = watcher.next_update(1.0)
            if update is None:
                continue
            updates += 1
            dag = next((d for d in update["dags"] if d["dag_id"] == dag_id), None)
            if dag and dag["state"] == "succeeded":
                break
        elapsed = time.monotonic() - started
        assert dag and dag["state"] == "succeeded" and dag["done"] == 300
        # 300 task results became at most one update per push interval (plus slack for timing)
        assert updates <= elapsed / 0.25 + 3, (updates, elapsed)
        # Only the rate still changes, decaying to 0 within its 10 s window: pushed at most once a second
        # (RATE_PUSH_S), then nothing changes at all: no more pushes.
        rate_only = 0
        while update is None or update["totals"]["tasks_per_s"] > 0:
            update = watcher.next_update(2.0)
            rate_only += update is not None
            assert time.monotonic() - started < 60, "the rate never reached 0"
        assert rate_only <= 12, rate_only
        assert watcher.next_update(1.5) is None
    finally:
        watcher.close()
        other.close()


def test_lease_expiry_stops_the_pushes(controller: RunningController, hosts: HostProcesses) -> None:
    watcher = controller.client()
    try:
        watcher.watch(lease=1)
        assert watcher.next_update(2.0) is not None
        time.sleep(1.5)  # lease over
        hosts.start(controller.address, "late")
        time.sleep(2.0)
        assert watcher.next_update(0.5) is None
    finally:
        watcher.close()


def test_a_request_in_between_does_not_lose_an_update(controller: RunningController) -> None:
    watcher: ControllerClient = controller.client()
    try:
        watcher.watch(lease=10)
        time.sleep(0.6)  # the first update arrives while we are not reading
        watcher.status()  # a request reads past it; it must be kept
        assert watcher.next_update(0.1) is not None
    finally:
        watcher.close()
