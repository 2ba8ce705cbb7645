"""The OutputView widget in a real Textual app (Pilot), and real task outputs from a real controller and
host: the Mandelbrot DAG's PGM and tiles, the image pipeline's named /out pictures."""

from __future__ import annotations

import asyncio
import io
import math
from pathlib import Path

from rich.console import Console
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll

from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.tui.output_render import UPPER_HALF, render_task
from bxthre3.tui.output_view import OutputView
from tests.conftest import REPO, HostProcesses, RunningController, wait_for_hosts
from tests.image_encoders import png, pnm

from .test_output_pane import screen_text


def rings_pgm(w: int = 160, h: int = 120) -> bytes:
    """Concentric rings: a picture whose shape is easy to recognise in a screenshot."""
    px = [[(int(127.5 + 127.5 * math.cos(math.hypot(x - w / 2, y - h / 2) / 4)),) for x in range(w)] for y in range(h)]
    return pnm("P5", w, h, 255, px)


class PaneApp(App[None]):
    """The monitor's output pane alone: a VerticalScroll `#output-pane` holding the view."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="output-pane"):
            yield OutputView(id="output")


def plain(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(renderable)
    return out.getvalue()


def picture_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if UPPER_HALF in line]


def test_pilot_shows_a_generated_pgm_at_80x24(tmp_path: Path) -> None:
    files = [
        {"name": "rings.pgm", "size": 0, "sha256": "", "data": rings_pgm()},
        {"name": "notes.txt", "size": 6, "sha256": "", "data": b"hello\n"},
    ]
    task = {"task_id": "render", "state": "succeeded", "output": b"", "stderr": b"", "error": "", "files": files}

    async def run() -> None:
        app = PaneApp()
        async with app.run_test(size=(80, 24)) as pilot:
            view = app.query_one(OutputView)
            view.show(task)
            view.focus()
            await pilot.pause()
            text = screen_text(app)
            assert "rings.pgm · 160x120 · PGM" in text
            rows = picture_rows(text)
            # 24 rows: the files line and the caption leave 22 at most, as wide as 4:3 allows
            assert 18 <= len(rows) <= 22, len(rows)
            assert app.query_one("#output-pane").border_title == "Output of render · rings.pgm"
            app.save_screenshot(filename="output_view_80x24.svg", path=str(tmp_path))
            await pilot.press("right_square_bracket")
            await pilot.pause()
            text = screen_text(app)
            assert "hello" in text and not picture_rows(text)
            await pilot.press("left_square_bracket")
            await pilot.pause()
            assert picture_rows(screen_text(app))
            await pilot.resize_terminal(160, 48)
            await pilot.pause()
            wide = picture_rows(screen_text(app))
            assert len(wide) > len(rows)
            view.show({**task, "state": "running", "output": None, "files": []})
            await pilot.pause()
            assert "no output yet" in screen_text(app) and view.title == "Output of render"
            view.show_message("(could not fetch the output: [b]timeout[/b]\x1b[2J)", "Output of render")
            await pilot.pause()
            assert str(view.render()) == "(could not fetch the output: [b]timeout[/b]\\x1b[2J)" and not view.entries

    asyncio.run(run())
    svg = (tmp_path / "output_view_80x24.svg").read_text()
    assert "rings.pgm" in svg and svg.count(UPPER_HALF) > 500


def test_pilot_decodes_a_png_in_a_thread() -> None:
    """A PNG is decoded off the UI thread: the pane says so meanwhile, then shows the picture."""
    px = [[(x * 4 % 256, y * 4 % 256, 128) for x in range(64)] for y in range(48)]
    task = {"task_id": "png", "state": "succeeded", "output": png(px, 8, 2), "stderr": b"", "error": ""}

    async def run() -> None:
        app = PaneApp()
        async with app.run_test(size=(80, 24)) as pilot:
            view = app.query_one(OutputView)
            view.show(task)
            assert view.rendered is not None and "(decoding stdout, 1.4 KB…)" in plain(view.rendered.renderable)
            await app.workers.wait_for_complete()
            await pilot.pause()
            text = screen_text(app)
            assert "stdout · 64x48 · PNG" in text and picture_rows(text)

    asyncio.run(run())


def test_real_mandelbrot_and_named_image_outputs(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    hosts.start(controller.address, "host-pictures", slots=2)
    wait_for_hosts(client, 1)
    params = {"width": "96", "height": "64", "cols": "2", "rows": "2", "max_iter": "64"}
    mandel = client.submit(load_dag(REPO / "dags" / "mandelbrot.yaml", params))
    pipeline = client.submit(load_dag(REPO / "dags" / "image_pipeline.yaml"))
    assert client.wait(mandel, timeout=60)["state"] == "succeeded"
    assert client.wait(pipeline, timeout=60)["state"] == "succeeded"

    image = client.results(mandel, task_id="image")["tasks"][0]
    shown = render_task(image, 80, 24).renderable
    lines = shown.plain.split("\n")
    assert lines[0] == "stdout · 96x64 · PGM"
    # 24 rows less the caption and one spare: 22 rows of 2 pixels, 44 px tall, so 66 wide at 3:2
    assert all(set(line) == {UPPER_HALF} for line in lines[1:-3]) and len(lines) - 4 == 22 and len(lines[1]) == 66
    assert lines[-3:] == ["", "stderr:", "mandel_assemble: 96x64 image from 4 tiles, max_iter 64"]

    tile = client.results(mandel, task_id="tile[r=1,c=0]")["tasks"][0]
    assert render_task(tile, 80, 24).renderable.plain.split("\n")[0] == "stdout · 48x32 · MTL1"

    compose = client.results(pipeline, task_id="compose", with_files=True)["tasks"][0]
    rendered = render_task(compose, 120, 30)
    names = [entry.name for entry in rendered.entries]
    assert {"colour.ppm", "thumbs/colour_half.ppm", "manifest.txt"} <= set(names)
    assert names[rendered.selected] == "colour.ppm"
    caption = rendered.renderable.plain.split("\n")[1]
    assert caption.startswith("colour.ppm · ") and caption.endswith(" · PPM")
