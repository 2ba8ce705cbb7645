"""Every screen, at 45x35, 80x24, 120x34 and 200x60, dark and light (issue 21): one app start per screen,
8 pictures each (see snapshot_matrix.py). The monitor is pictured with a finished DAG (a part-filled
progress bar's half-cell glyph differs from run to run) and with a quarantined device.

To add a screen, add one line to SCREENS, e.g. for the monitor of a finished DAG:

    MatrixScreen("monitor-done", lambda: monitor_app("succeeded"), ready=settle_monitor(5, "prepared 3 greetings")),

(`settle_monitor` as `_settle_monitor` in test_monitor_snapshots.py), then
`pytest --snapshot-update -k monitor-done tests/tui/test_snapshot_matrix.py` once, and look at the 8 new SVGs
before committing them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Label

from bxthre3.tui.file_picker import DagTree, FilePickerScreen
from bxthre3.tui.help_screen import HelpScreen

from .snapshot_apps import picker_app, role_form_app, role_screen_app
from .snapshot_matrix import MatrixScreen, settle_after_change, settle_default
from .test_app import holds

FILE_PICKER_FIXTURE = Path(__file__).parent / "fixtures" / "dag_tree"
"""dags/{hello.yaml,hello_fanout.yml}, run.yaml and notes.txt (not shown): a small fixed tree for the picker."""


async def _until(pilot: Pilot[Any], predicate: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.02)


async def open_help(pilot: Pilot[Any]) -> None:
    await settle_default(pilot)
    await pilot.press("question_mark")
    await _until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help screen")
    await settle_default(pilot)


async def open_file_picker(pilot: Pilot[Any]) -> None:
    """The picker over the role picker, browsing the fixed tree; the shown directory is relabelled
    `~/dags-example` because the absolute path of the checkout must not be in the pictures."""
    await settle_default(pilot)
    await pilot.app.push_screen(FilePickerScreen(FILE_PICKER_FIXTURE))
    tree = pilot.app.screen.query_one("#file-tree", DagTree)
    await _until(pilot, lambda: len(tree.root.children) == 2, "the picker's tree")
    tree.root.set_label("dags-example")
    pilot.app.screen.query_one("#file-picker-dir", Label).update("~/dags-example")
    await settle_after_change(pilot)  # not settle_default: the tree cancels its own loader workers


def _monitor_ready(pilot: Pilot[Any]) -> bool:
    """The monitor laid out for the current size, with the fake's snapshot, stream and output applied."""
    from bxthre3.tui.adaptive_table import AdaptiveTable
    from bxthre3.tui.layout import layout_mode
    from bxthre3.tui.monitor import MonitorScreen

    screen = pilot.app.screen
    if not isinstance(screen, MonitorScreen) or screen.mode is not layout_mode(*pilot.app.size):
        return False
    return (
        len(screen.query_one("#tasks", AdaptiveTable).keys) == 5
        and len(screen.query_one("#hosts", AdaptiveTable).keys) == 2
        and screen._activity is not None
        and "prepared 3 greetings" in str(screen.query_one("#output").render())
    )


async def monitor_ready(pilot: Pilot[Any]) -> None:
    await _until(pilot, lambda: _monitor_ready(pilot), "the monitor's snapshot", timeout=15)
    await pilot.pause(0.3)  # DAG items fill after their first refresh
    await pilot.wait_for_animation()
    await pilot.pause()


async def monitor_after_change(pilot: Pilot[Any]) -> None:
    """A resize across a breakpoint recomposes the monitor: wait for the new layout to be filled again."""
    await settle_after_change(pilot)
    await monitor_ready(pilot)


def _monitor(name: str, **kw: Any) -> MatrixScreen:
    from .snapshot_apps import monitor_app

    return MatrixScreen(name, lambda: monitor_app("succeeded", **kw), ready=monitor_ready,
                        after_change=monitor_after_change)  # fmt: skip


SCREENS: list[MatrixScreen] = [
    MatrixScreen("role-picker", picker_app),
    *(
        MatrixScreen(f"form-{role}", lambda role=role: role_form_app(role))
        for role in ("ui", "controller", "node-manager", "host", "all")
    ),  # type: ignore[misc]
    *(
        MatrixScreen(f"role-{role}", lambda role=role: role_screen_app(role))
        for role in ("controller", "node-manager", "host")
    ),  # type: ignore[misc]
    MatrixScreen("help", picker_app, ready=open_help),
    MatrixScreen("file-picker", picker_app, ready=open_file_picker),
    _monitor("monitor"),
    _monitor("monitor-quarantine", quarantined=True),
]


@pytest.mark.parametrize("screen", [screen.param() for screen in SCREENS])
def test_screen(snap_matrix, screen: MatrixScreen) -> None:
    snap_matrix(screen)
