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
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from .sparks import _clean, compact_number, cut, fit, level_char, rate_text, shade_char
from .states import STATE_LOOKS, look

if TYPE_CHECKING:
    from ..controller.views import ActivityView, HostActivity

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


def natural_key(node_id: str) -> list[tuple[int, int | str]]:
    """`host-2` before `host-10`: digits compare as numbers."""
    return [(0, int(part)) if part.isdecimal() else (1, part) for part in re.split(r"(\d+)", node_id) if part]


def host_labels(node_ids: Sequence[str], width: int) -> dict[str, str]:
    """Each id fitted to `width` cells, cut in the middle (ids share heads: `lab-box-1`, `lab-box-12`);
    if that makes two rows read the same, cut at the end, then at the start, whichever keeps them apart."""
    cuts = (
        lambda t: fit(t, width, middle=True),
        lambda t: fit(t, width),
        lambda t: fit("…" + t[-width + 1 :], width) if cell_len(t) > width else fit(t, width),
    )
    labels: dict[str, str] = {}
    for cutter in cuts:
        labels = {node_id: cutter(node_id) for node_id in node_ids}
        if len(set(labels.values())) == len(labels):
            break
    return {node_id: cuts[0](node_id) for node_id in node_ids} if len(set(labels.values())) < len(labels) else labels


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


def _cell_edges(span: float, n: int) -> list[float]:
    """Seconds ago of each cell's edges: cell `i` covers `[edges[i + 1], edges[i]]`, cell `n - 1` ends now."""
    return [span * (n - i) / n for i in range(n + 1)]


def _bucket_cells(values: Sequence[float], bucket_s: float, span: float, n: int, how: str) -> list[float | None]:
    """Buckets (oldest first, the last one ending now) mapped onto `n` cells of the last `span` seconds.

    `mean` weights each bucket by how much of the cell it covers; `max` keeps a burst. None: no bucket
    reaches that cell (older than the window).
    """
    b = len(values)
    if b == 0 or bucket_s <= 0 or n <= 0:
        return [None] * max(0, n)
    clean = [_clean(v) for v in values]
    window = b * bucket_s
    edges = _cell_edges(span, n)
    out: list[float | None] = []
    for i in range(n):
        hi, lo = min(edges[i], window), edges[i + 1]
        if lo >= window - 1e-12:
            out.append(None)
            continue
        # bucket `b - 1 - k` covers [k * bucket_s, (k + 1) * bucket_s] seconds ago
        k_lo = int(lo / bucket_s)
        k_hi = min(b - 1, max(k_lo, math.ceil(hi / bucket_s - 1e-9) - 1))
        if k_lo == k_hi:  # the common case: the cell lies in one bucket
            out.append(clean[b - 1 - k_lo])
            continue
        total = weight = best = 0.0
        for k in range(k_lo, k_hi + 1):
            overlap = min(hi, (k + 1) * bucket_s) - max(lo, k * bucket_s)
            if overlap > 1e-12:
                value = clean[b - 1 - k]
                total += value * overlap
                weight += overlap
                best = value if value > best else best
        out.append(None if weight == 0 else best if how == "max" else total / weight)
    return out


def _segment_times(seg: object, span: float) -> tuple[float, float] | None:
    """(start, end) in seconds ago, clipped to the span, start >= end >= 0; None when unusable or outside."""
    if not isinstance(seg, Mapping):
        return None
    start = _clean(seg.get("start_ago_s", 0.0))
    end_raw = seg.get("end_ago_s")
    end = 0.0 if end_raw is None else _clean(end_raw)
    if start < end:
        start, end = end, start
    if end >= span:
        return None
    return min(start, span), end


