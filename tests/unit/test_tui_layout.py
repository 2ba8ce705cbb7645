"""The monitor's pure layout rules: which arrangement a size gets, which columns fit, what a line keeps."""

from __future__ import annotations

import pytest
from rich.text import Text

from bxthre3.tui.columns import HOST_COLUMNS, TASK_COLUMNS, host_cells, seconds, task_cells
from bxthre3.tui.dag_list import counts_text, dag_label, progress_label
from bxthre3.tui.layout import ColumnSpec, LayoutMode, fit_cell, fit_columns, fit_parts, layout_mode


@pytest.mark.parametrize(
    ("size", "mode"),
    [
        ((45, 35), LayoutMode.NARROW),
        ((69, 40), LayoutMode.NARROW),
        ((70, 20), LayoutMode.MEDIUM),
        ((80, 24), LayoutMode.MEDIUM),
        ((160, 24), LayoutMode.MEDIUM),  # wide but short: no room to stack every pane
        ((120, 34), LayoutMode.WIDE),
        ((200, 60), LayoutMode.WIDE),
    ],
)
def test_each_size_gets_its_arrangement(size: tuple[int, int], mode: LayoutMode) -> None:
    assert layout_mode(*size) is mode


@pytest.mark.parametrize("specs", [TASK_COLUMNS, HOST_COLUMNS], ids=["tasks", "hosts"])
@pytest.mark.parametrize("width", range(8, 220, 3))
def test_columns_fit_the_width_and_are_never_cut_below_their_minimum(specs, width: int) -> None:
    shown = fit_columns(specs, width)
    assert shown, "a table is never empty"
    assert [spec.key for spec, _ in shown] == [s.key for s in specs if s.key in {x.key for x, _ in shown}]
    if len(shown) > 1 or shown[0][1] >= shown[0][0].minimum:
        assert all(w >= spec.minimum for spec, w in shown)
        assert sum(w + 2 for _, w in shown) <= width
    kept = {spec.priority for spec, _ in shown}
    assert kept == set(range(1, len(kept) + 1)), "columns go strictly from the least important"


def test_columns_grow_to_preferred_then_flex_columns_share_the_rest() -> None:
    specs = (
        ColumnSpec("a", "a", minimum=4, preferred=6, priority=1, flex=1),
        ColumnSpec("b", "b", minimum=3, preferred=3, priority=2),
        ColumnSpec("c", "c", minimum=5, preferred=8, priority=3, flex=1),
    )
    assert fit_columns(specs, 4 + 2 + 3 + 2) == [(specs[0], 4), (specs[1], 3)]
    # 4+3+5 minimums and 6 padding = 18: every column; 2 more cells raise `a` (first priority) first
    assert fit_columns(specs, 20) == [(specs[0], 6), (specs[1], 3), (specs[2], 5)]
    # 40 - 6 padding = 34; preferred widths take 17; the flex columns share the other 17 (the odd one to the first)
    shown = {s.key: w for s, w in fit_columns(specs, 40)}
    assert shown == {"a": 6 + 9, "b": 3, "c": 8 + 8}


def test_every_column_gets_its_preferred_width_on_a_wall() -> None:
    for specs in (TASK_COLUMNS, HOST_COLUMNS):
        shown = fit_columns(specs, 400)
        assert len(shown) == len(specs) and all(w >= spec.preferred for spec, w in shown)


def test_a_cell_is_cut_with_an_ellipsis_or_aligned() -> None:
    assert fit_cell(Text("abcdefgh"), 5).plain == "abcd…"
    assert fit_cell(Text("12"), 5, right=True).plain == "   12"
    assert fit_cell(Text("ab"), 5).plain == "ab"


def test_a_line_keeps_its_leading_parts_whole() -> None:
    parts = ["3,812 tasks/s", "4 running", "10 ready", "6 hosts"]
    assert fit_parts(parts, 80).plain == "3,812 tasks/s · 4 running · 10 ready · 6 hosts"
    assert fit_parts(parts, 30).plain == "3,812 tasks/s · 4 running"
    assert fit_parts(parts, 8).plain == "3,812 t…"


def test_durations_read_as_people_say_them() -> None:
    assert [seconds(v) for v in (0.0123, 12.34, 185, 7380)] == ["0.012 s", "12.3 s", "3m 05s", "2h 03m"]


def _task(**kw: object) -> dict[str, object]:
    return {"task_id": "t", "state": "pending", "attempts": 0, "node_id": None, **kw}


def test_task_cells_say_the_state_with_a_symbol_and_count_a_running_task_on() -> None:
    by_key = lambda cells: {spec.key: c.plain for spec, c in zip(TASK_COLUMNS, cells, strict=True)}  # noqa: E731
    assert by_key(task_cells(_task()))["state"] == "· pending"
    assert by_key(task_cells(_task()))["time"] == "–"
    running = _task(state="running", running_s=3.0, node_id="n1", attempts=1)
    assert by_key(task_cells(running))["time"] == "3.000 s"
    assert by_key(task_cells(running, 14.5))["time"] == "14.5 s"
    cached = _task(state="succeeded", cached=True, duration_s=0.5, finished_at=1.0)
    assert by_key(task_cells(cached))["state"] == "≡ cached"
    verified = _task(state="succeeded", verify=3, duration_s=0.5, finished_at=1.0)
    assert by_key(task_cells(verified))["state"] == "✔ verified"
    failed = _task(state="upstream_failed", reason="upstream_failed")
    assert by_key(task_cells(failed))["state"] == "⊘ upstream_failed"
    hostile = _task(task_id="[b]x\x1b[2J")
    assert by_key(task_cells(hostile))["task"] == "[b]x\\x1b[2J"


def test_host_cells_escape_what_hosts_report() -> None:
    host = {"node_id": "n\x07", "device": "[red]d", "state": "quarantined", "slots": 2, "running": ["a"]}
    cells = {spec.key: c.plain for spec, c in zip(HOST_COLUMNS, host_cells(host), strict=True)}
    assert cells["node"] == "n\\x07" and cells["device"] == "[red]d"
    assert cells["state"] == "⚠ quarantined" and cells["run"] == "1/2"


def test_a_cancelled_dag_shows_what_succeeded_not_100_percent() -> None:
    summary = {"name": "n", "state": "cancelled", "total": 10, "counts": {"succeeded": 3, "cancelled": 7}}
    assert progress_label(summary).plain == "3/10 –7 ✓3"
    assert dag_label("d-1", summary).plain == "– n d-1"
    assert counts_text({"running": 2, "failed": 1, "ready": 0}).plain == "●2 ✗1"
    running = {"name": "n", "state": "running", "total": 4, "counts": {"running": 1}, "share": 0.5}
    assert dag_label("d-2", running, pinned=True).plain == "● n d-2 (pinned) · share 50%"
