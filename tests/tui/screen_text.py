"""The text a running Textual app shows, line by line: what a user would read on the terminal."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App


def screen_text(app: App[object]) -> list[str]:
    """Each screen row as plain text (the same compositor output `export_screenshot` turns into SVG)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().splitlines()
