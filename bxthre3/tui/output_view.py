"""The monitor's output pane as a widget: one task's stdout or named outputs as a picture, text or hex.

`OutputView.show(task)` takes a `TaskView` fetched with its output (and, for named `/out` files to be
previewed, ``with_files=True``); ``[`` and ``]`` cycle through stdout and the named files. The content is
laid out by `output_render.render_task` for the widget's current size, again on every resize, so a
picture always fits the pane and hex rows never wrap. Decoded pictures are kept per task (decoding a
large PNG takes a moment in pure Python; resizing only rescales the small decoded raster).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static

from ..client.outputs import terminal_safe
from .image_decode import ImageError, Raster, decode_image
from .output_render import DecodePending, Entry, Rendered, render_task

DECODE_INLINE_BYTES = 64 * 1024
"""Plain (ASCII) PNM pictures up to this size are decoded at once, larger ones in a thread."""

DECODE_TIME_LIMIT_S = 20.0
"""A picture that takes longer to decode shows its hex view and a one-line reason instead."""


class OutputView(Static, can_focus=True):
    """Shows one task's output; put it in a scrolling container (the monitor's ``#output-pane``)."""

    DEFAULT_CSS = """
    OutputView { width: 1fr; height: auto; }
    """

    BINDINGS = [
        Binding("right_square_bracket", "cycle(1)", "Next file"),
        Binding("left_square_bracket", "cycle(-1)", "Previous file"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__("(select a task)", id=id, classes=classes, markup=False)
        self.shown_task: Mapping[str, Any] | None = None
        self.selected: int | None = None
        """The entry chosen with [ ] (None: the default one: an image when there is one)."""
        self.entries: tuple[Entry, ...] = ()
        self.title = "Output"
        """The title of what is shown (every render also sets it as the parent's border title)."""
        self._shown = 0
        """Index of the entry on screen."""
        self.rendered: Rendered | None = None
        """The last layout (for tests and the caller: its entries, title, renderable)."""
        self._rasters: dict[int, tuple[bytes, Raster | ImageError | None]] = {}
        """Decoded pictures (or why not) of the task shown, by id() of their bytes (kept alive beside)."""
        self._decoding: set[int] = set()
        """id() of the bytes being decoded in a thread."""

    def show(self, task: Mapping[str, Any] | None, *, keep_selection: bool | None = None) -> None:
        """Show ``task`` (None: nothing selected). The chosen file is kept when it is the same task again
        (a newer state of it), unless ``keep_selection`` says otherwise."""
        before = self.shown_task
        same = task is not None and before is not None and task.get("task_id") == before.get("task_id")
        if not (same if keep_selection is None else keep_selection):
            self.selected = None
        self.shown_task = task
        self._rasters.clear()
        self._decoding.clear()
        self._render_now()

    def show_message(self, text: str, title: str = "Output") -> None:
        """A line instead of a task's output: "(loading the output…)", "(could not fetch the output: …)".
        ``title`` is markup (as border titles are); ``text`` is shown as written, controls escaped."""
        self.shown_task = None
        self.selected = None
        self.entries = ()
        self.rendered = None
        self._rasters.clear()
        self._decoding.clear()
        self.title = title
        if isinstance(self.parent, Widget):
            self.parent.border_title = title
        self.update(Text(terminal_safe(text), style="dim"))

    def action_cycle(self, step: int) -> None:
        if len(self.entries) < 2:
            return
        current = self.selected if self.selected is not None else self._shown
        self.selected = (current + step) % len(self.entries)
        self._render_now()

    def on_mount(self) -> None:
        self._render_now()

    def on_resize(self) -> None:
        self._render_now()

    def _decode(self, data: bytes) -> Raster | None:
        """A cached picture; a small one decoded now, a large one in a thread (`DecodePending` meanwhile)."""
        cached = self._rasters.get(id(data))
        if cached is None or cached[0] is not data:
            if not _decodes_quickly(data):
                if id(data) not in self._decoding:
                    self._decoding.add(id(data))
                    self.run_worker(lambda: self._decode_in_thread(data), thread=True, group="decode")
                raise DecodePending
            cached = (data, _decode_or_error(data))
            self._rasters[id(data)] = cached
        if isinstance(cached[1], ImageError):
            raise cached[1]
        return cached[1]

    def _decode_in_thread(self, data: bytes) -> None:
        result = _decode_or_error(data)
        self.app.call_from_thread(self._decoded, data, result)

    def _decoded(self, data: bytes, result: Raster | ImageError | None) -> None:
        if id(data) not in self._decoding:
            return  # another task is shown now
        self._decoding.discard(id(data))
        self._rasters[id(data)] = (data, result)
        self._render_now()

    def _pane_size(self) -> tuple[int, int]:
        """Cells for the content: the widget's width, the visible height of the scrolling parent."""
        width = self.content_region.width or self.size.width
        parent = self.parent
        height = getattr(parent, "scrollable_content_region", None)
        rows = height.height if height is not None and height.height else self.app.size.height // 3
        return max(8, width or 40), max(4, rows)

    def _render_now(self) -> None:
        if not self.is_mounted:
            return  # on_mount renders what was shown meanwhile
        width, height = self._pane_size()
        rendered = render_task(self.shown_task, width, height, self.selected, self._decode)
        self.rendered = rendered
        self.entries = rendered.entries
        self._shown = rendered.selected
        self.title = rendered.title
        if isinstance(self.parent, Widget):  # the pane's border title names the task and the file shown
            self.parent.border_title = escape(rendered.title)  # border titles are markup
        self.update(rendered.renderable)


def _decode_or_error(data: bytes) -> Raster | ImageError | None:
    deadline = time.monotonic() + DECODE_TIME_LIMIT_S
    try:
        return decode_image(data, give_up=lambda: time.monotonic() > deadline)
    except ImageError as exc:
        return exc


def _decodes_quickly(data: bytes) -> bool:
    """Whether decoding ``data`` cannot take long: raw PNM and tiles read only the rows the preview samples
    (tens of ms at 16 MiB); a PNG must unfilter every row in Python, plain PNM parse every number."""
    return (
        data[:2] in (b"P4", b"P5", b"P6")
        or data[:4] == b"MTL1"
        or (data[:2] in (b"P1", b"P2", b"P3") and len(data) <= DECODE_INLINE_BYTES)
    )
