"""`?`: the keys of every screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Bxthre3 keys

| key | where | does |
|---|---|---|
| `1`-`5`, ↑/↓ Enter | role picker | pick a role |
| `Esc` | form; submit box | back; close it |
| `s` | monitor | submit a DAG file |
| `c` | monitor | cancel the selected DAG |
| Tab / Shift+Tab | everywhere | move between panes |
| `d` | everywhere | dark / light theme |
| `?` | everywhere | this help |
| `q` | everywhere | quit, stopping everything the UI started |

Select a DAG in the list to see its tasks; select a task to see its output.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Markdown(HELP)
