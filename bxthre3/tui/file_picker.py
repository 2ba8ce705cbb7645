"""Choosing the DAG file to submit: Tab-completion for a typed path, and a tree to browse with.

Typing a path from memory is error-prone and a terminal UI has no file dialog, so the monitor's submit
box gets a `PathSuggester` (shell-like completion of the last path component, shown greyed after the
cursor) and a `FilePickerScreen` (a modal `DirectoryTree` showing only directories and YAML files).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import DirectoryTree, Label, Static

from .help_screen import MODAL_APP_KEYS

MAX_ENTRIES = 2000
"""At most this many entries of one directory are looked at, so a huge directory cannot stall the UI."""

DAG_SUFFIXES = (".yaml", ".yml")


def _is_dag_file(name: str) -> bool:
    return name.lower().endswith(DAG_SUFFIXES)


def _complete(root: Path, value: str) -> str | None:
    """The suggestion for `value` (see `PathSuggester`); blocking, so run off the event loop."""
    head, slash, typed = value.rpartition("/")
    if not slash:
        directory = root
    else:
        directory = Path(os.path.expanduser(head or "/"))
        if not directory.is_absolute():
            directory = root / directory
    show_hidden = typed.startswith(".")
    preferred: list[tuple[str, bool]] = []  # (name, is_dir): directories and YAML files
    others: list[tuple[str, bool]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in islice(entries, MAX_ENTRIES):
                if not entry.name.startswith(typed) or (entry.name.startswith(".") and not show_hidden):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                (preferred if is_dir or _is_dag_file(entry.name) else others).append((entry.name, is_dir))
    except OSError:
        return None
    matches = preferred or others
    if not matches:
        return None
    if len(matches) == 1:
        name, is_dir = matches[0]
        completion = name + "/" if is_dir else name
    else:
        completion = os.path.commonprefix([name for name, _ in matches])
    if len(completion) <= len(typed):
        return None
    return value[: len(value) - len(typed)] + completion


class PathSuggester(Suggester):
    """Completes the last component of a path typed in an `Input`, like a shell's Tab.

    Relative paths are taken from `root`; absolute paths and `~` work too. A unique match is completed
    (a directory with a trailing "/"); several matches complete to their longest common prefix. When
    any directory or `.yaml`/`.yml` file matches, other files are ignored, so "d" next to `dag.yaml`
    and `dag.txt` suggests `dag.yaml`; other files complete only when nothing preferred matches.
    Hidden entries are offered only when the typed component starts with ".". Never raises: anything
    unreadable gives no suggestion. Not cached (the filesystem changes) and case-sensitive (paths are).
    """

    def __init__(self, root: Path | str | None = None) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.root = Path(root) if root is not None else Path.cwd()

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        try:
            return await asyncio.to_thread(_complete, self.root, value)
        except Exception:  # a suggestion is a nicety: never let it break typing
            return None


class DagTree(DirectoryTree):
    """A `DirectoryTree` showing only what can lead to a DAG: visible directories and YAML files."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            path
            for path in paths
            if not path.name.startswith(".") and (_is_dag_file(path.name) or self._safe_is_dir(path))
        ]


class FilePickerScreen(ModalScreen[Path | None]):
    """Browse for a DAG file; dismisses with the chosen file's absolute `Path`, or None on Escape."""

    DEFAULT_CSS = """
    FilePickerScreen {
        align: center middle;
    }
    #file-picker {
        width: 80%;
        max-width: 100;
        height: 80%;
        border: round $accent;
        border-title-align: center;
        background: $surface;
        padding: 0 1;
    }
    #file-picker-dir {
        color: $text-muted;
        width: 1fr;
    }
    #file-tree {
        height: 1fr;
    }
    #file-picker-hint {
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("backspace,u", "parent", "Parent directory"),
        *MODAL_APP_KEYS,
        Binding("question_mark", "app.help", "Help", show=False),
    ]

    def __init__(self, root: Path | str | None = None) -> None:
        super().__init__()
        self.root = Path(root if root is not None else Path.cwd()).expanduser().resolve()
        self._done = False

    def compose(self) -> ComposeResult:
        with Vertical(id="file-picker") as box:
            box.border_title = "Pick a DAG file"
            yield Label(str(self.root), id="file-picker-dir")
            yield DagTree(self.root, id="file-tree")
            yield Static("Enter: open / pick · Backspace or u: parent · Esc: cancel", id="file-picker-hint")

    def on_mount(self) -> None:
        self.query_one("#file-tree", DagTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        if not self._done:  # a double Enter must not dismiss twice
            self._done = True
            self.dismiss(event.path)

    def action_cancel(self) -> None:
        if not self._done:
            self._done = True
            self.dismiss(None)

    def action_parent(self) -> None:
        tree = self.query_one("#file-tree", DagTree)
        current = Path(tree.path)
        if current.parent != current:
            tree.path = current.parent
            self.query_one("#file-picker-dir", Label).update(str(current.parent))
