"""One app start per screen, every terminal size and both themes: the snapshot matrix.

`snap_compare` (pytest-textual-snapshot) starts the app once per picture, ~1-2 s each; 12 screens x
4 sizes x 2 themes that way would add minutes to the suite. Here a `MatrixScreen` says how to build
an app showing one screen and how to wait until it is ready; `snap_matrix` starts it once, then with
Pilot resizes the terminal and switches the theme for each of the 8 pictures.

Each picture is compared with `tests/tui/__snapshots__/<module>/<test>[<screen>][<W>x<H>-<theme>].svg`
through syrupy with pytest-textual-snapshot's own SVG extension, and a mismatch is written to the same
HTML failure report (`snapshot_report.html`) as `snap_compare`'s; `pytest --snapshot-update` rewrites
the stored SVGs. All 8 pictures are taken and compared even when the first differs, so one run shows
(or updates) every variant; the test then fails naming each mismatched one.
"""

from __future__ import annotations

import inspect
import pickle
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_textual_snapshot import PseudoApp, PseudoConsole, SVGImageExtension, node_to_report_path
from rich.console import Console
from syrupy import SnapshotAssertion
from textual.app import App
from textual.pilot import Pilot

SIZES: tuple[tuple[int, int], ...] = ((45, 35), (80, 24), (120, 34), (200, 60))
"""Issue 21: a narrow phone in portrait (45x35), the classic terminal, a laptop, a wide monitor."""

THEMES: tuple[str, ...] = ("textual-dark", "textual-light")
"""The two themes the app's `d` key toggles between (`App.action_toggle_dark` in Textual 8)."""

Settle = Callable[[Pilot[Any]], Awaitable[None]]


async def settle_default(pilot: Pilot[Any]) -> None:
    """Wait for workers (discovery, status polls) and animations: the screen stops changing."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.wait_for_animation()
    await pilot.pause()


async def settle_after_change(pilot: Pilot[Any]) -> None:
    """After a resize or theme switch: one refresh for the new layout/styles, animations landed."""
    await pilot.pause()
    await pilot.wait_for_animation()
    await pilot.pause()


@dataclass(frozen=True)
class MatrixScreen:
    """One screen of the matrix: `make_app` builds an app (deterministic: fixed RAM, CPUs, environment,
    animations off) and `ready` waits until the screen under test is shown and filled."""

    name: str
    make_app: Callable[[], App[Any]]
    ready: Settle = settle_default
    after_change: Settle = settle_after_change
    sizes: tuple[tuple[int, int], ...] = SIZES
    themes: tuple[str, ...] = THEMES
    marks: tuple[Any, ...] = field(default=())

    def param(self) -> Any:
        """This screen as a `pytest.param`, its id the screen's name (and the snapshot files' middle part)."""
        return pytest.param(self, id=self.name, marks=self.marks)


@dataclass
class MatrixResult:
    """What one matrix run did: the variants that differ from their stored SVG, and how long it took."""

    mismatched: list[str]
    compared: int
    seconds: float


def variant_name(size: tuple[int, int], theme: str) -> str:
    return f"{size[0]}x{size[1]}-{theme.removeprefix('textual-')}"


def _record_for_report(
    request: pytest.FixtureRequest, variant: str, passed: bool, expected: str, actual: str, exists: bool
) -> None:
    """Leave a record where pytest-textual-snapshot's session hook builds its HTML report from (one file
    per picture, so each mismatched variant gets its own side-by-side diff)."""
    node = request.node
    full_path, line_number, name = node.reportinfo()
    console = Console(legacy_windows=False, force_terminal=True)
    data = (
        passed,
        expected,
        actual,
        PseudoApp(PseudoConsole(console.legacy_windows, console.size)),
        full_path,
        line_number,
        f"{name}[{variant}]",
        inspect.getdoc(node.function) or "",
        "",
        exists,
    )
    path = node_to_report_path(node)
    path.with_name(f"{path.name}_{variant}").write_bytes(pickle.dumps(data))


async def run_matrix(screen: MatrixScreen, snapshot: SnapshotAssertion, request: pytest.FixtureRequest) -> MatrixResult:
    """Start `screen`'s app once and compare every (size, theme) picture with its stored snapshot."""
    svg_snapshot = snapshot.use_extension(SVGImageExtension)
    started = time.perf_counter()
    mismatched: list[str] = []
    app = screen.make_app()
    app.animation_level = "none"
    async with app.run_test(size=screen.sizes[0]) as pilot:
        await screen.ready(pilot)
        for size in screen.sizes:
            await pilot.resize_terminal(*size)
            await screen.after_change(pilot)
            for theme in screen.themes:
                if app.theme != theme:
                    app.theme = theme
                    await screen.after_change(pilot)
                assert app.size == size, f"the terminal is {app.size}, not {size}"
                variant = variant_name(size, theme)
                actual = app.export_screenshot(title=app.title)
                assertion = svg_snapshot(name=variant)
                passed = assertion == actual
                execution = assertion.executions.get(assertion.num_executions - 1)
                exists = bool(execution and execution.final_data is not None)
                _record_for_report(request, variant, passed, str(assertion), actual, exists)
                if not passed:
                    mismatched.append(variant)
        app.exit()
    compared = len(screen.sizes) * len(screen.themes)
    return MatrixResult(mismatched, compared, time.perf_counter() - started)