def _host_cells(host: HostActivity, n: int, span: float, bucket_s: float, colour_by: ColourBy) -> list[_Cell]:
    """The host's `n` timeline cells (see the module docstring for what each shows)."""
    cell_s = span / n
    edges = _cell_edges(span, n)
    busy = _bucket_cells(host.get("busy") or [], bucket_s, span, n, "mean")
    segments = host.get("segments") or []
    cover: list[list[tuple[int, float]] | None] = [None] * n
    for idx, seg in enumerate(segments):
        times = _segment_times(seg, span)
        if times is None:
            continue
        start, end = times
        first = max(0, min(n - 1, math.floor(n - start / cell_s)))
        last = max(first, min(n - 1, math.ceil(n - end / cell_s) - 1))
        for i in range(first, last + 1):
            # an instant attempt (a cache hit) still marks its cell
            overlap = max(min(edges[i], start) - max(edges[i + 1], end), 1e-9)
            here = cover[i]
            if here is None:
                cover[i] = [(idx, overlap)]
            else:
                here.append((idx, overlap))
    half = 0.5 * cell_s
    dominant: list[int | None] = [None] * n
    for i in range(n):
        here = cover[i]
        if here:
            best, amount = max(here, key=_second)
            if amount >= half:
                dominant[i] = best
    cells: list[_Cell] = []
    for i in range(n):
        dom = dominant[i]
        if dom is not None:
            seg = segments[dom]
            state = str(seg.get("state", ""))
            key = state if colour_by == "state" else str(seg.get("dag_id", ""))
            ends_here = i == n - 1 or dominant[i + 1] != dom
            cells.append(_Cell(look(state).symbol if ends_here else RUN_GLYPH, key, state))
            continue
        here = cover[i]
        if not here:
            cells.append(_Cell(shade_char(busy[i] or 0.0), None, None))
            continue
        covered = sum(amount for _, amount in here)
        fraction = max(busy[i] or 0.0, min(1.0, covered / cell_s))
        weights: dict[tuple[str, str], float] = {}
        for seg_idx, amount in here:
            seg = segments[seg_idx]
            state = str(seg.get("state", ""))
            key = state if colour_by == "state" else str(seg.get("dag_id", ""))
            weights[(key, state)] = weights.get((key, state), 0.0) + amount
        (key, state), _ = max(weights.items(), key=_second)
        cells.append(_Cell(shade_char(fraction), key, state))
    return cells


def _second(pair: tuple[Any, float]) -> float:
    return pair[1]


@lru_cache(maxsize=256)
def _cell_style(key: str | None, colour_by: ColourBy, plain_glyph: bool) -> Style:
    """Cached: a 200 x 50 stream has 10,000 cells and only a handful of distinct styles."""
    if key is None:
        return Style(color=IDLE_GREY)
    if colour_by == "dag":
        return Style(color=dag_hue(key), bold=not plain_glyph)
    found = look(key)
    return Style(color=found.colour, bold=found.bold)


_PLAIN_GLYPHS = frozenset((RUN_GLYPH, " ", "░", "▒", "▓"))


def _styled_run(cells: Sequence[_Cell], colour_by: ColourBy) -> Text:
    """The cells as one Text, consecutive cells of one style in one span (fast for 200 cells × 50 rows)."""
    text = Text(no_wrap=True, end="")
    run: list[str] = []
    run_style: Style | None = None
    for cell in cells:
        style = _cell_style(cell.key, colour_by, cell.char in _PLAIN_GLYPHS)
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
    order += sorted((h for h in all_hosts if h not in known), key=natural_key)

    room = max_lines if max_lines is not None else len(order) + 4
    with_axis, with_rate, with_legend = room >= 2, room >= 3, room >= 4
    host_room = max(1, room - with_axis - with_rate - with_legend)
    busy_of = {h: _mean_busy(all_hosts[h], bucket_s, span) for h in order}
    more = 0
    if len(order) > host_room:
        keep_n = host_room - 1 if host_room > 1 else 1
        busiest = set(sorted(order, key=lambda h: (-busy_of[h], natural_key(h)))[:keep_n])
        more = len(order) - keep_n
        order = [h for h in order if h in busiest]

    labels = host_labels(order, name_w)
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
        label = labels[host_id] + f" {round(busy_of[host_id] * 100):>3}%"
        line = Text(label, no_wrap=True, end="")
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
