"""Monitor actions against the fake controller: cancel needs a second press, retry shows the refusal."""

from __future__ import annotations

import asyncio

from textual.widgets import RichLog

from .snapshot_apps import monitor_app
from .test_app import wait_until


def log_text(screen) -> str:
    return "\n".join(str(line.text) for line in screen.query_one("#log", RichLog).lines)


def test_cancel_asks_for_a_second_press_and_retry_reports_the_controllers_answer() -> None:
    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=(120, 36)) as pilot:
            monitor = app.screen
            await wait_until(pilot, lambda: monitor.selected_dag == "d-0001", 5, "the DAG to be selected")
            await pilot.press("c")
            await pilot.pause(0.2)
            assert "cancel d-0001" not in log_text(monitor), "one press only arms the cancel"
            await pilot.press("c")
            await wait_until(pilot, lambda: "cancel d-0001: 0 task(s) cancelled" in log_text(monitor), 5, "cancel")
            await pilot.press("r")
            await wait_until(pilot, lambda: "retry d-0001 failed" in log_text(monitor), 5, "the retry refusal")
            assert "has no failed, upstream-failed or cancelled" in log_text(monitor)  # (wrapped)

    asyncio.run(run())
