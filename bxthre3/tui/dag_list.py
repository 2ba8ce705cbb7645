"""The monitor's DAG list: one item per DAG with its state, counts and a progress bar that tells the truth.

Progress is the share of tasks that *succeeded* (served from the cache included): a cancelled DAG with 3
of 10 tasks done shows 30 % and says `7 cancelled`, not 100 % because every task has "finished".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ListItem, ProgressBar

from ..client.outputs import terminal_safe
from .formatting import share_text
from .states import look, state_text

if TYPE_CHECKING:
    from ..controller.views import DagSummary

COUNT_ORDER = ("running", "ready", "retrying", "pending", "failed", "upstream_failed", "cancelled", "succeeded")
"""The order of a DAG's counts: what needs attention first."""


def succeeded_of(summary: DagSummary | Mapping[str, Any]) -> int:
    """Tasks that succeeded (cached ones are counted as succeeded by the controller)."""
    return int((summary.get("counts") or {}).get("succeeded", 0))


def counts_text(counts: Mapping[str, int]) -> Text:
    """Non-zero counts as symbol + number in each state's colour: ``● 2 ○ 5 ✗ 1 ✓ 12``."""
    text = Text(no_wrap=True, end="")
    for state in (*COUNT_ORDER, *(s for s in counts if s not in COUNT_ORDER)):
        n = int(counts.get(state, 0))
        if n:
            if text.plain:
                text.append(" ")
            found = look(state)
            text.append(f"{found.symbol}{n:,}", style=found.style)
    return text


def dag_label(dag_id: str, summary: DagSummary | Mapping[str, Any], *, pinned: bool = False) -> Text:
    """The first line: ``● hello_fanout d-0001 (pinned) · prio 2 · share 50%`` (the state as its symbol)."""
    label = Text.assemble(
        state_text(str(summary.get("state", "")), word=False),
        " ",
        (terminal_safe(str(summary.get("name", "")), keep=""), "bold"),
        (f" {dag_id}", "dim"),
        (" (pinned)" if pinned else "", "italic"),
        share_text(summary),
        no_wrap=True,
        end="",
    )
    label.overflow = "ellipsis"
    return label


def progress_label(summary: DagSummary | Mapping[str, Any]) -> Text:
    """The second line beside the bar: ``3/10 ✓3 –7`` — succeeded of all, then every non-zero count."""
    total = int(summary.get("total", 0))
    text = Text(f"{succeeded_of(summary):,}/{total:,} ", no_wrap=True, end="")
    text.append_text(counts_text(summary.get("counts") or {}))
    text.overflow = "ellipsis"
    return text


class DagItem(ListItem):
    """One DAG in the list: a label and a bar of the tasks that succeeded."""

    def __init__(self, dag_id: str) -> None:
        super().__init__(id=f"dag-{dag_id}")
        self.dag_id = dag_id
        self._pending: tuple[DagSummary, bool] | None = None
        """A summary that arrived before the children existed; applied on mount."""
        self._shown: tuple[DagSummary, bool] | None = None

    def compose(self) -> ComposeResult:
        yield Label("", classes="dag-label")
        with Horizontal(classes="dag-progress"):
            yield ProgressBar(show_eta=False, show_percentage=False, classes="dag-bar")
            yield Label("", classes="dag-counts")

    def on_mount(self) -> None:
        if self._pending is not None:
            self.call_after_refresh(self.update, *self._pending)

    def update(self, summary: DagSummary, pinned: bool = False) -> None:
        if not self.query(".dag-counts"):
            self._pending = (summary, pinned)  # a second snapshot can arrive before compose has run
            return
        self._pending = None
        if self._shown == (summary, pinned):
            return  # an unchanged DAG (most of them, at each snapshot) costs no repaint
        self._shown = (summary, pinned)
        state = summary.get("state", "")
        for name in ("succeeded", "failed", "cancelled", "running"):
            self.set_class(state == name, f"-{name}")
        # Fixed-size labels (app.tcss): no layout pass of the whole screen for each DAG at each snapshot.
        self.query_one(".dag-label", Label).update(dag_label(self.dag_id, summary, pinned=pinned), layout=False)
        self.query_one(".dag-counts", Label).update(progress_label(summary), layout=False)
        self.query_one(".dag-bar", ProgressBar).update(
            total=max(1, int(summary.get("total", 0))), progress=succeeded_of(summary)
        )
