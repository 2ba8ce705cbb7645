"""Keep a DataTable whose rows have keys in step with a fresh snapshot, for every screen that shows one.

Clearing and refilling a table twice a second would flicker and lose the cursor; so each snapshot is
applied as a difference: rows gone are removed, new ones added (in snapshot order, after the others),
and only cells that changed are rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import DataTable


def sync_rows(table: DataTable[str], rows: dict[str, tuple[str, ...]], *, fit: bool = False) -> None:
    """Make `table` show `rows` (row key -> one cell per column) in place: the cursor stays on its row.

    With `fit`, fixed-width columns are first widened to the new cells (see `widen_to_fit`) and the
    table's scroll width follows the cells it rewrites.
    """
    if fit:
        widen_to_fit(table, rows.values())
    for gone in [k for k in table.rows if k.value not in rows]:
        table.remove_row(gone)
    columns = list(table.columns)
    for key, row in rows.items():
        if key in table.rows:
            old = table.get_row(key)
            for column, before, after in zip(columns, old, row, strict=True):
                if before != after:
                    table.update_cell(key, column, after, update_width=fit)
        else:
            table.add_row(*row, key=key)


def widen_to_fit(table: DataTable[str], rows: Iterable[tuple[str, ...]]) -> None:
    """Widen fixed-width columns to their widest cell (markup as rendered), never narrowing them.

    Called before the cells change, so every row is drawn at its final widths. Textual's own auto
    width is applied only when the table is next idle, and a row drawn before that stays cached at
    the old widths (the cursor row read "lab-bo" for "lab-box"): what the screen showed depended on
    the event loop's timing, and so differed between Python versions.
    """
    columns = list(table.columns.values())
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            width = Text.from_markup(value).cell_len
            if not column.auto_width and width > column.width:
                column.width = width
