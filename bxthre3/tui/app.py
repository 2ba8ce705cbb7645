"""The Bxthre3 TUI application: screens are in their own modules; this wires them together.

`make_app()` is the one factory for the CLI and the tests; the backend (controller clients,
embedded cluster) is injected so tests can drive the real app against anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding

from ..common import scratch
from ..common.errors import ClusterError
from ..wire.addresses import Address
from ..wire.discovery import DISCOVERY_PORT, listen_for_controller
from .backend import Backend
from .help_screen import HelpScreen
from .messages import LogLine, RolePicked, StartRequested
from .monitor import MonitorScreen
from .role_form import RoleFormScreen
from .role_picker import RolePickerScreen
from .role_process import wait_for_status
from .role_screens import SCREENS_BY_ROLE, monitor_address
from .roles import ROLES_BY_KEY, RoleConfig

log = logging.getLogger(__name__)

DISCOVERY_WAIT_S = 5.0
"""How long a role form listens for a controller's beacon (they come every second)."""

CLUSTER_START_TIMEOUT_S = 60.0
"""How long "All components" waits for its controller to report an address."""


class Bxthre3App(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "Bxthre3"
    BINDINGS = [
        # Priority: they act before any widget, so they quit from a text box too (where Ctrl+C would copy),
        # through the same `action_quit` as `q` (every role stopped, temporary directories removed).
        Binding("ctrl+c,ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("q", "quit", "Quit"),  # not priority: in a text box `q` types a "q"
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("d", "toggle_dark", "Dark/Light"),
    ]

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        controller: Address | None = None,
        start_role: str | None = None,
        environ: Mapping[str, str] | None = None,
        ram_probe: Callable[[], int] | None = None,
        poll_interval: float = 0.5,
        discover: Callable[[], str | None] | None = None,
        start_config: RoleConfig | None = None,
        token_lookup: Callable[[], str | None] | None = None,
        cpus: int | None = None,
    ) -> None:
        super().__init__()
        if start_role is not None and start_role not in ROLES_BY_KEY:
            raise ValueError(f"unknown role {start_role!r} (one of {', '.join(ROLES_BY_KEY)})")
        self.backend = backend or Backend()
        self.controller = controller
        self.start_role = start_role
        self.environ = os.environ if environ is None else environ
        self.ram_probe = ram_probe
        self.poll_interval = poll_interval
        self.discover = discover
        self.token_lookup = token_lookup
        """Pre-fills the forms' token field; None in tests (no machine state in snapshots)."""
        self.cpus = cpus
        """CPUs of this device (None: ask the OS); injected so snapshots do not depend on the machine."""
        self.start_config = start_config
        """A role to start at once, skipping picker and form (`bxthre3 all` on a terminal)."""
        self._stopping = False
        self.quit_on_termination_signals = False
        """SIGTERM/SIGHUP quit as `q` does (roles stopped, temporary files removed); set by `run_tui` only, so
        tests running the app in-process keep their own signal handling."""

    def on_mount(self) -> None:
        if self.quit_on_termination_signals:
            self._install_termination_handlers()
        self.push_screen(RolePickerScreen())
        if self.controller is not None and self.start_role in (None, "ui"):
            if self.backend.token is None and not self.backend.insecure:
                # A monitor without a token could only fail; ask for it where it can be typed.
                self.push_screen(self._form("ui", controller=self.controller, hint=no_token_hint(self.controller)))
            else:
                self.push_screen(self._monitor(self.controller))
        elif self.start_config is not None:
            self.launch_role(self.start_config)
        elif self.start_role is not None:
            wants_controller = "controller" in ROLES_BY_KEY[self.start_role].fields
            self.push_screen(self._form(self.start_role, controller=self.controller if wants_controller else None))

    def _monitor(self, address: Address | None) -> MonitorScreen:
        return MonitorScreen(backend=self.backend, address=address, poll_interval=self.poll_interval)

    def _form(self, role: str, *, controller: Address | None = None, hint: str = "") -> RoleFormScreen:
        return RoleFormScreen(
            role,
            environ=self.environ,
            ram_probe=self.ram_probe,
            discover=self.discover,
            token_lookup=self.token_lookup,
            cpus=self.cpus,
            controller=controller,
            hint=hint,
            insecure=self.backend.insecure,
        )

    def on_role_picked(self, message: RolePicked) -> None:
        self.push_screen(self._form(message.role))

    def on_start_requested(self, message: StartRequested) -> None:
        config: RoleConfig = message.config
        if config.token:
            self.backend.token = config.token
        if config.role == "ui":
            self.push_screen(self._monitor(config.controller))
        else:
            self.launch_role(config)

    @work(thread=True, group="roles", exit_on_error=False)
    def launch_role(self, config: RoleConfig) -> None:
        """Start the role's process, show its screen; for "All" the monitor too, once the controller is up."""
        try:
            process = self.backend.start_role(config)
        except Exception as exc:
            log.exception("cannot start %s", config.role)
            self.call_from_thread(self.notify, f"Cannot start {config.role}: {exc}", severity="error", timeout=10)
            return
        self.call_from_thread(self.push_screen, SCREENS_BY_ROLE[config.role](process))
        if config.role != "all":
            return
        monitor = self._monitor(None)
        self.call_from_thread(self.push_screen, monitor)
        monitor.post_message(LogLine(f"starting controller + node manager: {process.command_line}"))
        status = wait_for_status(process, CLUSTER_START_TIMEOUT_S, "controller")
        controller = (status or {}).get("controller") or {}
        address = monitor_address(controller.get("address"))
        if controller.get("token"):
            self.backend.token = controller["token"]
        if address is None:
            lines = process.tail(3)
            why = " / ".join(lines) or f"no word from it in {CLUSTER_START_TIMEOUT_S:g} s"
            monitor.post_message(LogLine(f"the embedded cluster did not start: {why}", error=True))
            self.call_from_thread(monitor.show_banner, "The cluster did not start: see the log below. Esc goes back.")
            return
        self.call_from_thread(setattr, monitor, "address", address)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def _install_termination_handlers(self) -> None:
        """Without this, `kill` or a closed terminal ends the UI at once: roles die with it, but their
        temporary directories stay. A second such signal ends the UI the default way."""
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            for sig in scratch.TERMINATION_SIGNALS:
                loop.remove_signal_handler(sig)
            log.info("termination signal: stopping the roles and quitting")
            self.call_later(self.action_quit)

        for sig in scratch.TERMINATION_SIGNALS:
            try:
                loop.add_signal_handler(sig, on_signal)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no Unix signals
                return

    async def action_quit(self) -> None:
        if not self._stopping:
            self._stopping = True
            self.notify("Stopping…", timeout=10)
            self.shutdown()

    @work(thread=True, group="shutdown", exit_on_error=False)
    def shutdown(self) -> None:
        """Stop every role the UI started (each process group, by PID), then exit."""
        for worker in self.workers:
            if worker.group != "shutdown":
                worker.cancel()
        try:
            self.backend.close()
        except Exception:
            log.exception("stopping the embedded cluster failed")
        self.call_from_thread(self.exit, 0)


def no_token_hint(controller: Address) -> str:
    """Why the UI Node form opened instead of the monitor of `bxthre3 ui --controller`."""
    return f"No token for {controller}: type it below, or start with --token / BXTHRE3_TOKEN."


def make_app(
    *,
    controller: Address | None = None,
    start_role: str | None = None,
    backend: Backend | None = None,
    environ: Mapping[str, str] | None = None,
    ram_probe: Callable[[], int] | None = None,
    discover: Callable[[], str | None] | None = None,
    start_config: RoleConfig | None = None,
    token_lookup: Callable[[], str | None] | None = None,
    cpus: int | None = None,
) -> Bxthre3App:
    """The one factory of the CLI and the tests (which inject the backend, RAM, environment and discovery)."""
    return Bxthre3App(
        backend=backend,
        controller=controller,
        start_role=start_role,
        environ=environ,
        ram_probe=ram_probe,
        discover=discover,
        start_config=start_config,
        token_lookup=token_lookup,
        cpus=cpus,
    )


def local_token() -> str | None:
    """$BXTHRE3_TOKEN, else the token of a controller on this device, else None (never raises)."""
    from ..wire.security import TokenError, default_state_dir, resolve_token

    try:
        return resolve_token(None, state_dir=default_state_dir())
    except TokenError as exc:
        log.info("no local cluster token: %s", exc)
        return None


def beacon_listener(
    *, timeout: float = DISCOVERY_WAIT_S, port: int = DISCOVERY_PORT, bind_host: str = ""
) -> Callable[[], str | None]:
    """What the role form calls to pre-fill the controller: ``IP:PORT`` of the first beacon, or None."""

    def listen() -> str | None:
        try:
            ip, beacon = listen_for_controller(timeout=timeout, port=port, bind_host=bind_host)
        except (ClusterError, OSError) as exc:
            log.info("no controller beacon for the form: %s", exc)
            return None
        return str(Address(ip, beacon.zmq_port))

    return listen


def run_tui(
    *,
    controller: Address | None = None,
    start_role: str | None = None,
    start_config: RoleConfig | None = None,
    role_args: Mapping[str, list[str]] | None = None,
    log_file: Path | None = None,
    token: str | None = None,
    insecure: bool = False,
) -> int:
    """Run the TUI in this terminal; logs go to `log_file` only (never to the terminal)."""
    from ..common.logs import role_log_file, setup_logging

    setup_logging("INFO", role_log_file(log_file, "ui.log"), console=False)
    scratch.sweep_stale()  # role directories of a UI that was killed with SIGKILL
    app = make_app(
        controller=controller,
        start_role=start_role,
        start_config=start_config,
        backend=Backend(role_args=role_args, token=token or local_token(), insecure=insecure),
        discover=beacon_listener(),
        token_lookup=local_token,
    )
    app.quit_on_termination_signals = True
    try:
        result = app.run()
    finally:
        app.backend.close()  # also on a crash or Ctrl+C: no host outlives the UI
    return result or 0
