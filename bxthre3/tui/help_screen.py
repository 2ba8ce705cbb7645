"""`?`: the keys of every screen, read from the screens' own BINDINGS so that help cannot drift from them.

A hand-written table said "q anywhere" while `q` typed a "q" in every text box, and left out `c`'s
second press. Here each row comes from a real `Binding` (the App's and each screen class's own); only
the words of a few need more than the binding's short description (`DOES`), and the few keys that
Textual's widgets bind for us are listed with the class that binds them (`EXTRA_ROWS`), so a test
can check that every key help lists is bound and every binding is listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

QUIT_WORDS = "quit, stopping every role the UI started"

MODAL_APP_KEYS = [
    Binding("q", "app.quit", "Quit", show=False),
    Binding("d", "app.toggle_dark", "Dark/Light", show=False),
]
"""A modal screen hides the App's plain bindings (only priority ones pass): modals add these so that `q` and
`d` work there as everywhere else. Help lists them once, under "Anywhere"."""


@dataclass(frozen=True, slots=True)
class HelpRow:
    keys: tuple[str, ...]
    """Textual key names ("escape", "ctrl+c"), as bound."""
    does: str
    owner: type[DOMNode]
    """The class whose bindings (its own or inherited) bind these keys."""


_KEY_NAMES = {
    "escape": "Esc",
    "question_mark": "?",
    "backspace": "Backspace",
    "enter": "Enter",
    "tab": "Tab",
    "shift+tab": "Shift+Tab",
    "up": "↑",
    "down": "↓",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}

DOES: dict[tuple[str, str], str] = {
    ("App", "quit"): f"{QUIT_WORDS} (also in text boxes)",
    ("App", "q"): "quit the same way, outside text boxes (in one, q types q)",
    ("App", "help"): "this help (outside text boxes)",
    ("App", "toggle_dark"): "dark / light theme (outside text boxes)",
    ("RolePickerScreen", "pick"): "pick a role: 1 UI Node … 5 All components",
    ("RolePickerScreen", "nothing_back"): "nothing to go back to (says how to quit)",
    ("RoleFormScreen", "back"): "back to the picker",
    ("RoleScreen", "monitor"): "open the monitor on the role's controller",
    ("RoleScreen", "stop_role"): "stop the role and go back",
    ("MonitorScreen", "submit"): "submit a DAG file (Tab completes the path)",
    ("MonitorScreen", "pick_file"): "pick a DAG file from a tree and submit it",
    ("MonitorScreen", "cancel_dag"): "cancel the selected DAG (press twice: it cannot be undone)",
    ("MonitorScreen", "retry_dag"): "retry the selected DAG's failed/cancelled tasks",
    ("MonitorScreen", "back"): "close the submit box, else go back",
    ("FilePickerScreen", "cancel"): "close without picking",
    ("FilePickerScreen", "parent"): "parent directory",
    ("HelpScreen", "dismiss"): "close this help",
}
"""Words for bindings whose short description (the footer's) is not enough; keyed by (class, first key),
else (class, action name)."""


def help_classes() -> list[tuple[str, type[DOMNode]]]:
    """(heading, class) of every place with keys of its own, in the order a user meets them."""
    from .file_picker import FilePickerScreen
    from .monitor import MonitorScreen
    from .role_form import RoleFormScreen
    from .role_picker import RolePickerScreen
    from .role_screens import RoleScreen

    return [
        ("Anywhere", _app_class()),
        ("Role picker", RolePickerScreen),
        ("Role form", RoleFormScreen),
        ("Role screen", RoleScreen),
        ("Monitor", MonitorScreen),
        ("File tree", FilePickerScreen),
        ("This help", HelpScreen),
    ]


def _app_class() -> type[App[int]]:
    from .app import Bxthre3App

    return Bxthre3App


def _extra_rows() -> list[tuple[str, HelpRow]]:
    """Keys Textual's own classes bind for us, worth telling; each with the class that binds it."""
    from textual.widgets import DirectoryTree, OptionList

    from .monitor import PathInput

    return [
        ("Anywhere", HelpRow(("tab", "shift+tab"), "next / previous pane or field", Screen)),
        ("Role picker", HelpRow(("up", "down", "enter"), "move and pick a role", OptionList)),
        ("Monitor", HelpRow(("tab",), "in the submit box: take the greyed path completion", PathInput)),
        ("File tree", HelpRow(("enter",), "open a directory / pick the file", DirectoryTree)),
    ]


def own_bindings(cls: type[DOMNode]) -> list[Binding]:
    """The bindings a class declares itself (not those it inherits), as `Binding`s."""
    return [_as_binding(b) for b in cls.__dict__.get("BINDINGS", [])]


def _as_binding(binding: BindingType) -> Binding:
    return binding if isinstance(binding, Binding) else Binding(*binding)


def split_keys(binding: Binding) -> tuple[str, ...]:
    return tuple(key.strip() for key in binding.key.split(","))


def bound_keys(cls: type[DOMNode]) -> set[str]:
    """Every key a class binds, its own bindings and inherited ones."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        for binding in klass.__dict__.get("BINDINGS", []):
            keys.update(split_keys(_as_binding(binding)))
    return keys


def _action_name(binding: Binding) -> str:
    return binding.action.split("(", 1)[0].removeprefix("app.").removeprefix("screen.")


def forwards_app_key(binding: Binding) -> bool:
    """A modal's copy of an App binding (same key, same action): help lists the App's."""
    if not binding.action.startswith("app."):
        return False
    app_actions = {
        (key, _action_name(b)) for b in own_bindings(_app_class()) for key in split_keys(b) if not b.priority
    }
    return all((key, _action_name(binding)) in app_actions for key in split_keys(binding))


def _rows_of(cls: type[DOMNode]) -> Iterator[HelpRow]:
    """One row per action (the picker's five digits share one), but a priority binding (which works in text
    boxes too) and a plain one of the same action get a row each: that difference is what help must say."""
    groups: dict[tuple[str, bool], list[Binding]] = {}
    for binding in own_bindings(cls):
        if forwards_app_key(binding):
            continue
        groups.setdefault((_action_name(binding), binding.priority), []).append(binding)
    owner = "App" if issubclass(cls, App) else cls.__name__
    for (action, _), bindings in groups.items():
        keys = tuple(key for b in bindings for key in split_keys(b))
        does = DOES.get((owner, keys[0])) or DOES.get((owner, action))
        yield HelpRow(keys, does or (bindings[0].description or action.replace("_", " ")).lower(), cls)


def help_sections() -> list[tuple[str, list[HelpRow]]]:
    """The rows of the help, by section: the bound keys of each place, then the extras."""
    sections = [(title, list(_rows_of(cls))) for title, cls in help_classes()]
    for title, row in _extra_rows():
        next(rows for t, rows in sections if t == title).append(row)
    return sections


def key_label(keys: Iterable[str]) -> str:
    """How help shows keys: "Esc", "Ctrl+C Ctrl+Q", "1-5" for a run of digits."""
    keys = tuple(keys)
    if len(keys) > 2 and all(k.isdigit() and len(k) == 1 for k in keys):
        digits = sorted(int(k) for k in keys)
        if digits == list(range(digits[0], digits[-1] + 1)):
            return f"{digits[0]}-{digits[-1]}"
    return " ".join(
        _KEY_NAMES.get(k) or ("+".join(p.capitalize() for p in k.split("+")) if "+" in k else k) for k in keys
    )


def keys_table() -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=True)
    table.add_column("key", style="bold", max_width=16, overflow="fold")  # the words always get room
    table.add_column("does", ratio=1)
    for n, (title, rows) in enumerate(help_sections()):
        if n:
            table.add_row("", "")
        table.add_row(Text(title, style="bold underline"), "")
        for row in rows:
            table.add_row(key_label(row.keys), row.does)
    return table


class HelpScreen(ModalScreen[None]):
    """Every key, by screen; scrolls when the terminal is short (an 80x24 phone terminal, 45 columns)."""

    DEFAULT_CSS = """
    HelpScreen #help {
        max-width: 100%;
    }
    """

    BINDINGS = [Binding("escape,question_mark", "dismiss", "Close"), *MODAL_APP_KEYS]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("Bxthre3 keys", style="bold"), id="help-title")
            yield Static(keys_table())
            yield Static(
                Text("Select a DAG in the list to see its tasks; select a task to see its output. "
                     "q, ? and d type themselves in text boxes; Ctrl+C and Ctrl+Q quit from anywhere. Esc closes.",
                     style="dim"),
                id="help-hint",
            )  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#help", VerticalScroll).focus()  # arrows and PageUp/PageDown scroll it
