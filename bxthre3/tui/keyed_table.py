"""Keep a DataTable whose rows have keys in step with a fresh snapshot, for every screen that shows one.

Clearing and refilling a table twice a second would flicker and lose the cursor; so each snapshot is
applied as a difference: rows gone are removed, new ones added (in snapshot order, after the others),
and only cells that changed are rewritten.
"""

from __future__ import annotations

from textual.widgets import DataTable


def sync_rows(table: DataTable[str], rows: dict[str, tuple[str, ...]]) -> None:
    """Make `table` show `rows` (row key -> one cell per column) in place: the cursor stays on its row.
    (The monitor's tables choose their column widths themselves: `adaptive_table.AdaptiveTable`.)"""
    for gone in [k for k in table.rows if k.value not in rows]:
        table.remove_row(gone)
    columns = list(table.columns)
    for key, row in rows.items():
        if key in table.rows:
            old = table.get_row(key)
            for column, before, after in zip(columns, old, row, strict=True):
                if before != after:
                    table.update_cell(key, column, after)
        else:
            table.add_row(*row, key=key)
