"""`keyed_table.sync_rows`, the one way the monitor and the role screens update a keyed DataTable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from bxthre3.tui.keyed_table import sync_rows


class _TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()


def test_sync_rows_changes_cells_adds_and_drops_rows_and_keeps_the_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        app = _TableApp()
        async with app.run_test(size=(60, 10)):
            table = app.query_one(DataTable)
            table.add_columns("node", "state")
            sync_rows(table, {"a": ("a", "up"), "b": ("b", "up"), "c": ("c", "up")})
            table.move_cursor(row=1)
            updated: list[object] = []
            original = table.update_cell

            def update_cell(row: Any, column: Any, value: object, **kw: Any) -> None:
                updated.append(value)
                original(row, column, value, **kw)

            monkeypatch.setattr(table, "update_cell", update_cell)
            sync_rows(table, {"b": ("b", "down"), "a": ("a", "up"), "d": ("d", "new")})
            assert [table.get_row(k) for k in table.rows] == [["a", "up"], ["b", "down"], ["d", "new"]]
            assert updated == ["down"]  # unchanged cells are not rewritten
            assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "b"

    asyncio.run(run())
