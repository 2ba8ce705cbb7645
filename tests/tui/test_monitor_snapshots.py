"""The monitor with a running DAG against a fake controller (what the screen says, not pixels: see
test_snapshot_matrix.py for the pictures of every screen at every size)."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Label, ProgressBar, Static

from bxthre3.tui.adaptive_table import AdaptiveTable
from bxthre3.tui.help_screen import HelpScreen
from bxthre3.tui.monitor import DagItem, MonitorScreen

from .snapshot_apps import monitor_app, picker_app


async def _wait_for(pilot, predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def _settle_monitor(n_tasks: int, first_output: str):
    async def settle(pilot) -> None:
        def applied() -> bool:
            screen = pilot.app.screen
            if not isinstance(screen, MonitorScreen):
                return False
            items = list(screen.query(DagItem))
            return (
                len(screen.query_one("#tasks", AdaptiveTable).keys) == n_tasks
                and len(screen.query_one("#hosts", AdaptiveTable).keys) == 2
                and len(items) == 1
                and "hello_fanout" in str(items[0].query_one(".dag-label", Label).render())
                and first_output in str(screen.query_one("#output", Static).render())
            )

        await _wait_for(pilot, applied, "the fake controller's snapshot and the first task's output")
        await pilot.pause()
        await pilot.wait_for_animation()
        await pilot.pause(0.5)  # a progress bar's fill animates past wait_for_animation; let it land
        await pilot.wait_for_animation()

    return settle


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_monitor_with_a_running_dag(size: tuple[int, int]) -> None:
    """Not a pixel snapshot: a part-filled progress bar's half-cell glyph differs from run to run
    (╸ or ╺ at 40 %), so this checks what the screen says instead."""
    import asyncio

    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=size) as pilot:
            await _settle_monitor(5, "prepared 3 greetings")(pilot)
            screen = app.screen
            [item] = list(screen.query(DagItem))
            label = str(item.query_one(".dag-label", Label).render())
            assert "● hello_fanout d-0001 · share 50%" in label
            counts = str(item.query_one(".dag-counts", Label).render())
            assert counts == "2/5 ●2 ·1 ✓2"
            bar = item.query_one(".dag-bar", ProgressBar)
            assert (bar.progress, bar.total) == (2, 5)
            tasks = screen.query_one("#tasks", AdaptiveTable)
            states = sorted(tasks.cells(k)["state"].split(" ", 1)[1] for k in tasks.keys)
            assert states == ["pending", "running", "running", "succeeded", "succeeded"]
            assert len(screen.query_one("#hosts", AdaptiveTable).keys) == 2

    asyncio.run(run())


def test_help_screen_80x24(snap_compare) -> None:
    async def open_help(pilot) -> None:
        await pilot.pause()
        await pilot.press("question_mark")
        await _wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help screen")
        await pilot.pause()
        await pilot.wait_for_animation()
        await pilot.pause()

    assert snap_compare(picker_app(), terminal_size=(80, 24), run_before=open_help)
