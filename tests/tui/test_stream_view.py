"""`TaskStreamView` and `ThroughputSpark` mounted in a real Textual app, driven by Pilot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.widgets import Footer

from bxthre3.tui.stream_view import TaskStreamView, ThroughputSpark

from .screen_text import screen_text
from .test_stream_render import activity, seg

SIZES = ((45, 35), (80, 24), (200, 60))


def busy_cluster(hosts: int = 3) -> Any:
    return activity(
        {
            f"host-{i}": {
                "busy": [0.6] * 120,
                "segments": [
                    seg(50, 20, "succeeded", dag="d1"),
                    seg(15, 9, "failed", dag="d2"),
                    seg(5, None, "running"),
                ],
            }
            for i in range(hosts)
        },
        [0] * 100 + [40] * 20,
        rate=3812.0,
    )


class StreamApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.spans: list[float] = []

    def compose(self) -> ComposeResult:
        yield ThroughputSpark()
        yield TaskStreamView()
        yield Footer()

    def on_task_stream_view_span_changed(self, message: TaskStreamView.SpanChanged) -> None:
        self.spans.append(message.span_s)


@pytest.mark.parametrize("size", SIZES)
def test_task_stream_fills_its_size_and_relays_out_on_resize(size: tuple[int, int]) -> None:
    async def run() -> None:
        app = StreamApp()
        async with app.run_test(size=size) as pilot:
            text = screen_text(app)
            assert text[0].strip() == "– tasks/s"
            assert any("no activity yet" in line for line in text)
            stream = app.query_one(TaskStreamView)
            stream.update_activity(busy_cluster(50), hosts=[f"host-{i}" for i in range(50)])
            app.query_one(ThroughputSpark).update_activity(busy_cluster(50))
            await pilot.pause()
            text = screen_text(app)
            assert text[0].rstrip().endswith("3,812 tasks/s") and "█" in text[0]
            rows = [line for line in text if line.startswith("host-")]
            assert rows and all(cell_len(line) <= size[0] for line in text)
            if size[1] < 60:
                assert any("more hosts" in line for line in text)  # 50 hosts do not fit: the busiest that do
            else:
                assert len(rows) == 50
            assert any(line.rstrip().endswith("now") for line in text)
            await pilot.resize_terminal(size[0] + 30, size[1])
            await pilot.pause()
            wider = [line for line in screen_text(app) if line.startswith("host-")]
            assert cell_len(wider[0].rstrip()) > cell_len(rows[0].rstrip())

    asyncio.run(run())


def test_zoom_and_colour_keys_act_on_the_focused_stream_and_show_in_the_footer() -> None:
    async def run() -> None:
        app = StreamApp()
        async with app.run_test(size=(80, 24)) as pilot:
            stream = app.query_one(TaskStreamView)
            stream.update_activity(busy_cluster())
            stream.focus()
            await pilot.pause()
            text = "\n".join(screen_text(app))
            assert "Span 1m/5m" in text and "Colour state/DAG" in text
            assert "-60s" in text and "✓ succeeded" in text
            await pilot.press("z")
            await pilot.pause()
            text = "\n".join(screen_text(app))
            assert "-5m" in text and app.spans == [300.0]
            await pilot.press("b")
            await pilot.pause()
            text = "\n".join(screen_text(app))
            assert "■ d1" in text and "■ d2" in text
            await pilot.press("z", "b")
            await pilot.pause()
            assert stream.span_s == 60.0 and stream.colour_by == "state" and app.spans == [300.0, 60.0]

    asyncio.run(run())


def test_a_reply_it_cannot_read_is_one_line() -> None:
    async def run() -> None:
        app = StreamApp()
        async with app.run_test(size=(80, 24)) as pilot:
            app.query_one(TaskStreamView).update_activity({"hosts": ["not", "a", "dict"]})  # type: ignore[typeddict-item]
            app.query_one(ThroughputSpark).update_activity({"throughput": 5})  # type: ignore[typeddict-item]
            await pilot.pause()
            text = screen_text(app)
            assert text[0].startswith("cannot draw the throughput: TypeError")
            assert sum("cannot draw the task stream" in line for line in text) == 1

    asyncio.run(run())


def test_screenshot_at_80x24(tmp_path: Path) -> None:
    async def run() -> None:
        app = StreamApp()
        async with app.run_test(size=(80, 24)) as pilot:
            app.query_one(TaskStreamView).update_activity(busy_cluster())
            app.query_one(ThroughputSpark).update_activity(busy_cluster())
            await pilot.pause()
            app.save_screenshot("stream.svg", path=str(tmp_path))
            assert "host-0" in (tmp_path / "stream.svg").read_text()

    asyncio.run(run())
