"""The task stream and the cluster throughput sparkline as Textual widgets.

They hold the latest `activity` reply and draw it with `stream_render` for their current size on every
refresh, so a resize re-lays them out and an update is one `refresh()`. The monitor owns the I/O: it asks
`ControllerClient.activity(window_s=...)` and calls `update_activity`; the widgets never fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from .sparks import _clean, cut, rate_text, sparkline
from .stream_render import SPANS, ColourBy, ago_text, stream_lines

if TYPE_CHECKING:
    from ..controller.views import ActivityView

log = logging.getLogger(__name__)


def _drawing_failed(what: str, exc: Exception, width: int) -> Text:
    """A reply the renderer cannot read (a controller of another version) is one line, never a traceback."""
    log.warning("cannot draw the %s", what, exc_info=exc)
    return Text(cut(f"cannot draw the {what}: {type(exc).__name__}: {exc}", max(1, width)), style="red")


class TaskStreamView(Widget, can_focus=True):
    """Per host, a timeline of its attempts over the last minute (or five), coloured by state or by DAG."""

    DEFAULT_CSS = """
    TaskStreamView { height: 1fr; min-height: 4; }
    TaskStreamView:focus { background: $boost; }
    """

    BINDINGS = [
        Binding("z", "zoom", "Span 1m/5m"),
        Binding("b", "colour_by", "Colour state/DAG"),
    ]

    span_s: reactive[float] = reactive(SPANS[0])
    """Seconds of history shown; the monitor should ask `activity(window_s=span_s)` (see `SpanChanged`)."""

    colour_by: reactive[ColourBy] = reactive[ColourBy]("state")

    class SpanChanged(Message):
        """The user zoomed: the monitor asks for a window of at least `span_s` from now on."""

        def __init__(self, span_s: float) -> None:
            super().__init__()
            self.span_s = span_s

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._view: ActivityView | None = None
        self._hosts: list[str] = []

    def update_activity(self, view: ActivityView | None, hosts: Sequence[str] | None = None) -> None:
        """Show `view` (None: nothing yet); `hosts` is the row order (e.g. the host table's), kept until given again."""
        self._view = view
        if hosts is not None:
            self._hosts = list(hosts)
        self.border_subtitle = f"last {ago_text(self.span_s)[1:]} · by {self.colour_by}"
        self.refresh()

    def render(self) -> RenderableType:
        width, height = self.content_size.width, self.content_size.height
        if self._view is None:
            return Text("no activity yet", style="dim")
        try:
            lines = stream_lines(
                self._view, width, hosts=self._hosts, span_s=self.span_s, colour_by=self.colour_by, max_lines=height
            )
        except Exception as exc:  # any malformed reply becomes one line
            return _drawing_failed("task stream", exc, width)
        return Text("\n", no_wrap=True).join(lines)

    def action_zoom(self) -> None:
        at = SPANS.index(self.span_s) if self.span_s in SPANS else -1
        self.span_s = SPANS[(at + 1) % len(SPANS)]
        self.post_message(self.SpanChanged(self.span_s))
        self.update_activity(self._view)

    def action_colour_by(self) -> None:
        self.colour_by = "dag" if self.colour_by == "state" else "state"
        self.update_activity(self._view)


class ThroughputSpark(Widget):
    """One line for the top bar: `▁▂▅█▇▅ 3,812 tasks/s`, the sparkline of finished attempts per second
    over the activity window (max per cell, so bursts show) and `tasks_per_s`, the cluster's one rate."""

    DEFAULT_CSS = """
    ThroughputSpark { height: 1; width: 1fr; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._view: ActivityView | None = None

    def update_activity(self, view: ActivityView | None) -> None:
        self._view = view
        self.refresh()

    def render(self) -> RenderableType:
        width = self.content_size.width
        if self._view is None:
            return Text(cut("– tasks/s", width), style="dim")
        try:
            label = f" {rate_text(_clean(self._view.get('tasks_per_s', 0.0)))} tasks/s"
            spark_w = max(0, min(60, width - len(label)))
            spark = sparkline(self._view.get("throughput") or [], spark_w, how="max")
        except Exception as exc:  # any malformed reply becomes one line
            return _drawing_failed("throughput", exc, width)
        line = Text(no_wrap=True, end="")
        line.append(spark, Style(color="#3b8eea"))
        line.append(cut(label if spark_w else label.lstrip(), width - spark_w), "bold")
        return line
