"""The monitor says what is wrong with its controller, against real ones: stopped, or another cluster's token."""

from __future__ import annotations

from bxthre3.scheduler import SchedulerConfig
from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.monitor import MonitorScreen
from tests.conftest import TEST_TOKEN, RunningController
from tests.tui.test_controls import run, wait_until


def _log(app) -> str:
    return "\n".join(app.screen.log_texts) if isinstance(app.screen, MonitorScreen) else ""


def _totals(app) -> str:
    return str(app.screen.query_one("#totals").render())


def test_the_monitor_says_the_controller_stopped_and_when_it_is_back() -> None:
    running = RunningController(SchedulerConfig(heartbeat_interval=0.25, liveness=4))
    app = make_app(controller=running.address, backend=Backend(token=TEST_TOKEN), environ={}, ram_probe=lambda: 4096)

    async def script(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), "monitor")
        await wait_until(pilot, lambda: "tasks/s" in _totals(app), "the first status")
        running.close()
        await wait_until(pilot, lambda: "stopped: it answered before" in _log(app), "the words", 15)
        assert "token" not in _log(app).split("stopped: it answered before")[0].splitlines()[-1]
        assert "✗" in _totals(app)
        await pilot.press("ctrl+c")

    try:
        assert run(app, script, size=(160, 48)) == 0
    finally:
        if running.thread.is_alive():
            running.close()


def test_the_monitor_says_the_token_is_another_clusters() -> None:
    running = RunningController(SchedulerConfig(heartbeat_interval=0.25, liveness=4))
    backend = Backend(token="bxt1-" + "W" * 43)
    app = make_app(controller=running.address, backend=backend, environ={}, ram_probe=lambda: 4096)

    async def script(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), "monitor")
        await wait_until(pilot, lambda: "refused our token" in _log(app), "the words", 15)
        assert _log(app).count("refused our token") == 1, "told once, not at every retry"
        await pilot.press("ctrl+c")

    try:
        assert run(app, script, size=(80, 24)) == 0
    finally:
        running.close()
