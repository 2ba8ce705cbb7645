"""How every state looks, everywhere in the TUI: one symbol and one colour per task, DAG and host state.

One table, so a failed task reads the same in the task table, the DAG list, the task stream and the
DAG structure view. Each state has a symbol as well as a colour: the monitor must be legible without
colour (a monochrome terminal, `NO_COLOR`, colour-blind eyes). The colours are mid-luminance so they
read on both the dark and the light theme (checked on both themes' surfaces), and no two states that
sit side by side share one. Symbols are one cell wide in every terminal font we tried (no emoji, no
East Asian wide characters).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text


@dataclass(frozen=True, slots=True)
class StateLook:
    """A state's symbol, colour and the word shown beside it."""

    symbol: str
    colour: str
    word: str
    bold: bool = False

    @property
    def style(self) -> Style:
        return Style(color=self.colour, bold=self.bold)


STATE_LOOKS: dict[str, StateLook] = {
    # tasks (and DAGs: running / succeeded / failed / cancelled)
    "pending": StateLook("·", "#8a8f98", "pending"),
    "ready": StateLook("○", "#c8a000", "ready"),
    "running": StateLook("●", "#3b8eea", "running", bold=True),
    "retrying": StateLook("↻", "#d98e04", "retrying"),
    "succeeded": StateLook("✓", "#2ea043", "succeeded"),
    "cached": StateLook("≡", "#1aa3a3", "cached"),
    "verified": StateLook("✔", "#2ea043", "verified", bold=True),
    "failed": StateLook("✗", "#e5534b", "failed", bold=True),
    "upstream_failed": StateLook("⊘", "#db6d28", "upstream_failed"),
    "cancelled": StateLook("–", "#8a8f98", "cancelled"),
    # attempts in the task stream that ended without a result of their own
    "aborted": StateLook("–", "#8a8f98", "aborted"),
    "lost": StateLook("!", "#db6d28", "lost"),
    # hosts
    "idle": StateLook("○", "#2ea043", "idle"),
    "busy": StateLook("●", "#3b8eea", "busy"),
    "paused": StateLook("‖", "#c8a000", "paused"),
    "silent": StateLook("?", "#db6d28", "silent"),
    "quarantined": StateLook("⚠", "#e5534b", "quarantined", bold=True),
}
UNKNOWN = StateLook("?", "#8a8f98", "?")

FINISHED_OK = frozenset({"succeeded", "cached", "verified"})
"""States that count as done work in progress bars (a cancelled or failed task is finished, not done)."""


def look(state: str) -> StateLook:
    """The look of ``state``; an unknown state (a newer controller) gets a neutral one with its own word."""
    found = STATE_LOOKS.get(state)
    return found if found is not None else StateLook(UNKNOWN.symbol, UNKNOWN.colour, state)


def state_text(state: str, *, word: bool = True, label: str | None = None) -> Text:
    """``✓ succeeded`` in the state's colour (``word=False``: the symbol alone, for narrow columns)."""
    found = look(state)
    shown = found.symbol if not word else f"{found.symbol} {label if label is not None else found.word}"
    return Text(shown, style=found.style, no_wrap=True, end="")


def task_look_state(task_state: str, *, cached: bool = False, verify: int = 1) -> str:
    """The state a task is shown in: a succeeded task served from the cache shows `cached`, one agreed by
    several devices `verified`."""
    if task_state == "succeeded" and cached:
        return "cached"
    if task_state == "succeeded" and verify > 1:
        return "verified"
    return task_state
