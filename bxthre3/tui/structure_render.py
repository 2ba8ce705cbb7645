"""A DAG's structure as lines of text: its groups stage by stage, each with a stacked bar of task states.

Pure (no Textual); `structure_view.DagStructureView` draws these lines for its current size. One line per
group (the controller already folds `tile[r=0,c=1]`… into `tile`, so 100,000 tasks in 5 groups are 5
lines), and under a group with upstream groups a dim `← from, …` line. Nothing wraps: when the width
shrinks, columns give way in a fixed order (the word `stage`, then gaps, the total, the bar, then counts
of the least urgent states), and when lines run out, the edge lines go before any group does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from .sparks import _clean, cut, fit
from .states import look
from .stream_render import line_cut

if TYPE_CHECKING:
    from ..controller.views import GroupView, StructureView

DISPLAY_ORDER = (
    "succeeded", "verified", "cached", "running", "retrying", "ready", "pending",
    "failed", "upstream_failed", "cancelled", "lost", "aborted",
)  # fmt: skip
"""Left to right, in the bar and in the counts: done work first, then work under way, then what went wrong."""

KEEP_ORDER = (
    "failed", "upstream_failed", "running", "retrying", "succeeded", "verified", "cached",
    "ready", "pending", "cancelled", "lost", "aborted",
)  # fmt: skip
"""Which counts stay when a narrow screen cannot show them all: what needs someone's eyes first."""

FILL = {
    "succeeded": "█", "verified": "█", "cached": "█",
    "running": "▓", "retrying": "▓",
    "ready": "░", "pending": "░",
}  # fmt: skip
"""Bar fill per state, so the bar reads without colour too: done █, under way ▓, waiting ░, ended badly ▒."""

DIM = Style(dim=True)
MAX_BAR = 40
MAX_NAME = 24


def _order_key(order: Sequence[str]) -> dict[str, int]:
    return {state: i for i, state in enumerate(order)}


_DISPLAY = _order_key(DISPLAY_ORDER)
_KEEP = _order_key(KEEP_ORDER)


def _counts(group: GroupView) -> list[tuple[str, int]]:
    """The group's non-zero counts in display order (unknown states last, by name)."""
    raw = group.get("counts") or {}
    found = [(str(s), int(_clean(n))) for s, n in raw.items() if int(_clean(n)) > 0]
    return sorted(found, key=lambda sn: (_DISPLAY.get(sn[0], len(_DISPLAY)), sn[0]))


def stack_cells(counts: Sequence[tuple[str, int]], total: int, width: int) -> list[tuple[str, int]]:
    """Cells per state of a `width`-cell bar proportional to `total`; every state present gets >= 1 cell.

    One failed task among 100,000 must still show. Largest remainders share what rounding leaves, and
    what the counts do not cover of `total` stays blank.
    """
    present = [(s, n) for s, n in counts if n > 0]
    denom = max(total, sum(n for _, n in present))
    if width <= 0 or denom <= 0 or not present:
        return []
    if len(present) > width:  # a tiny bar: the most urgent states only, still in display order
        keep = set(sorted((s for s, _ in present), key=lambda s: _KEEP.get(s, len(_KEEP)))[:width])
        present = [(s, n) for s, n in present if s in keep]
    target = min(width, round(sum(n for _, n in present) * width / denom))
    target = max(target, len(present))
    exact = [n * width / denom for _, n in present]
    cells = [max(1, int(x)) for x in exact]
    while sum(cells) > target:
        shrinkable = [k for k in range(len(cells)) if cells[k] > 1]
        if not shrinkable:
            break
        cells[max(shrinkable, key=lambda k: (cells[k] - exact[k], cells[k]))] -= 1
    while sum(cells) < target:
        i = max(range(len(cells)), key=lambda k: exact[k] - cells[k])
        cells[i] += 1
    return [(s, c) for (s, _), c in zip(present, cells, strict=True)]


def stacked_bar(counts: Sequence[tuple[str, int]], total: int, width: int) -> Text:
    """The bar of `stack_cells`, each state in its colour and fill character, padded with `·` to `width`."""
    bar = Text(no_wrap=True, end="")
    for state, n in stack_cells(counts, total, width):
        bar.append(FILL.get(state, "▒") * n, look(state).style)
    if len(bar) < width:
        bar.append("·" * (width - len(bar)), DIM)
    return bar


def counts_text(counts: Sequence[tuple[str, int]], width: int | None = None) -> Text:
    """`✓ 900 ● 24 ○ 100` in display order; in `width` cells the most urgent counts are kept and `…` marks
    the ones left out."""
    pieces = [(s, f"{look(s).symbol} {n:,}") for s, n in counts]
    kept = pieces
    if width is not None:
        by_urgency = sorted(pieces, key=lambda p: _KEEP.get(p[0], len(_KEEP)))
        chosen: set[str] = set()
        used = 0
        for state, piece in by_urgency:
            extra = cell_len(piece) + (1 if chosen else 0)
            dropped_after = len(pieces) - len(chosen) - 1
            reserve = 2 if dropped_after else 0  # room for " …"
            if used + extra + reserve > width:
                break
            chosen.add(state)
            used += extra
        kept = [p for p in pieces if p[0] in chosen]
    text = Text(no_wrap=True, end="")
    for state, piece in kept:
        if len(text):
            text.append(" ")
        text.append(piece, look(state).style)
    if len(kept) < len(pieces):
        text.append(" …" if len(text) else "…", DIM)
    return text


@dataclass(frozen=True, slots=True)
class _Layout:
    stage_w: int
    stage_word: bool
    name_w: int
    total_w: int
    bar_w: int
    counts_w: int
    gap: int


