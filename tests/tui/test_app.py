"""The real app driven by Pilot: pick roles, the live RAM computation, and a DAG on a real cluster."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from textual.css.query import NoMatches
from textual.widgets import DataTable, Static

from bxthre3.tui.adaptive_table import AdaptiveTable
from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.monitor import MonitorScreen
from bxthre3.tui.role_form import RoleFormScreen
from bxthre3.tui.role_picker import RolePickerScreen

REPO = Path(__file__).resolve().parents[2]


def holds(predicate) -> bool:
    """The predicate's answer; a widget it asks for that is not there yet (a screen mid-recompose) is a no."""
    try:
        return bool(predicate())
    except NoMatches:
        return False


async def wait_until(pilot, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.1)


def test_digits_arrows_and_live_node_count() -> None:
    async def run() -> None:
        app = make_app(environ={"RAM_PER_NODE": "256"}, ram_probe=lambda: 2560, cpus=16)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, RolePickerScreen)
            await pilot.press("down", "down", "enter")  # 3: node manager only
            await pilot.pause()
            assert isinstance(app.screen, RoleFormScreen) and app.screen.role.key == "node-manager"
            await app.workers.wait_for_complete()
            await pilot.pause()
            nodes = app.screen.query_one("#nodes", Static)
            assert "→ 8 node(s)" in str(nodes.render())  # (2560 - 512) // 256
            ram = app.screen.query_one("#ram")
            ram.value = "1024"
            await pilot.pause()
            assert "→ 2 node(s)" in str(nodes.render())
            await pilot.press("escape")
            await pilot.press("2")
            await pilot.pause()
            assert app.screen.role.key == "controller"

    asyncio.run(run())


def test_all_components_runs_hello_fanout_and_quits_clean(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    backend = Backend(hosts=2, port=0, role_args={"all": ["--state-dir", ":memory:"]})
    pids: list[int] = []

    async def run() -> None:
        app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("5")
            await pilot.pause()
            pilot.app.screen.query_one("#start").press()
            await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "the monitor")
            monitor = app.screen
            hosts = monitor.query_one("#hosts", DataTable)
            await wait_until(pilot, lambda: hosts.row_count == 2, 30, "2 hosts in the hosts table")
            await wait_until(pilot, lambda: len(backend.host_pids()) == 2, 10, "the node manager to report 2 hosts")
            pids.extend(backend.host_pids())

            await pilot.press("s")
            await pilot.pause()
            await pilot.press(*"dags/hello_fanout.yaml", "enter")

            tasks = monitor.query_one("#tasks", AdaptiveTable)

            def succeeded() -> bool:
                return tasks.row_count == 4 and all(tasks.cells(k)["state"] == "✓ succeeded" for k in tasks.keys)

            await wait_until(pilot, succeeded, 30, "hello_fanout to succeed")
            assert "hello_fanout" in str(tasks.border_title) and "succeeded" in str(tasks.border_title)
            # Show the aggregate task's output: focus the task table, go to its last row.
            tasks.focus()
            await pilot.press("down", "down", "down")
            await pilot.pause()
            output = str(monitor.query_one("#output", Static).render())
            assert "Hello, Bxthre3!" in output and "Hola, Bxthre3!" in output
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, 15, "the app to exit")

    try:
        asyncio.run(run())
    finally:
        backend.close()  # a failed test must not leave hosts behind either
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"host process {pid} still exists after quitting")
