"""Keys that match habits, driven through the real app with Pilot: Ctrl+C / Ctrl+Q quit from every screen (text
boxes included) the way `q` does, `q` types itself in a text box, Esc goes back everywhere, `ui --controller`
without a token opens the form, and help lists exactly the keys that are bound."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Static

import bxthre3.tui
from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.file_picker import FilePickerScreen
from bxthre3.tui.help_screen import (
    HelpScreen,
    bound_keys,
    forwards_app_key,
    help_classes,
    help_sections,
    key_label,
    own_bindings,
    split_keys,
)
from bxthre3.tui.monitor import MonitorScreen
from bxthre3.tui.role_form import RoleFormScreen
from bxthre3.tui.role_picker import RolePickerScreen
from bxthre3.tui.role_process import RoleProcess
from bxthre3.tui.role_screens import HostRoleScreen
from bxthre3.tui.roles import RoleConfig
from bxthre3.wire.addresses import Address
from tests.conftest import TEST_TOKEN, RunningController

from .fake_backend import FakeBackend
from .snapshot_apps import CONTROLLER
from .test_app import REPO

NOWHERE = Address("127.0.0.1", 9)
"""A controller address nothing listens at (the discard port): a host role started for it just keeps trying."""


async def wait_until(pilot: Pilot[int], predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def run(app: App[int], script: Callable[[Pilot[int]], Awaitable[None]], size: tuple[int, int] = (80, 24)) -> int | None:
    """Run the app headless until it exits (bounded), `script` driving it."""
    return asyncio.run(asyncio.wait_for(app.run_async(headless=True, size=size, auto_pilot=script), 30))


def _start_host(backend: Backend, name: str) -> RoleProcess:
    return backend.start_role(RoleConfig("host", controller=NOWHERE, node_id=name))


# ---------------------------------------------------------------------- quitting


async def _to_picker(pilot: Pilot[int]) -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, RolePickerScreen), "the picker")


async def _to_form_field(pilot: Pilot[int]) -> None:
    await _to_picker(pilot)
    await pilot.press("4")  # Host Node: the cursor lands in its first field
    await wait_until(pilot, lambda: isinstance(pilot.app.focused, Input), "the cursor in a form field")


async def _to_role_screen(pilot: Pilot[int]) -> None:
    await _to_picker(pilot)
    await pilot.app.push_screen(HostRoleScreen(_start_host(pilot.app.backend, "on-screen")))  # type: ignore[attr-defined]
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HostRoleScreen), "the host's screen")


async def _to_help(pilot: Pilot[int]) -> None:
    await _to_picker(pilot)
    await pilot.press("question_mark")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "help")


async def _to_file_tree(pilot: Pilot[int]) -> None:
    await _to_picker(pilot)
    await pilot.app.push_screen(FilePickerScreen(REPO / "dags"))
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, FilePickerScreen), "the file tree")


PLACES: dict[str, Callable[[Pilot[int]], Awaitable[None]]] = {
    "picker": _to_picker,
    "form-field": _to_form_field,
    "role-screen": _to_role_screen,
    "help": _to_help,
    "file-tree": _to_file_tree,
}


@pytest.mark.parametrize("key", ["ctrl+c", "ctrl+q", "q"])
@pytest.mark.parametrize("place", list(PLACES))
def test_quit_keys_stop_every_role_from_every_screen(
    place: str, key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    backend = Backend(insecure=True)
    app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096, cpus=4)
    background: list[RoleProcess] = []

    async def script(pilot: Pilot[int]) -> None:
        background.append(_start_host(backend, "background"))  # a role the UI started, on any screen
        await PLACES[place](pilot)
        await pilot.press(key)
        if place == "form-field" and key == "q":  # in a text box q is a letter: typed, nothing quits
            await pilot.pause(0.2)
            assert isinstance(app.focused, Input) and app.focused.value.endswith("q"), app.focused
            assert app.is_running and not backend._closed
            await pilot.press("ctrl+c")

    try:
        assert run(app, script) == 0
    finally:
        backend.close()
    started = [background[0], *(p for p in backend_processes(app) if p is not background[0])]
    for process in started:
        assert process.returncode() is not None, f"{process.role} still runs"
        assert not process.workdir.exists()
    assert os.listdir(tmp_path) == [], "every temporary directory removed"


def backend_processes(app: App[int]) -> list[RoleProcess]:
    screens = [s for s in app.screen_stack if isinstance(s, HostRoleScreen)]
    return [s.process for s in screens]


@pytest.mark.parametrize("key", ["ctrl+c", "ctrl+q", "q"])
def test_quit_keys_in_the_monitor_close_the_backend(key: str) -> None:
    backend = FakeBackend("running")
    app = make_app(controller=CONTROLLER, backend=backend, environ={}, ram_probe=lambda: 4096)

    async def script(pilot: Pilot[int]) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        await pilot.press("s")  # the submit box: a text box
        box = app.screen.query_one("#submit-path", Input)
        await wait_until(pilot, lambda: app.focused is box, "the cursor in the submit box")
        await pilot.press(key)
        if key == "q":
            await pilot.pause(0.2)
            assert box.value == "q" and app.is_running and not backend._stop.is_set()
            await pilot.press("escape", "q")  # the box closes; now q quits

    assert run(app, script, size=(120, 40)) == 0
    assert backend._stop.is_set(), "the backend was closed: the stop-everything path ran"


# ---------------------------------------------------------------------- Esc


def test_escape_goes_back_on_every_screen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    backend = Backend(insecure=True)
    app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096, cpus=4)
    stopped: list[RoleProcess] = []

    async def script(pilot: Pilot[int]) -> None:
        await _to_form_field(pilot)
        await pilot.press("escape")  # form, cursor in a field -> picker
        await wait_until(pilot, lambda: isinstance(app.screen, RolePickerScreen), "the picker after Esc in a form")
        await pilot.press("escape")  # the picker: nothing to go back to; it says how to quit, and stays
        await pilot.pause(0.1)
        assert isinstance(app.screen, RolePickerScreen) and app.is_running
        assert any("Ctrl+C" in str(n.message) for n in app._notifications), "the picker's Esc says how to quit"
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RolePickerScreen), "the picker after Esc in help")
        await _to_role_screen(pilot)
        screen = app.screen
        assert isinstance(screen, HostRoleScreen)
        await pilot.press("escape")  # role screen -> the role stops, back
        await wait_until(pilot, lambda: isinstance(app.screen, RolePickerScreen), "the picker after Esc", 15)
        stopped.append(screen.process)
        await app.push_screen(FilePickerScreen(tmp_path))
        await wait_until(pilot, lambda: isinstance(app.screen, FilePickerScreen), "the file tree")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RolePickerScreen), "the picker after Esc in the tree")
        await pilot.press("q")

    try:
        assert run(app, script) == 0
    finally:
        backend.close()
    assert stopped[0].returncode() is not None


# ---------------------------------------------------------------------- the token form


def test_ui_with_a_controller_and_no_token_opens_the_form_and_uses_the_token_typed() -> None:
    backend = FakeBackend("running")
    backend.token = None  # no --token, no BXTHRE3_TOKEN, no local controller
    app = make_app(controller=CONTROLLER, backend=backend, environ={}, ram_probe=lambda: 4096)
    typed = "bxt1-" + "Q" * 43

    async def script(pilot: Pilot[int]) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, RoleFormScreen), "the UI Node form")
        form = app.screen
        assert isinstance(form, RoleFormScreen) and form.role.key == "ui"
        assert form.query_one("#controller", Input).value == str(CONTROLLER)
        await wait_until(pilot, lambda: isinstance(app.focused, Input), "the cursor in a field")
        assert app.focused is form.query_one("#token", Input), "the cursor waits in the token field"
        hint = str(form.query_one("#form-hint", Static).render())
        assert hint.startswith(f"No token for {CONTROLLER}: type it below") and "--token" in hint, hint
        await pilot.press(*typed, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        assert backend.token == typed
        await pilot.press("escape")  # the monitor opened from the form: back to it
        await wait_until(pilot, lambda: app.screen is form, "the form again")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RolePickerScreen), "the picker")
        await pilot.press("ctrl+q")

    assert run(app, script, size=(120, 40)) == 0


def test_the_token_typed_in_the_form_reaches_a_real_controller(controller: RunningController) -> None:
    backend = Backend(token=None)
    app = make_app(controller=controller.address, backend=backend, environ={}, ram_probe=lambda: 4096)

    async def script(pilot: Pilot[int]) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, RoleFormScreen), "the UI Node form")
        await pilot.press(*TEST_TOKEN, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        totals = app.screen.query_one("#totals", Static)
        await wait_until(pilot, lambda: not str(totals.render()).startswith(("Connecting", "Unreachable")),
                         "the controller's first status")  # fmt: skip
        await pilot.press("ctrl+c")

    assert run(app, script, size=(120, 40)) == 0


@pytest.mark.parametrize("given", ["token", "insecure"])
def test_ui_with_a_controller_and_a_token_or_insecure_opens_the_monitor(given: str) -> None:
    backend = Backend(token=TEST_TOKEN) if given == "token" else Backend(insecure=True)
    app = make_app(controller=NOWHERE, backend=backend, environ={}, ram_probe=lambda: 4096)

    async def script(pilot: Pilot[int]) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        await pilot.press("ctrl+c")

    assert run(app, script) == 0


def test_a_role_started_with_a_controller_gets_it_in_its_form() -> None:
    app = make_app(controller=CONTROLLER, start_role="host", backend=Backend(token=None), environ={}, cpus=4,
                   ram_probe=lambda: 4096)  # fmt: skip

    async def script(pilot: Pilot[int]) -> None:
        await wait_until(pilot, lambda: isinstance(app.focused, Input), "the host form")
        form = app.screen
        assert isinstance(form, RoleFormScreen) and form.role.key == "host"
        assert form.query_one("#controller", Input).value == str(CONTROLLER)
        assert app.focused is form.query_one("#token", Input)
        await pilot.press("ctrl+c")

    assert run(app, script) == 0


def test_an_insecure_ui_node_form_needs_no_token() -> None:
    app = make_app(start_role="ui", backend=Backend(insecure=True), environ={}, ram_probe=lambda: 4096)

    async def script(pilot: Pilot[int]) -> None:
        await wait_until(pilot, lambda: isinstance(app.focused, Input), "the form")
        await pilot.press(*str(NOWHERE), "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        await pilot.press("ctrl+c")

    assert run(app, script) == 0


# ---------------------------------------------------------------------- help


def _screens_with_bindings() -> set[type]:
    """Every App or Screen class of the TUI package that declares bindings of its own."""
    import importlib
    import pkgutil

    found: set[type] = set()
    for info in pkgutil.iter_modules(bxthre3.tui.__path__):
        module = importlib.import_module(f"bxthre3.tui.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, App | Screen) and own_bindings(cls):
                found.add(cls)
    return found


def test_help_lists_every_binding_of_every_screen_and_only_bound_keys() -> None:
    sections = help_sections()
    listed = {(row.owner, key) for _, rows in sections for row in rows for key in row.keys}
    classes = [cls for _, cls in help_classes()]
    assert _screens_with_bindings() <= set(classes), "a screen with bindings of its own is missing from help"
    app_class = next(cls for cls in classes if issubclass(cls, App))
    for cls in classes:
        for binding in own_bindings(cls):
            for key in split_keys(binding):
                where = app_class if forwards_app_key(binding) else cls  # a modal's q and d: listed as the App's
                assert (where, key) in listed, f"{cls.__name__} binds {key} ({binding.action}): not in help"
    for _, rows in sections:
        for row in rows:
            for key in row.keys:
                assert key in bound_keys(row.owner), (
                    f"help lists {key} for {row.owner.__name__}, which does not bind it"
                )


def test_help_says_what_habits_need_to_know() -> None:
    rows = {key_label(row.keys): row.does for _, rows in help_sections() for row in rows}
    assert rows["Ctrl+C Ctrl+Q"].startswith("quit, stopping every role") and "text boxes" in rows["Ctrl+C Ctrl+Q"]
    assert "outside text boxes" in rows["q"]
    assert "press twice" in rows["c"]
    assert rows["1-5"].startswith("pick a role")


@pytest.mark.parametrize("size", [(45, 35), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_fits_the_terminal_and_scrolls(size: tuple[int, int]) -> None:
    app = make_app(environ={}, ram_probe=lambda: 4096, cpus=4)

    async def script(pilot: Pilot[int]) -> None:
        await _to_help(pilot)
        box = app.screen.query_one("#help")
        assert box.region.x >= 0 and box.region.right <= size[0] and box.region.bottom <= size[1], box.region
        assert box.max_scroll_y > 0, "more keys than lines: it scrolls"
        await pilot.press("end")  # the last section can be reached
        await wait_until(pilot, lambda: box.scroll_y == box.max_scroll_y, "the end of help")
        await pilot.press("ctrl+c")

    assert run(app, script, size=size) == 0