def _layout(width: int, max_stage: int, name_w: int, total_w: int, counts_w: int) -> _Layout:
    """The widest arrangement that fits: each step gives up the next-least useful thing."""
    full_stage = len(f"stage {max_stage}")
    short_stage = len(str(max_stage))
    steps = (
        (full_stage, True, 2, total_w, 8),
        (short_stage, False, 2, total_w, 8),
        (short_stage, False, 1, total_w, 6),
        (short_stage, False, 1, 0, 6),
        (short_stage, False, 1, 0, 3),
    )
    for stage_w, word, gap, tot_w, min_bar in steps:
        fixed = stage_w + gap + name_w + (gap + tot_w if tot_w else 0) + gap + gap + counts_w
        bar = width - fixed
        if bar >= min_bar:
            return _Layout(stage_w, word, name_w, tot_w, min(bar, MAX_BAR), counts_w, gap)
    # no bar: the name and as many counts as fit
    rest = width - short_stage - 1
    name = max(1, min(name_w, rest // 2))
    return _Layout(short_stage, False, name, 0, 0, max(0, rest - name - 1), 1)


def _from_line(indent: int, names: Sequence[str], width: int) -> Text:
    """`← a, b, c +47` cut to `width`."""
    head = " " * indent + "← "
    room = width - cell_len(head)
    shown: list[str] = []
    for i, name in enumerate(names):
        tail = f" +{len(names) - i - 1}" if i < len(names) - 1 else ""
        candidate = ", ".join([*shown, name])
        if cell_len(candidate + tail) > room:
            break
        shown.append(name)
    text = ", ".join(shown)
    if len(shown) < len(names):
        text += f"{' ' if shown else ''}+{len(names) - len(shown)}"
    return Text(cut(head + text, width), style=DIM, no_wrap=True, end="")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def structure_lines(view: StructureView, width: int, *, max_lines: int | None = None, edges: bool = True) -> list[Text]:
    """The structure of `view` in `width` cells and at most `max_lines` lines (header, groups and, with
    `edges`, a `← from` line under each group with upstream groups)."""
    if width <= 0 or (max_lines is not None and max_lines <= 0):
        return []
    groups: list[GroupView] = [g for g in (view.get("groups") or []) if isinstance(g, Mapping)]
    total_tasks = sum(int(_clean(g.get("total", 0))) for g in groups)
    stages = int(_clean(view.get("stages", 0)))
    header = Text(no_wrap=True, end="")
    header.append(cut(str(view.get("name", "")) or "(unnamed)", 40), "bold")
    header.append(f" · {_plural(total_tasks, 'task')} · {_plural(len(groups), 'group')} · {_plural(stages, 'stage')}")
    header.append(f"  {cut(str(view.get('dag_id', '')), 16)}", DIM)
    lines = [line_cut(header, width)]
    if not groups:
        lines.append(Text("(no tasks)", style=DIM, end=""))
        return lines[: max_lines or None]

    upstream: dict[int, list[int]] = {}
    for edge in view.get("edges") or []:
        try:
            src, dst = int(edge[0]), int(edge[1])
        except (TypeError, ValueError, IndexError):
            continue
        if 0 <= src < len(groups) and 0 <= dst < len(groups) and src not in upstream.get(dst, []):
            upstream.setdefault(dst, []).append(src)

    # Only the groups that can be shown are measured: a DAG of 100,000 one-task groups costs its screenful.
    room = (max_lines if max_lines is not None else len(groups) * 2 + 1) - 1
    shown_n = len(groups) if len(groups) <= room else max(0, room - 1)
    shown = groups[:shown_n]
    names = [cut(str(g.get("name", "")), MAX_NAME) for g in shown]
    counts = [_counts(g) for g in shown]
    totals = [int(_clean(g.get("total", 0))) for g in shown]
    stages_of = [int(_clean(g.get("stage", 0))) for g in shown]
    layout = _layout(
        width,
        max(stages_of, default=0),
        max((cell_len(n) for n in names), default=1),
        max((len(f"{t:,}") for t in totals), default=1),
        max((counts_text(c).cell_len for c in counts), default=0),
    )
    edge_lines = sum(1 for i in range(shown_n) if upstream.get(i))
    with_edges = edges and shown_n + edge_lines <= room
    gap = " " * layout.gap
    previous_stage: int | None = None
    for i in range(shown_n):
        stage = stages_of[i]
        label = (f"stage {stage}" if layout.stage_word else str(stage)) if stage != previous_stage else ""
        previous_stage = stage
        row = Text(no_wrap=True, end="")
        row.append(fit(label, layout.stage_w) + gap, DIM)
        row.append(fit(names[i], layout.name_w), "bold")
        if layout.total_w:
            row.append(gap + f"{totals[i]:,}".rjust(layout.total_w))
        if layout.bar_w:
            row.append(gap)
            row.append_text(stacked_bar(counts[i], totals[i], layout.bar_w))
        row.append(gap)
        row.append_text(counts_text(counts[i], max(0, width - row.cell_len)))
        lines.append(line_cut(row, width))
        if with_edges and upstream.get(i):
            from_names = [cut(str(groups[j].get("name", "")), MAX_NAME) for j in upstream[i]]
            lines.append(_from_line(layout.stage_w + layout.gap, from_names, width))
    if shown_n < len(groups):
        more = len(groups) - shown_n
        lines.append(Text(cut(f"+{more:,} more group{'s' if more != 1 else ''}", width), style=DIM, end=""))
    return lines
