"""A DAG's structure (groups by stage, a stacked bar of task states each) as a Textual widget.

It holds the latest `structure` reply of the selected DAG and draws it with `structure_render` for its
current size on every refresh. The monitor asks `ControllerClient.structure(dag_id)` and calls
`update_structure`; the widget never fetches.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from .sparks import cut
from .structure_render import structure_lines

if TYPE_CHECKING:
    from ..controller.views import StructureView

log = logging.getLogger(__name__)


MAX_CONTENT_LINES = 200
"""The most lines the view asks room for; a pane's max-height caps it further."""


class DagStructureView(Widget, can_focus=True):
    """The selected DAG's groups, stage by stage: name, task count, stacked state bar, counts, upstreams."""

    DEFAULT_CSS = """
    DagStructureView { height: 1fr; min-height: 3; }
    DagStructureView:focus { background: $boost; }
    """

    BINDINGS = [Binding("e", "toggle_edges", "Upstreams on/off")]

    show_edges: reactive[bool] = reactive(True)
    """Whether a `← from` line follows each group with upstream groups."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._view: StructureView | None = None
        self._lines = -1
        """Lines drawn at the last update: the layout changes only when this does."""

    def update_structure(self, view: StructureView | None) -> None:
        """Show `view` (None: no DAG selected); a layout pass only when its number of lines changed."""
        if view == self._view and view is not None:
            return  # the same counts: no repaint
        self._view = view
        lines = self._line_count(self.content_size.width) if self.content_size.width else -1
        self.refresh(layout=lines != self._lines)
        self._lines = lines

    def _line_count(self, width: int) -> int:
        if self._view is None or width <= 0:
            return 1
        try:
            return max(1, len(structure_lines(self._view, width, max_lines=MAX_CONTENT_LINES, edges=self.show_edges)))
        except Exception:
            return 1

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """As tall as the DAG's groups need (with `height: auto`), so a 3-task DAG leaves room to others."""
        return self._line_count(width)

    def render(self) -> RenderableType:
        width, height = self.content_size.width, self.content_size.height
        if self._view is None:
            return Text("select a DAG", style="dim")
        try:
            lines = structure_lines(self._view, width, max_lines=height, edges=self.show_edges)
        except Exception as exc:  # any malformed reply becomes one line
            log.warning("cannot draw the DAG structure", exc_info=exc)
            return Text(cut(f"cannot draw the DAG structure: {type(exc).__name__}: {exc}", max(1, width)), style="red")
        return Text("\n", no_wrap=True).join(lines)

    def action_toggle_edges(self) -> None:
        self.show_edges = not self.show_edges
