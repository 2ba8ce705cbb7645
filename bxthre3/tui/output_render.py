"""What the monitor's output pane shows for one task, as Rich renderables (pure: no Textual, no I/O).

A task's stdout and each of its named `/out` files is an *entry*; the pane shows one at a time: an image
(PNM, PNG, mandel_tile tiles) as half-block characters, UTF-8 text as text with terminal controls escaped
(`client.outputs.terminal_safe`), anything else as a hex view whose bytes per row
are chosen so no row wraps. Everything is sized for the pane's width and height in cells, and every
line is cropped, never wrapped, except text, which wraps like text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text

from ..client.outputs import terminal_safe
from .image_decode import ImageError, Raster, decode_image, fit, sniff
from .states import look, state_text

MAX_TEXT_SHOWN = 64 * 1024
"""Characters of a text output shown (the rest is counted, not shown)."""

HEX_MAX_BYTES = 4096
"""Bytes of a binary output shown as hex: a screenful or two is what a person reads."""

UPPER_HALF = "\u2580"
"""▀: its foreground paints the top pixel of a cell, its background the bottom one."""

UNFINISHED = frozenset({"pending", "ready", "running", "retrying"})
NOT_RUN = frozenset({"upstream_failed", "cancelled"})

Decoder = Callable[[bytes], "Raster | None"]
"""Decodes a picture: returns a raster or None, raises `ImageError` (or `DecodePending`)."""


class DecodePending(Exception):
    """Raised by a `Decoder` that decodes elsewhere (the widget's thread): the picture is on its way."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing the pane can show: the task's stdout or one named output."""

    name: str
    size: int
    data: bytes | None
    """None when the contents were not fetched (`results(..., with_files=False)`)."""
    is_stdout: bool = False


@dataclass(frozen=True, slots=True)
class Rendered:
    """The pane's content for a task, with what a caller needs to title it and cycle entries."""

    renderable: Text
    """One Text, lines joined: a `Static` shows it, and `str(static.render())` is its plain text."""
    title: str
    entries: tuple[Entry, ...]
    selected: int
    """Index in ``entries`` of the one shown (0 when there are none)."""


def human_size(n: int) -> str:
    """``812 B``, ``12.5 KB``, ``3.0 MB`` (powers of 1024, as `--out` sizes are listed)."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --- entries ------------------------------------------------------------------------------------------------


def task_entries(task: Mapping[str, Any]) -> tuple[Entry, ...]:
    """Stdout (when there is any, or nothing else) then the named outputs in the order the task lists them."""
    output = task.get("output")
    files = [
        Entry(str(f.get("name", "?")), int(f.get("size") or 0), f.get("data"))
        for f in task.get("files") or ()
        if isinstance(f, Mapping)
    ]
    entries = []
    if output or not files:
        entries.append(Entry("stdout", len(output or b""), output, is_stdout=True))
    return tuple(entries + files)


def default_entry(entries: Sequence[Entry]) -> int:
    """Which entry to show first: stdout if it is an image, else the first named image, else stdout (or the
    first file when there is no stdout)."""
    for i, entry in enumerate(entries):
        if entry.data is not None and sniff(entry.data) is not None:
            return i
    return 0


# --- images -------------------------------------------------------------------------------------------------


def resample(raster: Raster, width: int, height: int) -> list[bytes]:
    """``raster`` as ``height`` rows of ``width`` RGB pixels: the area average of each pixel's box when
    shrinking, the nearest pixel when enlarging."""
    src_w, src_h, rgb = raster.width, raster.height, raster.rgb
    xs = [(x * src_w // width, max(x * src_w // width + 1, (x + 1) * src_w // width)) for x in range(width)]
    rows = []
    for y in range(height):
        y0 = y * src_h // height
        y1 = max(y0 + 1, (y + 1) * src_h // height)
        out = bytearray(3 * width)
        for x, (x0, x1) in enumerate(xs):
            n = (x1 - x0) * (y1 - y0)
            for c in range(3):
                total = 0
                for sy in range(y0, y1):
                    base = 3 * sy * src_w + c
                    total += sum(rgb[base + 3 * x0 : base + 3 * x1 : 3])
                out[3 * x + c] = (total + n // 2) // n
        rows.append(bytes(out))
    return rows


def half_block_lines(raster: Raster, width: int, height: int) -> list[Text]:
    """``raster`` scaled to fit ``width x height`` cells (two pixels a cell, one above the other, so a
    pixel is about square), aspect ratio kept. It paints its own colours, so it reads on any theme."""
    px_w, px_h = fit(raster.width, raster.height, max(1, width), max(1, 2 * height), enlarge=True)
    rows = resample(raster, px_w, px_h)
    styles: dict[tuple[bytes, bytes], Style] = {}
    lines = []
    for top_y in range(0, px_h, 2):
        top = rows[top_y]
        bottom = rows[top_y + 1] if top_y + 1 < px_h else None
        line = Text(no_wrap=True, overflow="crop")
        run_key: tuple[bytes, bytes] | None = None
        run = 0
        for x in range(px_w):
            key = (top[3 * x : 3 * x + 3], bottom[3 * x : 3 * x + 3] if bottom is not None else b"")
            if key != run_key and run:
                line.append(UPPER_HALF * run, _style(styles, run_key))
                run = 0
            run_key = key
            run += 1
        if run:
            line.append(UPPER_HALF * run, _style(styles, run_key))
        lines.append(line)
    return lines


def _style(cache: dict[tuple[bytes, bytes], Style], key: tuple[bytes, bytes] | None) -> Style:
    assert key is not None
    style = cache.get(key)
    if style is None:
        top, bottom = key
        style = Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom) if bottom else None)
        cache[key] = style
    return style


def image_caption(name: str, raster: Raster, width: int) -> Text:
    """``mandelbrot.pgm · 800x600 · PGM``, cut to ``width``."""
    caption = Text(
        f"{terminal_safe(name, keep='')} · {raster.source_width}x{raster.source_height} · {raster.format}",
        style="bold",
    )
    caption.truncate(max(1, width), overflow="ellipsis")
    return caption


# --- hex ----------------------------------------------------------------------------------------------------


def hex_row_width(per_row: int) -> int:
    """Cells of one hex row: offset, bytes (a gap every 8), the printable column."""
    groups = max(0, per_row // 8 - 1)
    return 8 + 2 + (3 * per_row - 1) + groups + 2 + per_row


def hex_bytes_per_row(width: int) -> int:
    """The most bytes a row fits in ``width`` cells: a multiple of 8 (up to 64), else 4, 2 or 1."""
    for per_row in (64, 56, 48, 40, 32, 24, 16, 8, 4, 2, 1):
        if hex_row_width(per_row) <= width:
            return per_row
    return 1


def hex_lines(data: bytes, width: int, limit: int = HEX_MAX_BYTES) -> list[str]:
    """``data`` (its first ``limit`` bytes) as hex rows no wider than ``width``, then what was left out."""
    per_row = hex_bytes_per_row(width)
    shown = data[:limit]
    lines = []
    for off in range(0, len(shown), per_row):
        chunk = shown[off : off + per_row]
        groups = [" ".join(f"{b:02x}" for b in chunk[g : g + 8]) for g in range(0, len(chunk), 8)]
        hexes = "  ".join(groups) if per_row >= 8 else " ".join(f"{b:02x}" for b in chunk)
        pad = hex_row_width(per_row) - 8 - 2 - 2 - per_row
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {hexes:<{pad}}  {printable}"[: max(1, width)])
    if len(data) > len(shown):
        lines.append(f"… {len(data) - len(shown)} more bytes"[: max(1, width)])
    return lines


# --- text ---------------------------------------------------------------------------------------------------


def as_text(data: bytes) -> str | None:
    """UTF-8 without NUL bytes in its first 4 KiB is text (NULs mark binary data even when it happens to be
    valid UTF-8); else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text[:4096] else text


def text_body(text: str, size: int) -> Text:
    """Text with every terminal control escaped, cut at `MAX_TEXT_SHOWN` characters (the final newline
    is not shown as an empty line)."""
    shown = terminal_safe(text[:MAX_TEXT_SHOWN])
    if len(text) > MAX_TEXT_SHOWN:
        shown += f"\n… ({size} bytes in all)"
    return Text(shown.removesuffix("\n"))


# --- one entry, one task ------------------------------------------------------------------------------------


def entry_lines(entry: Entry, width: int, height: int, decode: Decoder = decode_image) -> list[Text]:
    """One entry's body: a picture with its caption, text, or hex; a broken image says why in one line first."""
    data = entry.data
    if data is None:
        return [Text(f"({entry.name}: {human_size(entry.size)}, contents not fetched)", style="dim")]
    if not data:
        return [Text("(empty output)" if entry.is_stdout else f"({entry.name} is empty)", style="dim")]
    out: list[Text] = []
    if sniff(data) is not None:
        try:
            raster = decode(data)
        except DecodePending:
            return [Text(f"(decoding {entry.name}, {human_size(len(data))}…)", style="dim")]
        except ImageError as exc:
            out.append(Text(f"cannot show as an image: {exc}", style=look("failed").colour))
        else:
            if raster is not None:
                out.append(image_caption(entry.name, raster, width))
                out.extend(half_block_lines(raster, width, max(1, height - 1)))
                return out
    text = as_text(data)
    if text is not None:
        out.append(text_body(text, len(data)))
        return out
    out.append(Text(f"{human_size(len(data))} of binary data", style="dim"))
    out.extend(Text(line, no_wrap=True, overflow="crop") for line in hex_lines(data, width))
    return out


def files_line(entries: Sequence[Entry], selected: int, width: int) -> Text | None:
    """``stdout 5 B · ▸ image.pgm 12.0 KB · manifest.txt 80 B  [ ] switch``: the entries, the shown one
    marked, cut to ``width`` (entries before the shown one give way first); None for a single entry."""
    if len(entries) < 2:
        return None
    labels = [f"{terminal_safe(e.name, keep='')} {human_size(e.size)}" for e in entries]
    first = 0
    while first < selected and sum(len(x) + 3 for x in labels[first : selected + 1]) + 2 > width:
        first += 1  # scroll the list so the shown entry stays in sight
    line = Text("… " if first else "")
    for i in range(first, len(entries)):
        if i > first:
            line.append(" · ", style="dim")
        if i == selected:
            line.append(f"▸ {labels[i]}", style="bold reverse")
        else:
            line.append(labels[i])
    line.append("  [ ] switch", style="dim")
    line.truncate(max(1, width), overflow="ellipsis")
    return line


def render_task(
    task: Mapping[str, Any] | None,
    width: int,
    height: int,
    selected: int | None = None,
    decode: Decoder = decode_image,
) -> Rendered:
    """The output pane for ``task`` (a `TaskView`, fetched with its output and ideally `with_files`) at
    ``width x height`` cells; ``selected`` picks the entry (None: `default_entry`)."""
    if task is None:
        return Rendered(Text("(select a task)", style="dim"), "Output", (), 0)
    task_id = terminal_safe(str(task.get("task_id", "")), keep="")
    title = f"Output of {task_id}"
    state = str(task.get("state", ""))
    head: list[Text] = []
    if state in UNFINISHED:
        shown = Text.assemble(state_text(state), " · no output yet")
        return Rendered(shown, title, (), 0)
    reason = task.get("reason")
    error = task.get("error")
    if state not in ("succeeded", "cached", "verified", ""):
        line = Text.assemble(state_text(state))
        if reason:
            line.append(f" · {terminal_safe(str(reason), keep='')}")
        head.append(line)
    if error:
        head.append(Text(f"error: {terminal_safe(str(error))}", style=look("failed").colour))
    entries = task_entries(task)
    if state in NOT_RUN and not task.get("output") and len(entries) <= 1:
        return Rendered(_join(head), title, (), 0)
    chosen = default_entry(entries) if selected is None else selected % len(entries)
    entry = entries[chosen]
    if entry.is_stdout and entry.data is None and not task.get("files"):
        body: list[Text] = [Text("(no output)", style="dim")]
    else:
        listing = files_line(entries, chosen, width)
        if listing is not None:
            head.append(listing)
        budget = max(4, height - len(head) - 1)
        body = entry_lines(entry, width, budget, decode)
    stderr = task.get("stderr")
    if stderr:
        body.append(Text("\nstderr:", style="bold"))
        text = as_text(stderr)
        if text is not None:
            body.append(text_body(text, len(stderr)))
        else:
            body.extend(Text(line, no_wrap=True, overflow="crop") for line in hex_lines(stderr, width))
    if len(entries) > 1 or not entry.is_stdout:
        title += f" · {terminal_safe(entry.name, keep='')}"
    return Rendered(_join(head + body), title, entries, chosen)


def _join(lines: list[Text]) -> Text:
    """One Text of ``lines``: only text bodies are longer than the width (and wrap); pictures, hex rows,
    captions and the files line are cut to the width before."""
    return Text("\n").join(lines)
