"""The task stream renderer (`bxthre3.tui.stream_render`) on hand-built `activity` replies."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rich.cells import cell_len

from bxthre3.tui.stream_render import DAG_HUES, dag_hue, host_labels, label_width, stream_lines

WIDTHS = (45, 80, 120, 200)


def seg(start: float, end: float | None, state: str = "succeeded", dag: str = "d1", task: str = "t") -> dict[str, Any]:
    return {"dag_id": dag, "task_id": task, "start_ago_s": start, "end_ago_s": end, "state": state}


def activity(hosts: dict[str, Any], throughput: list[int] | None = None, rate: float = 0.0) -> Any:
    return {
        "window_s": 120.0,
        "bucket_s": 1.0,
        "throughput": throughput if throughput is not None else [0] * 120,
        "tasks_per_s": rate,
        "hosts": hosts,
    }


def small_view() -> Any:
    """33 one-second buckets: at width 45 the timeline has 33 cells, one per bucket, for span 33."""
    busy = [0.0] * 20 + [0.2] * 3 + [1.0] * 5 + [0.5, 0.9] + [1.0] * 3
    segments = [seg(10, 5, "succeeded"), seg(3, None, "running", dag="d2")]
    return activity({"h1": {"busy": busy, "segments": segments}}, [0] * 30 + [2, 4, 8], rate=4.67)


def plain(lines: list[Any]) -> list[str]:
    return [line.plain for line in lines]


def test_one_host_exactly() -> None:
    lines = stream_lines(small_view(), 45, span_s=33)
    assert label_width(45) == 11
    assert plain(lines) == [
        "done/s  4.7│" + " " * 30 + "▂▄█",
        "h1      30%│" + " " * 20 + "░░░" + "━━━━✓" + "▒▓" + "━━●",
        " " * 12 + "-33s" + " " * 9 + "-16.5s" + " " * 11 + "now",
        "█=8.0/s  ● running  ✓ succeeded",  # `━ runs ░▒▓ busy` does not fit in 45 and is left out whole
    ]


def test_cells_take_the_state_colour_or_the_dag_hue() -> None:
    by_state = stream_lines(small_view(), 45, span_s=33)[1]
    by_dag = stream_lines(small_view(), 45, span_s=33, colour_by="dag")[1]
    tick = by_state.plain.index("✓")

    def colour_at(line: Any, at: int) -> str:
        styles = [span.style for span in line.spans if span.start <= at < span.end]
        return str(styles[-1].color.name)

    assert colour_at(by_state, tick) == "#2ea043"  # succeeded
    assert colour_at(by_state, len(by_state) - 1) == "#3b8eea"  # running
    assert colour_at(by_dag, tick) == dag_hue("d1")
    assert colour_at(by_dag, len(by_dag) - 1) == dag_hue("d2")
    assert colour_at(by_state, tick - 6) == "#8a8f98"  # busy, but no attempt known: grey
    legend = stream_lines(small_view(), 80, span_s=33, colour_by="dag")[-1].plain
    assert "■ d1" in legend and "■ d2" in legend


def test_dag_hues_are_stable_and_spread() -> None:
    assert dag_hue("abc") == dag_hue("abc")
    assert len({dag_hue(f"dag-{i}") for i in range(40)}) == len(DAG_HUES)


def test_a_host_running_5000_tasks_a_second_is_shaded_busy_and_does_not_flicker() -> None:
    def view(shift: float) -> Any:
        segments = [seg(0.04 - i * 0.0002 + shift, 0.04 - (i + 1) * 0.0002 + shift, task=f"t{i}") for i in range(200)]
        return activity({"h": {"busy": [1.0] * 120, "segments": segments}}, [5000] * 120, rate=5000)

    rows = [plain(stream_lines(view(shift), 80))[1] for shift in (0.0, 0.01, 0.02)]
    timeline = rows[0].split("│", 1)[1]
    assert set(timeline) == {"▓"}
    assert rows[0] == rows[1] == rows[2]


def test_an_instant_cache_hit_still_marks_its_cell() -> None:
    view = activity({"h": {"busy": [0.0] * 120, "segments": [seg(30, 30, "cached")]}})
    timeline = plain(stream_lines(view, 80))[1].split("│", 1)[1]
    assert timeline.strip() == "░"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_width_gives_full_rows_that_never_overflow(width: int) -> None:
    hosts = {f"host-{i}-with-a-rather-long-name": {"busy": [0.5] * 120, "segments": [seg(40, 2)]} for i in range(3)}
    lines = stream_lines(activity(hosts, [3] * 120, rate=3.0), width, span_s=60)
    assert all(line.cell_len <= width and "\n" not in line.plain for line in lines)
    host_rows = [line for line in lines if line.plain.split("│")[0].endswith("50%")]
    assert len(host_rows) == 3
    assert all(row.cell_len == width for row in host_rows)
    assert all("…" in row.plain.split("│")[0] for row in host_rows)  # the long id is cut, not wrapped
    assert lines[-2].plain.rstrip().endswith("now") and "-60s" in lines[-2].plain


def test_no_hosts() -> None:
    lines = plain(stream_lines(activity({}), 45))
    assert any("no hosts registered" in line for line in lines)
    assert "now" in lines[-2]


def test_fifty_hosts_show_the_busiest_that_fit_in_the_given_order() -> None:
    hosts = {f"h{i:02d}": {"busy": [i / 50] * 120, "segments": []} for i in range(50)}
    order = [f"h{i:02d}" for i in reversed(range(50))]
    lines = plain(stream_lines(activity(hosts), 80, hosts=order, max_lines=10))
    assert len(lines) == 10
    shown = [line.split()[0] for line in lines[1:7]]
    assert shown == ["h49", "h48", "h47", "h46", "h45", "h44"]
    assert lines[7] == "+44 more hosts (less busy)"
    everything = plain(stream_lines(activity(hosts), 200))
    assert len(everything) == 50 + 3


def test_tiny_heights_keep_a_host_row_first() -> None:
    view = small_view()
    assert plain(stream_lines(view, 45, span_s=33, max_lines=1))[0].startswith("h1")
    assert len(stream_lines(view, 45, span_s=33, max_lines=2)) == 2
    assert stream_lines(view, 45, max_lines=0) == [] and stream_lines(view, 0) == []


def test_a_span_longer_than_the_window_leaves_old_cells_blank() -> None:
    view = activity({"h": {"busy": [1.0] * 120, "segments": []}})
    row = plain(stream_lines(view, 80, span_s=300))[1].split("│", 1)[1]
    assert row.startswith(" " * 30) and row.endswith("▓" * 10)
    assert "-5m" in plain(stream_lines(view, 80, span_s=300))[-2]


def test_malformed_replies_draw_what_they_can() -> None:
    assert stream_lines({}, 80)  # type: ignore[typeddict-item]
    junk = activity({"h": {"busy": ["x", None, -1], "segments": ["nope", {"state": "running"}, seg(5, 9, "failed")]}})
    lines = plain(stream_lines(junk, 80))
    assert lines[1].startswith("h") and "✗" in lines[1]  # start/end given the wrong way round still draws


def test_fifty_hosts_at_200_cells_render_fast() -> None:
    hosts = {
        f"host-{i}": {"busy": [0.7] * 120, "segments": [seg(60 - k * 0.3, 60 - k * 0.3 - 0.2) for k in range(200)]}
        for i in range(50)
    }
    view = activity(hosts, [100] * 120, rate=100)
    best = min(_timed(lambda: stream_lines(view, 200, max_lines=60)) for _ in range(3))
    assert best < 0.2, best  # 0.07 s of CPU measured: 10,000 segments on 50 rows of 177 cells


def _timed(fn: Any) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def test_wide_host_ids_are_cut_by_cells() -> None:
    view = activity({"日本語のとても長いホスト名": {"busy": [0.5] * 120, "segments": []}})
    for width in WIDTHS:
        assert all(cell_len(line.plain) <= width for line in stream_lines(view, width))


def test_hosts_sharing_a_head_stay_apart_and_sort_naturally() -> None:
    hosts = {f"host-{i}": {"busy": [0.5] * 120, "segments": []} for i in (10, 2, 11, 1)}
    labels = [line.plain.split("│")[0].split()[0] for line in stream_lines(activity(hosts), 45)[1:5]]
    assert labels == ["host-1", "host-2", "ho…-10", "ho…-11"]


def test_labels_cut_where_they_keep_rows_apart() -> None:
    assert host_labels(["host-10", "host-11"], 6) == {"host-10": "ho…-10", "host-11": "ho…-11"}
    assert host_labels(["a-1-end", "a-2-end"], 4) == {"a-1-end": "a-1…", "a-2-end": "a-2…"}  # the head differs
    assert host_labels(["node-7", "node-8"], 8) == {"node-7": "node-7  ", "node-8": "node-8  "}
