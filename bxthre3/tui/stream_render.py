"""The task stream as lines of text: per host, a timeline of its attempts over the last `span` seconds.

Pure (no Textual) so every layout is tested as strings; `stream_view.TaskStreamView` draws these lines
for its current size. Layout of a line: a label column (the node id cut with `…`, and the host's mean
busy % over the span), `│`, then the timeline, one cell per `span / cells` seconds with now at the right.

A cell mostly covered by one attempt (>= half of it) shows that attempt: `━` while it runs on, its state
symbol in the last cell it covers (`━━━✓` ran, then succeeded; `━━●` at the right edge runs now). Any
other cell shows how busy the host was (░ ▒ ▓ by the `busy` buckets, which are means and so do not
flicker when 5,000 attempts a second each cover a sliver of a cell) in the colour of the state (or DAG)
that covered most of it. Colour is never the only signal: symbols and shades read without it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.style import Style
from rich.text import Text

from .sparks import _clean, compact_number, cut, fit, level_char, rate_text, shade_char
from .states import STATE_LOOKS, look

if TYPE_CHECKING:
    from .activity_shapes import ActivityView, HostActivity, SegmentView

ColourBy = Literal["state", "dag"]

SPANS: tuple[float, ...] = (60.0, 300.0)
"""The spans the zoom key cycles through, in seconds."""

DAG_HUES = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7")
"""Eight hues that stay apart from each other on dark and light backgrounds; a DAG keeps its hue."""

IDLE_GREY = "#8a8f98"
RUN_GLYPH = "━"
DIM = Style(dim=True)


def dag_hue(dag_id: str) -> str:
    """The DAG's hue: from a CRC of its id, so it is the same on every refresh and every run of the UI."""
    return DAG_HUES[zlib.crc32(dag_id.encode("utf-8", "replace")) % len(DAG_HUES)]


