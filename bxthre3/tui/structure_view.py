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
from textual.reactive import reactive
from textual.widget import Widget

from .sparks import cut
from .structure_render import structure_lines

if TYPE_CHECKING:
    from ..controller.views import StructureView

log = logging.getLogger(__name__)


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

    def update_structure(self, view: StructureView | None) -> None:
        """Show `view` (None: no DAG selected)."""
        self._view = view
        self.refresh()

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
