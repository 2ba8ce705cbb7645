"""Role screens against the real roles: the TUI starts `bxthre3 controller|node-manager|host` as children
(loopback only), shows their own live state, opens the monitor on their controller, and stops them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from textual.widgets import DataTable, Static

from bxthre3.dag.yaml_loader import load_dag
from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.monitor import MonitorScreen
from bxthre3.tui.role_form import RoleFormScreen
from bxthre3.tui.role_screens import ControllerRoleScreen, HostRoleScreen, NodeManagerRoleScreen
from tests.conftest import RunningController, subprocess_env, wait_for

from .test_app import wait_until

REPO = Path(__file__).resolve().parents[2]
LOOPBACK_CONTROLLER = ["--host", "127.0.0.1", "--no-beacon", "--state-dir", ":memory:"]


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def start_role(pilot, digit: str, screen_type: type, **fields: str):
    """Pick the role by its digit, fill in ``fields`` (by widget id), press Start; its screen once shown."""
    await pilot.press(digit)
    await pilot.pause()
    for widget_id, value in fields.items():
        pilot.app.screen.query_one(f"#{widget_id}").value = value
    pilot.app.screen.query_one("#start").press()
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, screen_type), 5, f"the {screen_type.__name__}")
    return pilot.app.screen


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_controller_role_shows_queues_hosts_and_the_node_manager_then_stops(tmp_path: Path) -> None:
    role_args = {"controller": [*LOOPBACK_CONTROLLER, "--max-nodes", "2"]}
    backend = Backend(port=0, role_args=role_args, env=subprocess_env())
    pids: list[int] = []

    async def run() -> None:
        app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await start_role(pilot, "2", ControllerRoleScreen)
            nm_hosts = screen.query_one("#nm-hosts", DataTable)
            ctl_hosts = screen.query_one("#controller-hosts", DataTable)
            await wait_until(pilot, lambda: nm_hosts.row_count == 2 and ctl_hosts.row_count == 2, 30, "2 hosts")
            assert "max_nodes = (" in text_of(screen, "#nm-formula") and "(at most 2)" in text_of(screen, "#nm-formula")
            summary = text_of(screen, "#controller-summary")
            assert "Journal :memory:" in summary and "0 ready · 0 running" in summary
            assert "listening on 127.0.0.1:" in text_of(screen, "#role-state")
            pids.extend(backend.host_pids())
            assert len(pids) == 2

            await pilot.press("m")
            await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "the monitor")
            hosts = app.screen.query_one("#hosts", DataTable)
            await wait_until(pilot, lambda: hosts.row_count == 2, 10, "the monitor's hosts")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, 5, "back on the controller screen")

            await pilot.press("escape")  # stop the role, back to its form
            await wait_until(pilot, lambda: isinstance(app.screen, RoleFormScreen), 20, "the form again")
            assert screen.process.returncode() is not None

    try:
        asyncio.run(run())
    finally:
        backend.close()
    wait_for(lambda: all(gone(pid) for pid in pids), 10, "the node manager's hosts to be gone")


def test_host_role_shows_its_connection_and_the_tasks_it_ran(tmp_path: Path, controller: RunningController) -> None:
    backend = Backend(role_args={"host": ["--cache-dir", str(tmp_path / "cache")]}, env=subprocess_env())
    environ = {"BXTHRE3_CONTROLLER": str(controller.address)}

    async def run() -> None:
        app = make_app(backend=backend, environ=environ, ram_probe=lambda: 4096)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await start_role(pilot, "4", HostRoleScreen, node_id="phone-1")
            await wait_until(pilot, lambda: "registered with" in text_of(screen, "#host-summary"), 20, "registered")
            assert text_of(screen, "#host-summary").startswith("phone-1 on ")

            with controller.client() as client:
                dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
                assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
            history = screen.query_one("#host-history", DataTable)
            await wait_until(pilot, lambda: history.row_count == 4, 10, "4 finished tasks in the history")
            rows = [history.get_row(k) for k in history.rows]
            assert rows[0][0] == "aggregate" and {r[3] for r in rows} == {"ok"}
            assert "4 succeeded · 0 failed" in text_of(screen, "#host-summary")

            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RoleFormScreen), 20, "the form again")

    try:
        asyncio.run(run())
    finally:
        backend.close()
    with controller.client() as client:
        wait_for(lambda: client.status()["totals"]["hosts"] == 0, 10, "the host to say goodbye")


def test_node_manager_role_runs_hosts_for_a_controller(tmp_path: Path, controller: RunningController) -> None:
    backend = Backend(role_args={"node-manager": ["--max-nodes", "1"]}, env=subprocess_env())
    environ = {"BXTHRE3_CONTROLLER": str(controller.address)}

    async def run() -> None:
        app = make_app(backend=backend, environ=environ, ram_probe=lambda: 4096)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await start_role(pilot, "3", NodeManagerRoleScreen)
            hosts = screen.query_one("#nm-hosts", DataTable)
            await wait_until(pilot, lambda: hosts.row_count == 1, 20, "its host")
            assert hosts.get_row_at(0)[2] == "running"
            with controller.client() as client:
                wait_for(lambda: client.status()["totals"]["hosts"] == 1, 20, "the host to register")
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RoleFormScreen), 20, "the form again")

    try:
        asyncio.run(run())
    finally:
        backend.close()


def test_a_role_that_exits_says_so_with_its_error(tmp_path: Path) -> None:
    backend = Backend(role_args={"host": ["--controller", "127.0.0.1:1", "--slots", "0"]}, env=subprocess_env())

    async def run() -> None:
        app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await start_role(pilot, "4", HostRoleScreen)
            await wait_until(pilot, lambda: "Stopped: exit code 2" in text_of(screen, "#role-state"), 15, "the exit")
            log_text = "\n".join(str(line.text) for line in screen.query_one("#role-log").lines)
            assert "--slots" in log_text

    try:
        asyncio.run(run())
    finally:
        backend.close()


def test_the_form_fills_in_the_controller_heard_by_its_beacon() -> None:
    import socket

    from bxthre3.tui.app import beacon_listener
    from bxthre3.wire.discovery import Beacon, BeaconSender

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = BeaconSender(
        Beacon("bx-test", 5123), destinations=lambda: ["127.255.255.255"], port=port, interval=0.2,
        source_host="127.0.0.1",
    )  # fmt: skip
    listen = beacon_listener(timeout=5, port=port, bind_host="127.255.255.255")

    async def run() -> None:
        app = make_app(environ={}, ram_probe=lambda: 4096, discover=listen)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("4")
            field = app.screen.query_one("#controller")
            await wait_until(pilot, lambda: field.value == "127.0.0.1:5123", 10, "the beacon's address")
            assert "Found by its beacon" in text_of(app.screen, "#discovered")

    with sender:
        asyncio.run(run())
