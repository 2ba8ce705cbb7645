"""`DagStructureView` mounted in a real Textual app, driven by Pilot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.widgets import Footer

from bxthre3.tui.structure_view import DagStructureView

from .screen_text import screen_text
from .test_structure_render import group, hundred_thousand, structure, three_tasks

SIZES = ((45, 35), (80, 24), (200, 60))


class StructureApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DagStructureView()
        yield Footer()


@pytest.mark.parametrize("size", SIZES)
def test_structure_fills_its_size(size: tuple[int, int]) -> None:
    async def run() -> None:
        app = StructureApp()
        async with app.run_test(size=size) as pilot:
            assert screen_text(app)[0].strip() == "select a DAG"
            view = app.query_one(DagStructureView)
            view.update_structure(hundred_thousand())
            await pilot.pause()
            text = screen_text(app)
            assert text[0].startswith("huge · 100,000 tasks · 5 groups")
            assert sum("✗ 1" in line for line in text) == 5
            assert all(cell_len(line) <= size[0] for line in text)
            many = structure([group(f"t{i}", i, {"succeeded": 1}) for i in range(500)], [])
            view.update_structure(many)
            await pilot.pause()
            text = screen_text(app)
            assert any(line.startswith(f"+{500 - (size[1] - 1) + 2} more groups") for line in text)

    asyncio.run(run())


def test_edges_key_toggles_the_upstream_lines_and_shows_in_the_footer() -> None:
    async def run() -> None:
        app = StructureApp()
        async with app.run_test(size=(80, 24)) as pilot:
            view = app.query_one(DagStructureView)
            view.update_structure(three_tasks())
            view.focus()
            await pilot.pause()
            text = "\n".join(screen_text(app))
            assert "Upstreams on/off" in text and "← a" in text
            await pilot.press("e")
            await pilot.pause()
            assert "← a" not in "\n".join(screen_text(app))

    asyncio.run(run())


def test_a_reply_it_cannot_read_is_one_line() -> None:
    async def run() -> None:
        app = StructureApp()
        async with app.run_test(size=(80, 24)) as pilot:
            app.query_one(DagStructureView).update_structure(["nope"])  # type: ignore[arg-type]
            await pilot.pause()
            assert screen_text(app)[0].startswith("cannot draw the DAG structure: AttributeError")

    asyncio.run(run())


def test_screenshot_at_80x24(tmp_path: Path) -> None:
    async def run() -> None:
        app = StructureApp()
        async with app.run_test(size=(80, 24)) as pilot:
            app.query_one(DagStructureView).update_structure(hundred_thousand())
            await pilot.pause()
            app.save_screenshot("structure.svg", path=str(tmp_path))
            assert "huge" in (tmp_path / "structure.svg").read_text()

    asyncio.run(run())
