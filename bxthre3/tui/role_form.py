"""After picking a role: the few settings it needs, with the number of hosts computed live."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.validation import Integer
from textual.widgets import Button, Footer, Header, Input, Label, Static

from ..common.errors import Bxthre3Error
from ..common.user_input import MAX_NODE_RAM_MB, MIN_NODE_RAM_MB, check_node_id, ram_problem
from ..node.device_identity import form_host_id
from ..wire.addresses import CONTROLLER_ENV, DEFAULT_PORT, Address, parse_address
from ..wire.security import TOKEN_ENV, check_token
from .messages import StartRequested
from .roles import DEFAULT_RAM_PER_NODE, ROLES_BY_KEY, RoleConfig, nodes_for

NODE_ID_ENV = "BXTHRE3_NODE_ID"
"""Pre-fills the Host form's node id; by default <hostname>-<6 of the device id>-host, so devices never collide."""

MIN_RAM_MB, MAX_RAM_MB = MIN_NODE_RAM_MB, MAX_NODE_RAM_MB


class RoleFormScreen(Screen[None]):
    """A short form for one role; Start posts `StartRequested`, Back returns to the picker."""

    BINDINGS = [Binding("escape", "back", "Back")]

    available_ram_mb: reactive[int | None] = reactive(None)
    """RAM this device can lend (probed in a worker); None until known or if unknown."""

    def __init__(
        self,
        role: str,
        *,
        environ: Mapping[str, str] | None = None,
        ram_probe: Callable[[], int] | None = None,
        discover: Callable[[], str | None] | None = None,
        token_lookup: Callable[[], str | None] | None = None,
        cpus: int | None = None,
        controller: Address | None = None,
        hint: str = "",
        insecure: bool = False,
    ) -> None:
        super().__init__()
        self.role = ROLES_BY_KEY[role]
        self.controller = controller
        """Pre-fills the controller field (`bxthre3 ui --controller` without a token): no beacon is listened for,
        and the cursor starts in the token field."""
        self.hint = hint
        """One line above the fields saying why this form is shown (empty: none)."""
        self.insecure = insecure
        """The UI runs --insecure: the UI Node needs no token."""
        self.discover = discover
        """Listens for a controller beacon (blocking, bounded); None: no listening (tests, `--controller`)."""
        self.token_lookup = token_lookup
        self.cpus = cpus or os.cpu_count() or 1
        """The node manager runs at most one host per CPU; the live count says so."""
        self.environ = os.environ if environ is None else environ
        self.ram_probe = ram_probe

    def compose(self) -> ComposeResult:
        fields = self.role.fields
        yield Header()
        with VerticalScroll(id="form"):
            yield Static(f"[b]{self.role.digit}  {self.role.title}[/b] — {self.role.description}", id="form-title")
            if self.hint:
                yield Static(self.hint, id="form-hint", markup=False)
            if "controller" in fields:
                yield Label("Controller address (IP or IP:PORT)")
                placeholder = "listening for a controller's beacon… (empty: the role looks for one itself)"
                if self.role.key == "ui":
                    placeholder = "listening for a controller's beacon…"
                value = str(self.controller) if self.controller is not None else self.environ.get(CONTROLLER_ENV, "")
                yield Input(value, placeholder=placeholder, id="controller")
                yield Static("", id="discovered")
            if "token" in fields:
                yield Label("Cluster token (`bxthre3 token` on the controller prints it)")
                token = self.environ.get(TOKEN_ENV, "") or (self.token_lookup() if self.token_lookup else None) or ""
                placeholder = "bxt1-…" if self.role.key == "ui" else "bxt1-… (empty: $BXTHRE3_TOKEN or this device's)"
                yield Input(token, placeholder=placeholder, password=True, id="token")
            if "port" in fields:
                yield Label("Port")
                yield Input(str(DEFAULT_PORT), id="port", type="integer", validators=[Integer(1, 65535)])
            if "ram" in fields:
                yield Label("RAM per node (MB)")
                yield Input(
                    self.environ.get("RAM_PER_NODE", str(DEFAULT_RAM_PER_NODE)),
                    id="ram",
                    type="integer",
                    validators=[Integer(MIN_RAM_MB, MAX_RAM_MB)],
                )
                yield Static("", id="nodes")
            if "node_id" in fields:
                yield Label("Node id")
                default_id = self.environ.get(NODE_ID_ENV) or form_host_id(self.environ)
                yield Input(default_id[:64], id="node_id")
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Start", id="start", variant="primary")
                yield Button("Back", id="back")
        yield Footer()

    def on_mount(self) -> None:
        if self.controller is not None and "token" in self.role.fields:
            self.query_one("#token", Input).focus()
        else:
            self.query(Input).first().focus()
        if (
            "controller" in self.role.fields
            and self.discover is not None
            and self.controller is None
            and not self.environ.get(CONTROLLER_ENV)
        ):
            self.listen_for_beacon()
        if "ram" in self.role.fields:
            self._update_nodes()
            self.probe_ram()

    @work(thread=True, exclusive=True, group="ram-probe")
    def probe_ram(self) -> None:
        from ..node.ram_probe import available_ram_mb

        probe = self.ram_probe or available_ram_mb
        try:
            ram: int | None = probe()
        except Bxthre3Error:
            ram = None
        self.app.call_from_thread(setattr, self, "available_ram_mb", ram)

    def watch_available_ram_mb(self) -> None:
        if "ram" in self.role.fields:
            self._update_nodes()

    @on(Input.Changed, "#ram")
    def _ram_changed(self) -> None:
        self._update_nodes()

    def _ram_value(self) -> int | None:
        try:
            value = int(self.query_one("#ram", Input).value)
        except ValueError:
            return None
        return value if value > 0 else None

    def _update_nodes(self) -> None:
        ram = self._ram_value()
        label = self.query_one("#nodes", Static)
        if ram is None or not MIN_RAM_MB <= ram <= MAX_RAM_MB:
            label.update(f"Enter {MIN_RAM_MB}-{MAX_RAM_MB} MB")
            return
        if self.role.key == "host":
            label.update(f"Each task on this host may use up to {ram} MB (one host, one slot)")
            return
        if self.available_ram_mb is None:
            label.update("Available RAM: probing…")
            return
        n = nodes_for(self.available_ram_mb, ram) or 0
        cpus = self.cpus or 1
        capped = f", at most {cpus} (one per CPU)" if n > cpus else ""
        label.update(
            f"Available RAM: {self.available_ram_mb} MB → {min(n, cpus)} node(s) of {ram} MB  "
            f"((available − 512) // RAM per node = {n}{capped})"
        )

    @work(thread=True, exclusive=True, group="discovery", exit_on_error=False)
    def listen_for_beacon(self) -> None:
        assert self.discover is not None
        found = self.discover()
        self.app.call_from_thread(self._discovered, found)

    def _discovered(self, found: str | None) -> None:
        field = self.query_one("#controller", Input)
        hint = self.query_one("#discovered", Static)
        if found is None:
            field.placeholder = "no beacon heard: type the controller's IP[:PORT]"
            return
        if not field.value.strip():
            field.value = found
            hint.update(f"Found by its beacon on the LAN: {found}")
        else:
            hint.update(f"A controller also announces itself at {found}")

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self.dismiss()

    @on(Button.Pressed, "#start")
    @on(Input.Submitted)
    def _start(self) -> None:
        try:
            config = self._config()
        except (Bxthre3Error, ValueError) as exc:
            self.query_one("#form-error", Static).update(f"[b $error]{exc}[/]")
            return
        self.post_message(StartRequested(config))

    def _config(self) -> RoleConfig:
        fields = self.role.fields
        kwargs: dict[str, object] = {}
        if "controller" in fields:
            text = self.query_one("#controller", Input).value.strip()
            if text:
                kwargs["controller"] = parse_address(text)
            elif self.role.key == "ui":
                raise ValueError("enter the controller's address (IP or IP:PORT)")
        if "token" in fields:
            token = self.query_one("#token", Input).value.strip()
            if token:
                kwargs["token"] = check_token(token, "the token")
            elif self.role.key == "ui" and not self.insecure:
                raise ValueError("enter the cluster token (`bxthre3 token` on the controller prints it)")
        if "port" in fields:
            text = self.query_one("#port", Input).value.strip()
            port = int(text) if text.isdigit() else 0
            if not 1 <= port <= 65535:
                raise ValueError("port must be 1-65535")
            kwargs["port"] = port
        if "ram" in fields:
            ram = self._ram_value()
            if ram is None:
                raise ValueError(f"RAM per node must be a whole number of MB, {MIN_RAM_MB}-{MAX_RAM_MB}")
            problem = ram_problem(ram)
            if problem:
                raise ValueError(f"RAM per node {problem}")
            kwargs["ram_per_node"] = ram
        if "node_id" in fields:
            node_id = self.query_one("#node_id", Input).value.strip()
            check_node_id(node_id, "node id")
            kwargs["node_id"] = node_id
        return RoleConfig(self.role.key, **kwargs)  # type: ignore[arg-type]
