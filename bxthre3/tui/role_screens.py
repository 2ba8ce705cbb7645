"""Live screens of the roles the TUI runs: controller (+ node manager), node manager, host.

Each follows one `RoleProcess`: twice a second it reads the role's status file and the new
lines of its output (both local files, well under a millisecond), so the screen costs the
role nothing. `m` opens the monitor on the controller the role serves; Esc stops the role
and goes back to the picker.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog, Static

from ..client.outputs import terminal_safe
from ..common.errors import Bxthre3Error
from ..wire.addresses import Address, parse_address
from . import role_views
from .keyed_table import sync_rows
from .role_process import RoleProcess
from .roles import ROLES_BY_KEY

log = logging.getLogger(__name__)

REFRESH_S = 0.5


def monitor_address(text: str | None) -> Address | None:
    """The address a local UI reaches the controller at (a wildcard bind means loopback here)."""
    if not text:
        return None
    try:
        address = parse_address(text)
    except (Bxthre3Error, ValueError):
        return None
    if address.host in ("0.0.0.0", "::", ""):
        return Address("127.0.0.1", address.port)
    return address


class RoleScreen(Screen[None]):
    """What every role screen shares: the process line, the output pane, the keys."""

    BINDINGS = [
        Binding("m", "monitor", "Monitor"),
        Binding("escape", "stop_role", "Stop & back"),
    ]

    def __init__(self, process: RoleProcess) -> None:
        super().__init__()
        self.process = process
        self.status: dict[str, Any] | None = None
        self._ended = False

    def compose(self) -> ComposeResult:
        role = ROLES_BY_KEY[self.process.role]
        yield Header()
        yield Static(f"{role.title}: {self.process.command_line}", id="role-command", markup=False)
        yield Static("Starting…", id="role-state", markup=False)
        with VerticalScroll(id="role-body"):
            yield from self.compose_body()
        output = RichLog(id="role-log", wrap=True, max_lines=500)
        output.border_title = "Output"
        yield output
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.sub_title = ROLES_BY_KEY[self.process.role].title
        self.refresh_role()
        self.set_interval(REFRESH_S, self.refresh_role)

    def refresh_role(self) -> None:
        if self.app.screen is not self:
            # Under the monitor: Textual still composes the screen just below the top one, so every
            # redraw here repainted the monitor too (most of an idle monitor's CPU). The output and
            # status wait in their files; `on_screen_resume` catches up.
            return
        for line in self.process.new_output_lines():
            self.query_one("#role-log", RichLog).write(Text(terminal_safe(line)))  # logs quote what hosts send
        status = self.process.status()
        code = self.process.returncode()
        state = self.query_one("#role-state", Static)
        if code is not None:
            if not self._ended:
                self._ended = True
                state.update(f"Stopped: exit code {code} (see the output below). Esc goes back.")
                state.add_class("error" if code else "ended")
            return
        if status is None:
            state.update(f"Starting (pid {self.process.pid})…")
            return
        self.status = status
        state.update(f"Running · pid {self.process.pid} · {self.state_line(status)}")
        self.show(status)

    def on_screen_resume(self) -> None:
        self.refresh_role()

    def state_line(self, status: dict[str, Any]) -> str:
        return ""

    def show(self, status: dict[str, Any]) -> None:
        """Render the role's own status (subclasses)."""

    def controller_address(self) -> Address | None:
        return None

    def action_monitor(self) -> None:
        address = self.controller_address()
        if address is None:
            self.notify("The controller's address is not known yet.", severity="warning")
            return
        from .monitor import MonitorScreen

        backend = self.app.backend  # type: ignore[attr-defined]
        self.app.push_screen(MonitorScreen(backend=backend, address=address))

    def action_stop_role(self) -> None:
        self.notify(f"Stopping {ROLES_BY_KEY[self.process.role].title}…")
        self.stop_role()

    @work(thread=True, exclusive=True, group="stop-role", exit_on_error=False)
    def stop_role(self) -> None:
        try:
            self.process.stop()
        finally:
            self.app.call_from_thread(self.dismiss)


