"""The monitor shows hostile task output and host names as written, on a real controller and host:
rich markup stays literal, control sequences are escaped, nothing reaches the terminal raw."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Static

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.tui.adaptive_table import AdaptiveTable
from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.monitor import MonitorScreen
from tests.conftest import REPO, TEST_TOKEN, HostProcesses, RunningController, wait_for_hosts

from .test_app import wait_until

ECHO_BOTH = REPO / "tests" / "data" / "modules" / "echo_both.wasm"
HOSTILE = (
    "[bold red]not markup[/] [link=https://example.com]x[/link]\n"
    "\x1b[2J\x1b]0;pwned\x07 abc\rdef back\x08space \u009b31m \u202eevil\u202c\n"
)
HOST = "host-hostile"
DEVICE = "dev-[b]bold[/b]"
"""Node ids are checked (they name files); a device name is free text any member can send."""


def screen_text(app) -> str:
    """What the terminal would show, from Textual's own export of the screen."""
    return app.export_screenshot().replace("&#160;", " ").replace("&#x27;", "'")


def test_hostile_output_and_host_names_show_literally(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    (tmp_path / "hostile.txt").write_text(HOSTILE)
    dag = tmp_path / "hostile.yaml"
    dag.write_text(f"name: hostile\ntasks:\n  - id: shout\n    module: {ECHO_BOTH}\n    inputs: ['file:hostile.txt']\n")
    hosts.start(controller.address, HOST, extra=("--device", DEVICE))
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(dag))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"

    async def run() -> None:
        app = make_app(controller=controller.address, backend=Backend(token=TEST_TOKEN), environ={},
                       ram_probe=lambda: 4096)  # fmt: skip
        async with app.run_test(size=(200, 60)) as pilot:  # wide: every host column
            await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "the monitor")
            monitor = app.screen
            tasks = monitor.query_one("#tasks", AdaptiveTable)
            await wait_until(pilot, lambda: tasks.row_count == 1, 20, "the task row")
            tasks.focus()
            output = monitor.query_one("#output", Static)
            await wait_until(pilot, lambda: "not markup" in str(output.render()), 20, "the task's output")
            shown = str(output.render())
            assert "[bold red]not markup[/] [link=https://example.com]x[/link]" in shown
            assert "\\x1b[2J\\x1b]0;pwned\\x07 abc\\rdef back\\x08space \\x9b31m \\u202eevil\\u202c" in shown
            for raw in ("\x1b", "\x07", "\r", "\x08", "\u009b", "\u202e"):
                assert raw not in shown
            # The hosts table shows the device's name, not bold text (it fills from the next status poll).
            hosts = monitor.query_one("#hosts", AdaptiveTable)
            await wait_until(pilot, lambda: HOST in hosts.keys, 20, "the host's row")
            assert hosts.cells(HOST)["device"] == DEVICE
            # Cut to the column's width, but literally: the markup shows as written.
            await wait_until(pilot, lambda: DEVICE[:7] in screen_text(app), 20, "the device's name shown literally")
            both = lambda: "[bold red]not markup[/]" in (t := screen_text(app)) and "\\x1b]0;pwned" in t  # noqa: E731
            await wait_until(pilot, both, 20, "the output shown literally on the screen")
            await pilot.press("q")

    asyncio.run(run())
