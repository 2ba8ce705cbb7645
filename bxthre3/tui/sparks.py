"""Sparklines, busy bars and compact numbers: the small text pieces of the task stream and the top bar.

Pure and Textual-free so they are tested as strings. Resampling keeps the *maximum* of the values a
cell covers for counts (a one-second burst of 5,000 tasks must not be averaged away in a 5-minute
sparkline) and the *mean* for fractions (a host busy half the cell is half busy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from rich.cells import cell_len, set_cell_size

from ..client.outputs import terminal_safe

BLOCKS = "▁▂▃▄▅▆▇█"
"""The eight sparkline levels; a value of zero is a blank, so one task in a quiet minute still shows."""

EIGHTHS = "▏▎▍▌▋▊▉"
"""Partial cells of a busy bar, 1/8 to 7/8."""

SHADES = " ░▒▓"
"""How busy a timeline cell is when no single attempt fills it: idle, <1/3, <2/3, more."""

Resample = Literal["max", "mean"]


def _clean(value: float) -> float:
    """A value from the wire as a finite, non-negative number (NaN, negative and infinite read as 0)."""
    if value.__class__ is float or value.__class__ is int:  # the common case, without a call to float()
        return float(value) if 0 < value < math.inf else 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


def resample(values: Sequence[float], width: int, how: Resample = "max") -> list[float]:
    """`values` (oldest first) as `width` cells: each cell the max (or mean) of the values it covers.

    Fewer values than cells stretch (each value over several cells) so the time axis stays linear.
    """
    if width <= 0:
        return []
    clean = [_clean(v) for v in values]
    n = len(clean)
    if n == 0:
        return [0.0] * width
    out: list[float] = []
    for i in range(width):
        lo = i * n // width
        hi = max(lo + 1, (i + 1) * n // width)
        part = clean[lo:hi]
        out.append(max(part) if how == "max" else sum(part) / len(part))
    return out


def level_char(value: float, top: float) -> str:
    """One sparkline cell: blank for zero, else ▁..█ with any non-zero value at least ▁."""
    value = _clean(value)
    if value <= 0 or top <= 0:
        return " "
    level = min(len(BLOCKS), max(1, math.ceil(value / top * len(BLOCKS) - 1e-9)))
    return BLOCKS[level - 1]


def sparkline(values: Sequence[float], width: int, *, how: Resample = "max", top: float | None = None) -> str:
    """`values` resampled to `width` cells of ▁▂▃▄▅▆▇█, scaled to `top` (default: the largest cell).

    The scale is not in the string: the caller labels it (`█ = 5,000/s`).
    """
    cells = resample(values, width, how)
    scale = top if top is not None else max(cells, default=0.0)
    return "".join(level_char(v, scale) for v in cells)


def busy_bar(fraction: float, width: int) -> str:
    """`fraction` (0..1, clamped) as a left-filled bar of `width` cells, in eighths of a cell."""
    if width <= 0:
        return ""
    eighths = round(min(1.0, _clean(fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (EIGHTHS[part - 1] if part else "")
    return bar + " " * (width - len(bar))


def shade_char(fraction: float) -> str:
    """A timeline cell's shade for a busy fraction: blank when idle, else ░ ▒ ▓ by thirds."""
    value = min(1.0, _clean(fraction))
    if value <= 0:
        return SHADES[0]
    return SHADES[min(3, 1 + int(value * 3))]


def compact_number(value: float) -> str:
    """At most 4 cells: `0`, `0.4`, `12`, `999`, `3.8k`, `38k`, `380k`, `3.8M` (rates in a label column)."""
    value = _clean(value)
    if value == 0:
        return "0"
    if value < 9.95:
        return f"{value:.1f}"
    if value < 999.5:
        return f"{value:.0f}"
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        scaled = value / size
        if scaled < 9.95:
            return f"{scaled:.1f}{unit}"
        if scaled < 999.5:
            return f"{scaled:.0f}{unit}"
    return "many"


def rate_text(rate: float) -> str:
    """A rate as people read it: `3,812`, `12.5`, `0.4`, `0`."""
    rate = _clean(rate)
    if rate == 0:
        return "0"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def cut(text: str, width: int) -> str:
    """`text` made safe for the terminal and cut to `width` cells with `…` (never padded)."""
    text = terminal_safe(text, keep="")
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1) + "…"


def cut_middle(text: str, width: int) -> str:
    """`text` cut to `width` cells with `…` in the middle: node ids share their heads (`lab-box-1`,
    `lab-box-12`) and differ at the end, so the end must stay visible."""
    text = terminal_safe(text, keep="")
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    room = width - 1
    tail_w = room - room // 2
    tail = ""
    for ch in reversed(text):
        if cell_len(ch + tail) > tail_w:
            break
        tail = ch + tail
    head = set_cell_size(text, room - cell_len(tail)) if room > cell_len(tail) else ""
    return head + "…" + tail


def fit(text: str, width: int, *, middle: bool = False) -> str:
    """`cut` (or `cut_middle`) to `width` cells, then padded to exactly `width`."""
    shown = cut_middle(text, width) if middle else cut(text, width)
    return shown + " " * max(0, width - cell_len(shown))
