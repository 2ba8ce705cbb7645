"""Pure layout decisions for the monitor: which arrangement a terminal size gets, which table columns fit a
pane and how wide each is, and which parts of a one-line summary fit a width.

Kept apart from the widgets so the rules are unit-tested at every size without starting Textual, and so
a column is never silently cut: a column either gets at least its minimum width or is left out whole, in
priority order (the least important first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from rich.text import Text


class LayoutMode(str, Enum):
    """An arrangement designed for a range of terminal sizes (not one layout squeezed)."""

    NARROW = "narrow"
    """A phone in portrait (~45 columns): one pane at a time, a tab bar to switch."""
    MEDIUM = "medium"
    """The classic 80x24: two columns; the task table shares its place with the DAG's structure and the task stream."""
    WIDE = "wide"
    """120 columns and more: every pane at once."""


NARROW_BELOW = 70
"""Fewer columns than this: one pane at a time (two 35-column panes cannot show a task table)."""
WIDE_FROM = 120
"""This many columns or more (and `WIDE_MIN_ROWS` rows): every pane at once."""
WIDE_MIN_ROWS = 30
"""A wide but short terminal (e.g. 160x24) has no room to stack every pane: it gets the medium layout."""


def layout_mode(width: int, height: int) -> LayoutMode:
    if width < NARROW_BELOW:
        return LayoutMode.NARROW
    if width >= WIDE_FROM and height >= WIDE_MIN_ROWS:
        return LayoutMode.WIDE
    return LayoutMode.MEDIUM


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One table column: shown at `minimum` width or more, or not at all.

    `priority` orders what is dropped when the pane is narrow (1 = kept longest); `preferred` is the width
    it grows to when there is room; `flex` columns share what is left beyond every preferred width.
    """

    key: str
    label: str
    minimum: int
    preferred: int
    priority: int
    flex: int = 0
    right: bool = False
    """Right-aligned (numbers)."""


CELL_PADDING = 1
"""DataTable's padding each side of a cell."""


def fit_columns(specs: Sequence[ColumnSpec], width: int, padding: int = CELL_PADDING) -> list[tuple[ColumnSpec, int]]:
    """The columns that fit `width` cells, in their table order, each with its width (>= its minimum).

    Columns are taken in priority order until the next one's minimum does not fit; the room left
    raises each to its preferred width (by priority), then flex columns share the rest. The
    first-priority column is always shown, at `width` if even its minimum does not fit (a table is
    never empty).
    """
    pad = 2 * padding
    by_priority = sorted(specs, key=lambda s: s.priority)
    chosen: list[ColumnSpec] = []
    used = 0
    for spec in by_priority:
        if used + spec.minimum + pad > width:
            break  # strictly by priority: a less important column never takes the place of a more important one
        chosen.append(spec)
        used += spec.minimum + pad
    if not chosen and by_priority:
        first = by_priority[0]
        return [(first, max(1, width - pad))]
    widths = {spec.key: spec.minimum for spec in chosen}
    room = width - used
    for spec in chosen:  # priority order: the important columns reach their preferred width first
        grow = min(room, spec.preferred - widths[spec.key])
        if grow > 0:
            widths[spec.key] += grow
            room -= grow
    flexible = [spec for spec in chosen if spec.flex]
    total_flex = sum(spec.flex for spec in flexible)
    if room > 0 and total_flex:
        shares = [room * spec.flex // total_flex for spec in flexible]
        shares[0] += room - sum(shares)
        for spec, share in zip(flexible, shares, strict=True):
            widths[spec.key] += share
    keys = {spec.key for spec in chosen}
    return [(spec, widths[spec.key]) for spec in specs if spec.key in keys]


def fit_cell(value: Text, width: int, *, right: bool = False) -> Text:
    """`value` cut to `width` cells with an ellipsis (DataTable would cut it without one), aligned."""
    text = value.copy()
    text.no_wrap = True
    if text.cell_len > width:
        text.truncate(width, overflow="ellipsis")
    elif right:
        text.pad_left(width - text.cell_len)
    return text


def fit_parts(parts: Sequence[Text | str], width: int, separator: str = " · ") -> Text:
    """The leading `parts` that fit `width` cells joined by `separator` (parts are in priority order, so a
    narrow screen drops the least important from the end, never cutting one in the middle)."""
    line = Text(no_wrap=True, end="")
    for part in parts:
        piece = part if isinstance(part, Text) else Text(part)
        extra = (len(separator) if line.cell_len else 0) + piece.cell_len
        if line.cell_len + extra > width:
            if not line.cell_len:  # even the first part does not fit: show what does
                line.append_text(piece)
                line.truncate(width, overflow="ellipsis")
            break
        if line.cell_len:
            line.append(separator, style="dim")
        line.append_text(piece)
    return line
