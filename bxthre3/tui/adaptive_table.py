"""A DataTable whose columns follow its width, and whose rows are applied as differences.

The table keeps every row whole (all columns) and shows the columns that fit (`layout.fit_columns`):
a narrow pane drops its least important columns instead of cutting them, a wide one gives them room.
Rows live in numbered slots (row key ``r<i>``): a row keeps its slot while it is shown, a new row takes
the slot of one that left (no O(rows) removals in a 500-row table), and only cells that changed are
written — a snapshot twice a second must neither flicker nor move the cursor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from .layout import ColumnSpec, fit_cell, fit_columns

Row = tuple[Text, ...]


class AdaptiveTable(DataTable[Text]):
    """Rows are keyed (any string); `set_rows` shows exactly those rows, in place."""

    SCROLLBAR_ROOM = 1
    """Columns kept free for the vertical scrollbar (its CSS size), so no row ever scrolls sideways."""

    def __init__(self, specs: Sequence[ColumnSpec], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.specs = tuple(specs)
        self._index = {spec.key: i for i, spec in enumerate(self.specs)}
        self.shown: list[tuple[ColumnSpec, int]] = []
        """The columns on screen and their widths."""
        self._rows: dict[str, Row] = {}
        self._slots: list[str] = []
        self._slot_of: dict[str, int] = {}
        self._width = -1
        self._pending_key: str | None = None
        """A row to highlight once the table has columns (`highlight` before its first layout)."""

    # --- columns ------------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self.relayout()
        self.refresh()  # Textual 8.2.8 marks the row cache stale on resize but does not redraw

    def on_mount(self) -> None:
        self.relayout()

    def relayout(self) -> None:
        """Choose the columns for the current width; rebuild only when that width changed."""
        width = self.content_region.width - self.SCROLLBAR_ROOM
        if width <= 0 or width == self._width:
            return
        self._width = width
        shown = fit_columns(self.specs, width)
        if shown == self.shown:
            return
        self.shown = shown
        cursor = self.cursor_row
        self.clear(columns=True)
        for spec, col_width in shown:
            self.add_column(fit_cell(Text(spec.label, style="bold"), col_width, right=spec.right), key=spec.key,
                            width=col_width)  # fmt: skip
        for i, key in enumerate(self._slots):
            self.add_row(*self._project(self._rows[key]), key=f"r{i}")
        if self._pending_key in self._slot_of:
            cursor = self._slot_of[self._pending_key]
        self._pending_key = None
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1), animate=False)

    def _project(self, row: Row) -> list[Text]:
        return [fit_cell(row[self._index[spec.key]], width, right=spec.right) for spec, width in self.shown]

    # --- rows ---------------------------------------------------------------------------------

    def set_rows(self, rows: Mapping[str, Row]) -> None:
        """Show exactly `rows` (key -> every column's cell), changing only what changed."""
        old = self._rows
        slot_of = {key: i for i, key in enumerate(self._slots)}
        free = [i for i, key in enumerate(self._slots) if key not in rows]
        free.reverse()
        for key, row in rows.items():
            i = slot_of.get(key)
            if i is None and free:
                i = free.pop()
                before: Row | None = old[self._slots[i]]
                self._slots[i] = key
            elif i is None:
                self._slots.append(key)
                if self.shown:
                    self.add_row(*self._project(row), key=f"r{len(self._slots) - 1}")
                continue
            else:
                before = old[key]
            if before is not row and before != row and self.shown:
                self._write_cells(f"r{i}", before, row)
        self._rows = dict(rows)
        if free:  # fewer rows than slots: rebuild without the empty ones
            self._slots = [key for key in self._slots if key in rows]
            self.clear()
            if self.shown:
                for i, key in enumerate(self._slots):
                    self.add_row(*self._project(rows[key]), key=f"r{i}")
        self._slot_of = {key: i for i, key in enumerate(self._slots)}

    def _write_cells(self, row_key: str, before: Row | None, after: Row) -> None:
        for spec, width in self.shown:
            index = self._index[spec.key]
            if before is None or before[index] != after[index]:
                self.update_cell(row_key, spec.key, fit_cell(after[index], width, right=spec.right))

    def update_row(self, key: str, row: Row) -> None:
        """Change one shown row (e.g. a running task's elapsed time) without a whole snapshot."""
        if key not in self._rows:
            return
        before = self._rows[key]
        self._rows[key] = row
        if self.shown and before != row:
            self._write_cells(f"r{self._slot_of[key]}", before, row)

    def highlight(self, key: str) -> None:
        """Put the cursor on row `key` — now, or when the table is first laid out."""
        if self.shown and key in self._slot_of:
            self.move_cursor(row=self._slot_of[key], animate=False)
        else:
            self._pending_key = key

    def cells(self, key: str) -> dict[str, str]:
        """Every column of row `key` as plain text (shown or not), by column key: what tests and tools read."""
        row = self._rows[key]
        return {spec.key: row[i].plain for i, spec in enumerate(self.specs)}

    @property
    def keys(self) -> list[str]:
        """The keys of the rows shown, top to bottom."""
        return list(self._slots)

    def highlighted_key(self) -> str | None:
        """The key of the row under the cursor, or None in an empty table."""
        if not self.row_count:
            return None
        row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        if not row_key:
            return None
        index = int(row_key[1:])
        return self._slots[index] if index < len(self._slots) else None
