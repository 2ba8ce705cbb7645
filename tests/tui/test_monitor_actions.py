"""Monitor actions against the fake controller: cancel needs a second press, retry shows the refusal."""

from __future__ import annotations

import asyncio

from bxthre3.tui.adaptive_table import AdaptiveTable

from .snapshot_apps import monitor_app
from .test_app import wait_until


def log_text(screen) -> str:
    return "\n".join(screen.log_texts)


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
            assert "has no failed, upstream-failed or cancelled" in log_text(monitor)

    asyncio.run(run())


def test_a_device_quarantined_or_trusted_while_watching_is_told_in_the_log() -> None:
    from bxthre3.tui.messages import ClusterSnapshot

    from .fake_backend import quarantine

    async def run() -> None:
        app = monitor_app("succeeded")
        async with app.run_test(size=(120, 36)) as pilot:
            monitor = app.screen
            await wait_until(pilot, lambda: monitor.selected_dag == "d-0001", 5, "the first snapshot")
            # the fake pushes its one update after a poll: ours must come after it, not be overwritten
            await wait_until(pilot, lambda: monitor.updates_received == 1, 5, "the fake's pushed update")
            await pilot.pause(0.3)
            status = app.screen.backend.status  # type: ignore[attr-defined]
            assert "quarantined" not in log_text(monitor)
            monitor.post_message(ClusterSnapshot(quarantine(status), None))
            await wait_until(pilot, lambda: "old-phone" in log_text(monitor), 5, "the quarantine's log line")
            assert "device old-phone (9c01bbbb…) quarantined after 3 mismatch(es)" in log_text(monitor)
            assert any("old-phone quarantined" in str(n.message) for n in app._notifications)
            hosts = monitor.query_one("#hosts", AdaptiveTable)
            assert hosts.cells("node-1")["state"] == "⚠ quarantined" and hosts.cells("node-0")["state"] == "○ idle"
            monitor.post_message(ClusterSnapshot(status, None))
            await wait_until(pilot, lambda: "trusted again" in log_text(monitor), 5, "the trust's log line")
            assert hosts.cells("node-1")["state"] == "○ idle"

    asyncio.run(run())
