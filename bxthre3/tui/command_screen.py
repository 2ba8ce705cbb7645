"""Roles the UI does not run itself yet: the command to run in a terminal."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from .roles import ROLES_BY_KEY, RoleConfig


class CommandScreen(Screen[None]):
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, config: RoleConfig) -> None:
        super().__init__()
        self.config = config

    def compose(self) -> ComposeResult:
        role = ROLES_BY_KEY[self.config.role]
        yield Header()
        with Vertical(id="command"):
            yield Static(f"[b]{role.title}[/b] runs outside this UI for now. In a terminal, run:")
            yield Static(self.config.command_line(), id="command-line", markup=False)
            yield Static("Then pick [b]1 UI Node[/b] with the controller's address to watch it.", id="command-hint")
            yield Button("Back", id="back")
        yield Footer()

    def on_button_pressed(self) -> None:
        self.dismiss()

    def action_back(self) -> None:
        self.dismiss()
