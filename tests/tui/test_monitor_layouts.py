"""The monitor's arrangements against the fake controller: every size gets its designed layout, no table
column is cut below its minimum, a resize keeps what the screen knew, pane keys and the phone's tab bar
switch panes, new DAGs are followed unless one is pinned, running tasks' times count on."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from bxthre3.tui.adaptive_table import AdaptiveTable
from bxthre3.tui.layout import LayoutMode
from bxthre3.tui.messages import ClusterSnapshot
from bxthre3.tui.monitor import MonitorScreen

from .snapshot_apps import monitor_app
from .test_app import wait_until

SIZES = [(45, 35), (80, 24), (120, 34), (200, 60)]
MODES = {(45, 35): LayoutMode.NARROW, (80, 24): LayoutMode.MEDIUM, (120, 34): LayoutMode.WIDE,
         (200, 60): LayoutMode.WIDE}  # fmt: skip


async def _monitor(pilot) -> MonitorScreen:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen), 5, "the monitor")
    screen = pilot.app.screen
    await wait_until(pilot, lambda: len(screen.query_one("#tasks", AdaptiveTable).keys) == 5, 10, "the tasks")
    await wait_until(pilot, lambda: len(screen.query_one("#hosts", AdaptiveTable).keys) == 2, 10, "the hosts")
    return screen


def _check_tables(screen: MonitorScreen) -> None:
    for table in screen.query(AdaptiveTable):
        if not table.display or not table.shown:
            continue  # a pane not in front (the phone shows one at a time) is laid out when shown
        room = table.content_region.width - table.SCROLLBAR_ROOM
        assert all(width >= spec.minimum for spec, width in table.shown), (table.id, table.shown)
        assert sum(width + 2 for _, width in table.shown) <= room, (table.id, room, table.shown)
        assert table.virtual_size.width <= table.content_region.width, f"{table.id} scrolls sideways"


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_each_size_has_its_layout_and_no_column_is_cut_below_its_minimum(size: tuple[int, int]) -> None:
    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=size) as pilot:
            screen = await _monitor(pilot)
            assert screen.mode is MODES[size]
            for pane in ("1", "2", "4"):  # on the phone each table is checked once it is in front
                await pilot.press(pane)
                await pilot.pause()
                _check_tables(screen)
            tasks = screen.query_one("#tasks", AdaptiveTable)
            assert [s.key for s, _ in tasks.shown][:3] == ["task", "state", "time"]

    asyncio.run(run())


def test_a_resize_recomposes_and_keeps_the_log_the_dag_and_the_tasks() -> None:
    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await _monitor(pilot)
            screen.write_log("a line to keep")
            await pilot.press("2", "down", "down")
            assert screen.query_one("#tasks", AdaptiveTable).highlighted_key() == "hello_es"
            for size, mode in (((45, 35), LayoutMode.NARROW), ((80, 24), LayoutMode.MEDIUM),
                               ((200, 60), LayoutMode.WIDE)):  # fmt: skip
                await pilot.resize_terminal(*size)
                # `mode` is set as compose starts: wait for the new layout's widgets too (mounted after it)
                composed = lambda m=mode: screen.mode is m and bool(screen.query("#tasks"))  # noqa: E731
                await wait_until(pilot, composed, 15, f"the {mode.value} layout")
                await pilot.pause()
                tasks = screen.query_one("#tasks", AdaptiveTable)
                await wait_until(pilot, lambda t=tasks: len(t.keys) == 5, 15, "the tasks again")
                assert "a line to keep" in screen.log_texts
                if mode is not LayoutMode.NARROW:  # (a hidden RichLog writes once it has a size)
                    assert len(screen.query_one("#log").lines) >= 2
                assert screen.selected_dag == "d-0001"
                await wait_until(
                    pilot, lambda t=tasks: t.highlighted_key() == "hello_es", 15, "the same task highlighted"
                )
                _check_tables(screen)

    asyncio.run(run())


def test_on_a_phone_keys_and_the_tab_bar_bring_one_pane_to_the_front() -> None:
    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=(45, 35)) as pilot:
            screen = await _monitor(pilot)
            main = screen.query_one("#main")
            shown = lambda: [c.id for c in main.children if c.display]  # noqa: E731
            assert shown() == ["work-pane"] and screen.active_pane == "tasks"
            await pilot.press("4")
            assert shown() == ["hosts"] and screen.focused is screen.query_one("#hosts")
            await pilot.press("7")
            assert shown() == ["log"]
            await pilot.press("1")
            assert shown() == ["dags-pane"]
            bar = str(screen.query_one("#tabbar").render())
            assert bar.index("Tasks") < bar.index("Hosts") < bar.index("Log")
            await pilot.click("#tabbar", offset=(bar.index("Hosts"), 0))
            assert shown() == ["hosts"]
            await pilot.press("2")
            await pilot.press("enter")  # a task chosen: its output in front
            assert screen.active_pane == "output" and not screen.query_one("#tasks").display

    asyncio.run(run())


def test_at_80x24_the_task_table_shares_its_place_with_the_graph_and_the_stream() -> None:
    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _monitor(pilot)
            slot = lambda: [n for n in ("tasks", "structure", "stream") if screen.query_one(f"#{n}").display]  # noqa: E731
            assert slot() == ["tasks"]
            await pilot.press("5")
            assert slot() == ["structure"]
            await pilot.press("6")
            assert slot() == ["stream"] and screen.focused is screen.query_one("#stream")
            await pilot.press("2")
            assert slot() == ["tasks"]

    asyncio.run(run())


def _add_dag(status: dict, dag_id: str, name: str) -> dict:
    """Add a running DAG to the fake controller's status, in place: its own polls report it too."""
    extra = copy.deepcopy(status["dags"][0])
    extra.update(dag_id=dag_id, name=name, state="running")
    status["dags"].append(extra)
    return copy.deepcopy(status)


