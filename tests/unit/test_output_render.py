"""The output pane's layout, pure: pictures fit the pane, hex rows never wrap, text has every terminal
control escaped, failed and unfinished tasks say so first."""

from __future__ import annotations

import functools
import io

import pytest
from rich.console import Console
from rich.text import Text

from bxthre3.tui.image_decode import Raster, decode_image
from bxthre3.tui.output_render import (
    UPPER_HALF,
    half_block_lines,
    hex_bytes_per_row,
    hex_lines,
    render_task,
)
from tests.image_encoders import png, pnm


def lines_of(renderable: object, width: int) -> list[str]:
    """The renderable as plain lines on a terminal ``width`` cells wide (trailing spaces dropped)."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(renderable)
    return [line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")]


@functools.cache
def gradient_pgm(w: int, h: int) -> bytes:
    return pnm("P5", w, h, 255, [[((x * 255 // max(1, w - 1) + y) % 256,) for x in range(w)] for y in range(h)])


def task(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"task_id": "t", "state": "succeeded", "output": b"", "stderr": b"", "error": ""}
    base.update(fields)
    return base


@pytest.mark.parametrize("width", [45, 80, 120, 200])
def test_half_blocks_fit_and_keep_the_aspect_ratio(width: int) -> None:
    raster = decode_image(gradient_pgm(800, 600))
    assert raster is not None and (raster.width, raster.height) == (200, 150)
    lines = half_block_lines(raster, width, 200)
    assert all(line.cell_len == width for line in lines)
    assert len(lines) == round(width * 600 / 800 / 2 + 0.49)  # 2 pixels a cell, pixels square
    tall = half_block_lines(raster, width, 10)
    assert len(tall) == 10 and all(line.cell_len <= width for line in tall)
    assert abs(tall[0].cell_len - 20 * 800 / 600) <= 1


def test_half_block_colours_top_on_fg_bottom_on_bg() -> None:
    red, green, blue, white = b"\xff\x00\x00", b"\x00\xff\x00", b"\x00\x00\xff", b"\xff\xff\xff"
    raster = Raster(2, 3, red + green + blue + white + white + red, "PPM", 2, 3)
    lines = half_block_lines(raster, 2, 2)
    assert [line.plain for line in lines] == [UPPER_HALF * 2] * 2
    (first, second) = (lines[0].get_style_at_offset(Console(), x) for x in range(2))
    assert first.color is not None and first.color.triplet == (255, 0, 0)
    assert first.bgcolor is not None and first.bgcolor.triplet == (0, 0, 255)
    assert second.color is not None and second.color.triplet == (0, 255, 0)
    last = lines[1].get_style_at_offset(Console(), 1)
    assert last.color is not None and last.color.triplet == (255, 0, 0) and last.bgcolor is None  # no bottom row


def test_half_blocks_enlarge_a_tiny_image() -> None:
    raster = decode_image(gradient_pgm(4, 2))
    assert raster is not None
    lines = half_block_lines(raster, 40, 20)
    assert len(lines) == 10 and lines[0].cell_len == 40


@pytest.mark.parametrize("width", range(8, 230, 3))
def test_hex_rows_never_wider_than_the_pane(width: int) -> None:
    data = bytes(range(256)) * 3
    lines = hex_lines(data, width)
    assert lines and all(len(line) <= width for line in lines)
    assert lines_of(Text("\n".join(lines), no_wrap=True), width) == [line.rstrip() for line in lines]  # no wrap


@pytest.mark.parametrize(("width", "per_row"), [(45, 8), (80, 16), (120, 24), (200, 40), (30, 4)])
def test_hex_bytes_per_row_by_width(width: int, per_row: int) -> None:
    assert hex_bytes_per_row(width) == per_row
    data = bytes(range(200))
    first = hex_lines(data, width)[0]
    assert first.startswith("00000000  ")
    assert bytes.fromhex(first[10:].rsplit("  ", 1)[0].replace("  ", " ")) == data[:per_row]


def test_hex_says_what_was_left_out() -> None:
    lines = hex_lines(bytes(10_000), 80, limit=64)
    assert len(lines) == 5 and lines[-1] == "… 9936 more bytes"


def test_text_is_escaped_as_written() -> None:
    hostile = "\x1b[31mred\x1b[0m [bold]x[/] \r\u202eevil\u202c\tok\n".encode()
    shown = "\n".join(lines_of(render_task(task(output=hostile), 120, 20).renderable, 120))
    assert shown.rstrip() == "\\x1b[31mred\\x1b[0m [bold]x[/] \\r\\u202eevil\\u202c        ok"
    assert "\x1b" not in shown and "\u202e" not in shown and "[bold]x[/]" in shown


def test_binary_output_is_a_hex_view_that_fits() -> None:
    out = lines_of(render_task(task(output=b"MTX1" + bytes(range(250))), 45, 20).renderable, 45)
    assert out[0] == "254 B of binary data"
    assert out[1].startswith("00000000  4d 54 58 31 00 01 02 03  MTX1....")
    assert all(len(line) <= 45 for line in out)


def test_picture_output_has_a_caption() -> None:
    rendered = render_task(task(task_id="image", output=gradient_pgm(800, 600)), 80, 24)
    out = lines_of(rendered.renderable, 80)
    assert out[0] == "stdout · 800x600 · PGM"
    assert set(out[1]) == {UPPER_HALF} and len(out) <= 24 and len(out[1]) <= 80
    assert rendered.title == "Output of image"


def test_named_files_are_listed_and_an_image_shown_first() -> None:
    files = [
        {"name": "manifest.txt", "size": 12, "sha256": "", "data": b"colour.ppm\n"},
        {"name": "colour.ppm", "size": 1000, "sha256": "", "data": pnm("P6", 4, 2, 255, [[(9, 9, 9)] * 4] * 2)},
        {"name": "big.bin", "size": 5 << 20, "sha256": ""},  # contents not fetched
    ]
    rendered = render_task(task(output=b"done\n", files=files), 100, 20)
    assert [e.name for e in rendered.entries] == ["stdout", "manifest.txt", "colour.ppm", "big.bin"]
    assert rendered.selected == 2 and rendered.title == "Output of t · colour.ppm"
    out = lines_of(rendered.renderable, 100)
    assert out[0].startswith("stdout 5 B · manifest.txt 12 B · ▸ colour.ppm 1000 B · big.bin 5.0 MB")
    assert out[1] == "colour.ppm · 4x2 · PPM"
    assert lines_of(render_task(task(output=b"done\n", files=files), 100, 20, 1).renderable, 100)[1] == "colour.ppm"
    last = lines_of(render_task(task(output=b"", files=files), 100, 20, 2).renderable, 100)
    assert last[1] == "(big.bin: 5.0 MB, contents not fetched)"


def test_failed_task_shows_its_error_first() -> None:
    failed = task(state="failed", output=None, reason="exit 2", error="mandel_tile: expected 7 arguments")
    out = lines_of(render_task(failed, 80, 20).renderable, 80)
    assert out[:3] == ["✗ failed · exit 2", "error: mandel_tile: expected 7 arguments", "(no output)"]
    with_stderr = lines_of(render_task({**failed, "stderr": b"oops\x1b[2J"}, 80, 20).renderable, 80)
    assert with_stderr[-2:] == ["stderr:", "oops\\x1b[2J"]


@pytest.mark.parametrize("state", ["pending", "ready", "running", "retrying"])
def test_unfinished_task_says_so(state: str) -> None:
    out = lines_of(render_task(task(state=state, output=None), 80, 20).renderable, 80)
    assert out[0].endswith(f"{state} · no output yet") and len(out) == 1


def test_broken_image_says_why_in_one_line_then_shows_hex() -> None:
    broken = png([[(1, 2, 3)]], 8, 2)[:-20]
    out = lines_of(render_task(task(output=broken), 80, 20).renderable, 80)
    assert out[0].startswith("cannot show as an image: truncated PNG")
    assert out[1].endswith("of binary data") and out[2].startswith("00000000  89 50 4e 47")


def test_nothing_selected() -> None:
    assert lines_of(render_task(None, 80, 20).renderable, 80) == ["(select a task)"]


def test_files_line_keeps_the_shown_file_in_sight() -> None:
    files = [{"name": f"frame_{i:03}.pgm", "size": 10, "sha256": "", "data": b"x"} for i in range(200)]
    for selected in (0, 57, 199):
        out = lines_of(render_task(task(output=b"", files=files), 60, 20, selected).renderable, 60)
        assert len(out[0]) <= 60 and f"▸ frame_{selected:03}.pgm" in out[0]
        assert out[0].startswith("… ") == (selected > 0)
