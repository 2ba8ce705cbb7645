"""`?`: the keys of every screen, compact enough to fit an 80x24 phone terminal."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str, str], ...] = (
    ("1-5 ↑↓ Enter", "picker", "pick a role"),
    ("Esc", "form", "back to the picker"),
    ("s", "monitor", "submit a DAG file (Tab completes the path)"),
    ("o", "monitor", "pick a DAG file from a tree and submit it"),
    ("c", "monitor", "cancel the selected DAG"),
    ("r", "monitor", "retry the selected DAG's failed/cancelled tasks"),
    ("Esc", "monitor", "close the submit box; back to the role screen"),
    ("m", "role", "open the monitor on the role's controller"),
    ("Esc", "role", "stop the role and go back"),
    ("Tab", "anywhere", "next pane"),
    ("d", "anywhere", "dark / light theme"),
    ("q", "anywhere", "quit, stopping everything the UI started"),
)


def keys_table() -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("where", style="dim", no_wrap=True)
    table.add_column("does", ratio=1)
    for key, where, does in KEYS:
        table.add_row(key, where, does)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("Bxthre3 keys", style="bold"), id="help-title")
            yield Static(keys_table())
            yield Static(
                Text("Select a DAG in the list to see its tasks; select a task to see its output. Esc closes.",
                     style="dim"),
                id="help-hint",
            )  # fmt: skip