def test_a_new_dag_is_followed_unless_one_is_pinned() -> None:
    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await _monitor(pilot)
            screen.post_message(ClusterSnapshot(_add_dag(app.backend.status, "d-0002", "second"), None))
            await wait_until(pilot, lambda: screen.selected_dag == "d-0002", 5, "the new DAG followed")
            assert any("following the new DAG d-0002" in line for line in screen.log_texts)
            await pilot.press("p")
            assert screen.pinned
            screen.post_message(ClusterSnapshot(_add_dag(app.backend.status, "d-0003", "third"), None))
            await wait_until(pilot, lambda: len(screen.query_one("#dags").children) == 3, 5, "the third DAG listed")
            await pilot.pause(0.3)
            assert screen.selected_dag == "d-0002", "a pinned DAG stays"
            assert "pinned" in str(screen.query_one("#dags").border_title)


def test_a_tick_while_a_resize_recomposes_the_screen_is_skipped() -> None:
    """The elapsed-time timer runs beside the message queue: mid-recompose there is no tasks table."""

    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await _monitor(pilot)
            real_query, real_query_one = screen.query, screen.query_one

            def mid_recompose(selector: Any = None) -> Any:  # the tasks table not mounted yet
                return real_query("#no-such-widget" if selector == "#tasks" else selector)

            def mid_recompose_one(selector: Any, expect_type: Any = None) -> Any:
                return real_query_one("#no-such-widget" if selector == "#tasks" else selector, expect_type)

            screen.query, screen.query_one = mid_recompose, mid_recompose_one  # type: ignore[method-assign]
            try:
                screen._tick()  # raised NoMatches, which ended the app
            finally:
                del screen.query, screen.query_one
            assert screen.query_one("#tasks", AdaptiveTable) is not None

    asyncio.run(run())


def test_a_running_tasks_time_counts_on_between_snapshots() -> None:
    async def run() -> None:
        app = monitor_app("running")
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await _monitor(pilot)
            results = copy.deepcopy(screen._results)
            for task in results["tasks"]:
                if task["state"] == "running":
                    task["running_s"] = 2.0
            screen.post_message(ClusterSnapshot(app.backend.status, results))
            tasks = screen.query_one("#tasks", AdaptiveTable)
            # The shown time counts on from 2.000 s with every tick, so a busy machine may show 2.1 s first.
            at_two = lambda: tasks.cells("hello_es")["time"].startswith("2.")  # noqa: E731
            await wait_until(pilot, at_two, 15, "the elapsed time")
            screen._results_at -= 10.0  # as if ten seconds had passed since the snapshot
            screen._tick()
            shown = tasks.cells("hello_es")["time"]
            assert shown.endswith(" s") and 12.0 <= float(shown[:-2]) < 14.0, shown
            assert tasks.cells("prepare")["time"] == "0.012 s", "a finished task keeps its run time"

    asyncio.run(run())