def label_width(width: int) -> int:
    """Cells of the label column: a quarter of the width, 8 to 22."""
    return max(8, min(22, width // 4))


def ago_text(seconds: float) -> str:
    """An axis label: `-60s`, `-5m`, `-150s`."""
    if seconds >= 120 and seconds % 60 == 0:
        return f"-{int(seconds // 60)}m"
    return f"-{seconds:g}s"


@dataclass(frozen=True, slots=True)
class _Cell:
    char: str
    key: str | None
    """The state or DAG id that colours it (None: busy with no attempt known, or idle)."""
    state: str | None


def _bucket_cells(values: Sequence[float], bucket_s: float, span: float, n: int, how: str) -> list[float | None]:
    """Buckets (oldest first, the last one ending now) mapped onto `n` cells of the last `span` seconds.

    `mean` weights each bucket by how much of the cell it covers; `max` keeps a burst. None: no bucket
    reaches that cell (older than the window).
    """
    b = len(values)
    out: list[float | None] = []
    if b == 0 or bucket_s <= 0:
        return [None] * n
    clean = [_clean(v) for v in values]
    for i in range(n):
        hi = span * (n - i) / n  # seconds ago of the cell's left edge
        lo = span * (n - 1 - i) / n
        first = max(0, b - math.ceil(hi / bucket_s) - 1)
        last = min(b - 1, b - math.floor(lo / bucket_s))
        total = weight = 0.0
        best = 0.0
        for j in range(first, last + 1):
            b_hi = (b - j) * bucket_s
            b_lo = (b - 1 - j) * bucket_s
            overlap = min(hi, b_hi) - max(lo, b_lo)
            if overlap <= 1e-12:
                continue
            total += clean[j] * overlap
            weight += overlap
            best = max(best, clean[j])
        if weight == 0:
            out.append(None)
        else:
            out.append(best if how == "max" else total / weight)
    return out


def _segment_span(seg: SegmentView) -> tuple[float, float] | None:
    """(start, end) in seconds ago, start >= end >= 0; None for a segment without usable times."""
    try:
        start = _clean(seg.get("start_ago_s", 0.0))
        end_raw = seg.get("end_ago_s")
        end = 0.0 if end_raw is None else _clean(end_raw)
    except AttributeError:
        return None
    return (start, end) if start >= end else (end, start)


def _host_cells(host: HostActivity, n: int, span: float, bucket_s: float, colour_by: ColourBy) -> list[_Cell]:
    cell_s = span / n
    busy = _bucket_cells(host.get("busy") or [], bucket_s, span, n, "mean")
    segments = [s for s in (host.get("segments") or []) if isinstance(s, Mapping)]
    cover: list[dict[int, float]] = [{} for _ in range(n)]
    for idx, seg in enumerate(segments):
        times = _segment_span(seg)
        if times is None:
            continue
        start, end = min(times[0], span), times[1]
        if end >= span:
            continue
        first = max(0, min(n - 1, math.floor(n - start * n / span)))
        last = max(first, min(n - 1, math.ceil(n - end * n / span) - 1))
        for i in range(first, last + 1):
            hi = span * (n - i) / n
            lo = span * (n - 1 - i) / n
            overlap = min(hi, start) - max(lo, end)
            # an instant attempt (a cache hit) still marks its cell
            cover[i][idx] = cover[i].get(idx, 0.0) + max(overlap, 1e-9)
    dominant: list[int | None] = []
    for i in range(n):
        if cover[i]:
            best, amount = max(cover[i].items(), key=lambda kv: kv[1])
            dominant.append(best if amount >= 0.5 * cell_s else None)
        else:
            dominant.append(None)
    cells: list[_Cell] = []
    for i in range(n):
        idx = dominant[i]
        if idx is not None:
            seg = segments[idx]
            state = str(seg.get("state", ""))
            key = state if colour_by == "state" else str(seg.get("dag_id", ""))
            ends_here = i == n - 1 or dominant[i + 1] != idx
            cells.append(_Cell(look(state).symbol if ends_here else RUN_GLYPH, key, state))
            continue
        covered = sum(cover[i].values())
        fraction = max(busy[i] or 0.0, min(1.0, covered / cell_s))
        if not cover[i]:
            cells.append(_Cell(shade_char(fraction), None, None))
            continue
        weights: dict[tuple[str, str], float] = {}
        for seg_idx, amount in cover[i].items():
            seg = segments[seg_idx]
            state = str(seg.get("state", ""))
            key = state if colour_by == "state" else str(seg.get("dag_id", ""))
            weights[(key, state)] = weights.get((key, state), 0.0) + amount
        (key, state), _ = max(weights.items(), key=lambda kv: kv[1])
        cells.append(_Cell(shade_char(fraction), key, state))
    return cells


def _cell_style(cell: _Cell, colour_by: ColourBy) -> Style:
    if cell.key is None:
        return Style(color=IDLE_GREY)
    if colour_by == "dag":
        return Style(color=dag_hue(cell.key), bold=cell.char not in (RUN_GLYPH, *"░▒▓"))
    found = look(cell.key)
    return Style(color=found.colour, bold=found.bold)


def _styled_run(cells: Sequence[_Cell], colour_by: ColourBy) -> Text:
    """The cells as one Text, consecutive cells of one style in one span (fast for 200 cells × 50 rows)."""
    text = Text(no_wrap=True, end="")
    run: list[str] = []
    run_style: Style | None = None
    for cell in cells:
        style = _cell_style(cell, colour_by)
        if style != run_style and run:
            text.append("".join(run), run_style)
            run = []
        run_style = style
        run.append(cell.char)
    if run:
        text.append("".join(run), run_style)
    return text


def _mean_busy(host: HostActivity, bucket_s: float, span: float) -> float:
    """The host's mean busy fraction over the last `span` seconds (what it is sorted and labelled by)."""
    busy = host.get("busy") or []
    if not busy or bucket_s <= 0:
        return 0.0
    take = max(1, min(len(busy), math.ceil(span / bucket_s)))
    recent = [_clean(v) for v in busy[-take:]]
    return min(1.0, sum(recent) / len(recent))


def _axis(label_w: int, n: int, span: float) -> Text:
    chars = [" "] * n
    left, right = ago_text(span), "now"

    def place(at: int, word: str) -> None:
        for k, ch in enumerate(word):
            if 0 <= at + k < n:
                chars[at + k] = ch

    if n >= len(left) + len(right) + 1:
        place(0, left)
        place(n - len(right), right)
        mid = ago_text(span / 2)
        at = n // 2 - len(mid) // 2
        if at > len(left) + 1 and at + len(mid) < n - len(right) - 1:
            place(at, mid)
    elif n >= len(right):
        place(n - len(right), right)
    return Text(" " * label_w + " " + "".join(chars), style=DIM, no_wrap=True, end="")


def _legend(pieces: list[Text], width: int) -> Text:
    """Legend pieces joined by two spaces, dropping the ones that do not fit (never a cut word)."""
    line = Text(no_wrap=True, end="")
    for piece in pieces:
        extra = len(piece) + (2 if len(line) else 0)
        if len(line) + extra > width:
            break
        if len(line):
            line.append("  ")
        line.append_text(piece)
    return line


def stream_lines(
    view: ActivityView,
    width: int,
    *,
    hosts: Sequence[str] | None = None,
    span_s: float = 60.0,
    colour_by: ColourBy = "state",
    max_lines: int | None = None,
) -> list[Text]:
    """The task stream of `view` in `width` cells and at most `max_lines` lines.

    Lines: the cluster's finished attempts per second as a sparkline on the same time axis, one row per
    host (in the order of `hosts`, the rest after them by id; when they do not all fit, the busiest that
    do and `+K more hosts`), the time axis, a legend. `span_s` may exceed the view's window: cells older
    than the window are blank.
    """
    if width <= 0 or (max_lines is not None and max_lines <= 0):
        return []
    span = _clean(span_s) or 60.0
    bucket_s = _clean(view.get("bucket_s", 1.0))
    all_hosts: Mapping[str, HostActivity] = view.get("hosts") or {}
    label_w = label_width(width)
    n = max(1, width - label_w - 1)
    name_w = label_w - 5
    sep = Text("│", style=DIM, end="")

    order = [h for h in (hosts or []) if h in all_hosts]
    known = set(order)
    order += sorted(h for h in all_hosts if h not in known)

    room = max_lines if max_lines is not None else len(order) + 4
    with_axis, with_rate, with_legend = room >= 2, room >= 3, room >= 4
    host_room = max(1, room - with_axis - with_rate - with_legend)
    busy_of = {h: _mean_busy(all_hosts[h], bucket_s, span) for h in order}
    more = 0
    if len(order) > host_room:
        keep_n = host_room - 1 if host_room > 1 else 1
        busiest = set(sorted(order, key=lambda h: (-busy_of[h], h))[:keep_n])
        more = len(order) - keep_n
        order = [h for h in order if h in busiest]

    lines: list[Text] = []
    if with_rate:
        rates = _bucket_cells(
            [_clean(v) / bucket_s if bucket_s else 0.0 for v in (view.get("throughput") or [])],
            bucket_s,
            span,
            n,
            "max",
        )
        top = max((r for r in rates if r is not None), default=0.0)
        label = fit("done/s", name_w) + " " + compact_number(_clean(view.get("tasks_per_s", 0.0))).rjust(4)
        line = Text(label, style="bold", no_wrap=True, end="")
        line.append_text(sep)
        line.append("".join(level_char(r or 0.0, top) for r in rates), Style(color="#3b8eea"))
        lines.append(line)
    else:
        top = 0.0

    shown_keys: dict[str, float] = {}
    if not order:
        lines.append(Text(fit("", label_w) + " no hosts registered", style=DIM, no_wrap=True, end=""))
    for host_id in order:
        cells = _host_cells(all_hosts[host_id], n, span, bucket_s, colour_by)
        for cell in cells:
            if cell.key is not None:
                shown_keys[cell.key] = shown_keys.get(cell.key, 0.0) + 1
            if colour_by == "dag" and cell.state is not None:
                shown_keys.setdefault("\0" + cell.state, 0.0)
        line = Text(fit(host_id, name_w) + " " + f"{round(busy_of[host_id] * 100):>3}%", no_wrap=True, end="")
        line.append_text(sep)
        line.append_text(_styled_run(cells, colour_by))
        lines.append(line)
    if more:
        lines.append(Text(cut(f"+{more} more hosts (less busy)", width), style=DIM, no_wrap=True, end=""))
    if with_axis:
        lines.append(_axis(label_w, n, span))
    if with_legend:
        lines.append(_legend(_legend_pieces(shown_keys, colour_by, top), width))
    return [line_cut(line, width) for line in lines]


def _legend_pieces(shown: Mapping[str, float], colour_by: ColourBy, top: float) -> list[Text]:
    pieces: list[Text] = []
    if top > 0:
        pieces.append(Text(f"█={rate_text(top)}/s", style=Style(color="#3b8eea"), end=""))
    if colour_by == "state":
        for state, found in STATE_LOOKS.items():
            if state in shown:
                pieces.append(Text(f"{found.symbol} {found.word}", style=found.style, end=""))
        for state in sorted(s for s in shown if s not in STATE_LOOKS):
            pieces.append(Text(f"{look(state).symbol} {cut(state, 16)}", end=""))
    else:
        for dag_id, _ in sorted(((k, v) for k, v in shown.items() if not k.startswith("\0")), key=lambda kv: -kv[1]):
            pieces.append(Text(f"■ {cut(dag_id, 16)}", style=Style(color=dag_hue(dag_id)), end=""))
        for state in sorted(k[1:] for k in shown if k.startswith("\0")):
            pieces.append(Text(f"{look(state).symbol} {cut(look(state).word, 16)}", style=DIM, end=""))
    pieces.append(Text(f"{RUN_GLYPH} runs  ░▒▓ busy", style=DIM, end=""))
    return pieces


def line_cut(line: Text, width: int) -> Text:
    """A line never wider than `width` cells (Rich crops by cells, so wide characters are safe)."""
    if line.cell_len > width:
        line = line.copy()
        line.truncate(width, overflow="ellipsis")
    return line
