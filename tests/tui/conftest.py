"""TUI test fixtures. Snapshots must not depend on this machine: RAM and env are injected."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking Input cursor would make snapshots depend on timing: freeze it visible."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False, raising=False)


_MATRIX_TIMES = pytest.StashKey[list[tuple[str, int, float]]]()


@pytest.fixture
def snap_matrix(snapshot, request: pytest.FixtureRequest):
    """`snap_matrix(screen)`: one app start, every size x theme of `screen` compared (snapshot_matrix.py)."""
    import asyncio

    from .snapshot_matrix import MatrixScreen, run_matrix

    def compare(screen: MatrixScreen) -> None:
        result = asyncio.run(run_matrix(screen, snapshot, request))
        request.config.stash.setdefault(_MATRIX_TIMES, []).append((screen.name, result.compared, result.seconds))
        assert not result.mismatched, (
            f"{screen.name}: {len(result.mismatched)} of {result.compared} pictures differ from the stored SVGs: "
            f"{', '.join(result.mismatched)} (see the snapshot report; `pytest --snapshot-update` accepts them)"
        )

    return compare


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """How long each matrix screen took (one app start + 8 pictures): the suite's time budget is tight."""
    times = config.stash.get(_MATRIX_TIMES, [])
    if times:
        total = sum(seconds for _, _, seconds in times)
        terminalreporter.write_sep("-", f"snapshot matrix: {len(times)} screens in {total:.1f} s")
        for name, pictures, seconds in times:
            terminalreporter.write_line(f"{name:<20} {pictures} pictures  {seconds:5.2f} s")