class ControllerRoleScreen(RoleScreen):
    """Controller + Node Manager: queues, hosts and their tasks, DAGs; the node manager below."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="controller-summary", markup=False)
        hosts: DataTable[str] = DataTable(id="controller-hosts", cursor_type="row", zebra_stripes=True)
        hosts.border_title = "Hosts of this controller"
        yield hosts
        dags = Static("", id="controller-dags", markup=False)
        dags.border_title = "DAGs"
        yield dags
        yield from _node_manager_widgets()

    def on_mount(self) -> None:
        self.query_one("#controller-hosts", DataTable).add_columns(*role_views.CONTROLLER_HOST_COLUMNS)
        self.query_one("#nm-hosts", DataTable).add_columns(*role_views.NODE_MANAGER_HOST_COLUMNS)
        super().on_mount()

    def state_line(self, status: dict[str, Any]) -> str:
        return f"listening on {(status.get('controller') or {}).get('address', '?')}"

    def show(self, status: dict[str, Any]) -> None:
        token = (status.get("controller") or {}).get("token")
        backend = self.app.backend  # type: ignore[attr-defined]
        if token and backend.token != token:
            backend.token = token  # the monitor (m) presents this controller's own token
        self.query_one("#controller-summary", Static).update(role_views.controller_summary(status))
        sync_rows(self.query_one("#controller-hosts", DataTable), role_views.controller_host_rows(status))
        self.query_one("#controller-dags", Static).update(role_views.dag_lines(status))
        _show_node_manager(self, status.get("node_manager"))

    def controller_address(self) -> Address | None:
        return monitor_address(((self.status or {}).get("controller") or {}).get("address"))


class NodeManagerRoleScreen(RoleScreen):
    """Node Manager only: the RAM formula with this device's numbers, and the hosts it runs."""

    def compose_body(self) -> ComposeResult:
        yield from _node_manager_widgets()

    def on_mount(self) -> None:
        self.query_one("#nm-hosts", DataTable).add_columns(*role_views.NODE_MANAGER_HOST_COLUMNS)
        super().on_mount()

    def state_line(self, status: dict[str, Any]) -> str:
        nm = status.get("node_manager") or {}
        return f"{len(nm.get('hosts') or [])} host(s) for {nm.get('controller', '?')}"

    def show(self, status: dict[str, Any]) -> None:
        _show_node_manager(self, status.get("node_manager"))

    def controller_address(self) -> Address | None:
        return monitor_address(((self.status or {}).get("node_manager") or {}).get("controller"))


class HostRoleScreen(RoleScreen):
    """Host Node only: its connection, the task it runs now, and what it ran before."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="host-summary", markup=False)
        running: DataTable[str] = DataTable(id="host-running", cursor_type="row")
        running.border_title = "Running now"
        yield running
        history: DataTable[str] = DataTable(id="host-history", cursor_type="row", zebra_stripes=True)
        history.border_title = "Finished (newest first)"
        yield history

    def on_mount(self) -> None:
        self.query_one("#host-running", DataTable).add_columns(*role_views.HOST_RUNNING_COLUMNS)
        self.query_one("#host-history", DataTable).add_columns(*role_views.HOST_HISTORY_COLUMNS)
        super().on_mount()

    def state_line(self, status: dict[str, Any]) -> str:
        return f"host {status.get('node_id', '?')} {status.get('state', '?')}"

    def show(self, status: dict[str, Any]) -> None:
        self.query_one("#host-summary", Static).update(role_views.host_summary(status))
        sync_rows(self.query_one("#host-running", DataTable), role_views.host_running_rows(status))
        history = self.query_one("#host-history", DataTable)
        rows = role_views.host_history_rows(status)
        if list(rows) != [k.value for k in history.rows]:
            history.clear()
            for key, row in rows.items():
                history.add_row(*row, key=key)
        else:
            sync_rows(history, rows)

    def controller_address(self) -> Address | None:
        return monitor_address((self.status or {}).get("controller"))


def _node_manager_widgets() -> ComposeResult:
    formula = Static("Waiting for the node manager…", id="nm-formula", markup=False)
    formula.border_title = "Node manager"
    yield formula
    hosts: DataTable[str] = DataTable(id="nm-hosts", cursor_type="row", zebra_stripes=True)
    hosts.border_title = "Hosts it runs"
    yield hosts


def _show_node_manager(screen: Screen[None], nm: dict[str, Any] | None) -> None:
    if not nm:
        return
    screen.query_one("#nm-formula", Static).update(role_views.node_manager_formula(nm))
    sync_rows(screen.query_one("#nm-hosts", DataTable), role_views.node_manager_host_rows(nm))


SCREENS_BY_ROLE: dict[str, type[RoleScreen]] = {
    "controller": ControllerRoleScreen,
    "all": ControllerRoleScreen,
    "node-manager": NodeManagerRoleScreen,
    "host": HostRoleScreen,
}
