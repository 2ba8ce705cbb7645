"""Pick one of the five roles: arrows + Enter, mouse, or the digits 1-5."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from .messages import RolePicked
from .roles import ROLES


class RolePickerScreen(Screen[None]):
    """The first screen: which part of Bxthre3 should this device run?"""

    BINDINGS = [
        *(Binding(role.digit, f"pick('{role.key}')", role.title, show=False) for role in ROLES),
        Binding("escape", "nothing_back", "Back", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="picker"):
            yield Static("What should this device run?", id="picker-title")
            yield OptionList(
                *(
                    Option(
                        Content.from_markup(
                            "[b]$digit  $title[/b]\n   [dim]$description[/dim]",
                            digit=role.digit,
                            title=role.title,
                            description=role.description,
                        ),
                        id=role.key,
                    )
                    for role in ROLES
                ),
                id="roles",
            )
            yield Static("↑/↓ + Enter, click, or press 1-5", id="picker-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#roles", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        assert event.option.id is not None
        self.post_message(RolePicked(event.option.id))

    def action_pick(self, role: str) -> None:
        self.post_message(RolePicked(role))

    def action_nothing_back(self) -> None:
        """Esc goes back everywhere; here, the first screen, it says how to leave instead of doing nothing."""
        self.notify("This is the first screen: q, Ctrl+C or Ctrl+Q quits.", timeout=4)
