"""Sparklines, busy bars and compact numbers (`bxthre3.tui.sparks`), as exact strings."""

from __future__ import annotations

import math

from rich.cells import cell_len

from bxthre3.tui.sparks import (
    busy_bar,
    compact_number,
    cut,
    cut_middle,
    fit,
    rate_text,
    resample,
    shade_char,
    sparkline,
)


def test_sparkline_uses_eight_levels_and_a_blank_for_zero() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7, 8], 9) == " ▁▂▃▄▅▆▇█"
    assert sparkline([0.01, 8], 2) == "▁█"  # any work at all shows


def test_sparkline_keeps_a_burst_when_resampling_by_max_and_averages_by_mean() -> None:
    burst = [0] * 299 + [5000]
    assert sparkline(burst, 10) == " " * 9 + "█"
    assert sparkline([0, 0, 8, 0], 2, how="mean", top=8) == " ▄"
    assert sparkline([0, 0, 8, 0], 2, how="max", top=8) == " █"


def test_sparkline_stretches_few_values_and_reads_bad_numbers_as_zero() -> None:
    assert sparkline([1, 2], 4) == "▄▄██"
    assert sparkline([math.nan, -3, math.inf, 2], 4) == "   █"
    assert sparkline([], 3) == "   "
    assert sparkline([1, 2, 3], 0) == ""
    assert resample([1, 5, 2, 2], 2, "mean") == [3.0, 2.0]


def test_busy_bar_fills_in_eighths_and_clamps() -> None:
    assert busy_bar(0.5, 10) == "█████     "
    assert busy_bar(0.55, 4) == "██▎ "  # 17.6 eighths round to 18: two cells and a quarter
    assert busy_bar(2.0, 3) == "███"
    assert busy_bar(-1, 3) == "   "
    assert busy_bar(0.5, 0) == ""


def test_shades_by_thirds() -> None:
    assert [shade_char(f) for f in (0, 0.1, 0.4, 0.7, 1.0, 5)] == [" ", "░", "▒", "▓", "▓", "▓"]


def test_numbers_fit_their_columns() -> None:
    assert [compact_number(v) for v in (0, 0.44, 12.4, 999, 999.6, 3812, 38120, 3.8e6)] == [
        "0", "0.4", "12", "999", "1.0k", "3.8k", "38k", "3.8M",
    ]  # fmt: skip
    assert all(len(compact_number(10**k * 9.96)) <= 4 for k in range(0, 12))
    assert [rate_text(v) for v in (3812.4, 12.46, 0.0, -1)] == ["3,812", "12.5", "0", "0"]


def test_cut_and_fit_count_cells_and_escape_control_characters() -> None:
    assert cut("abcdef", 4) == "abc…"
    assert cut("ab", 4) == "ab"
    assert cut("a\x1b[31mb", 20) == "a\\x1b[31mb"
    assert cell_len(cut("日本語ホスト", 5)) <= 5
    assert cell_len(fit("日本語", 4)) == 4
    assert fit("ab", 4) == "ab  "


def test_cut_middle_keeps_the_end_of_a_node_id() -> None:
    assert cut_middle("host-10", 6) == "ho…-10"
    assert cut_middle("host-11", 6) == "ho…-11"
    assert cut_middle("lab-box-3-slot-12", 9) == "lab-…t-12"
    assert cut_middle("short", 9) == "short" and cut_middle("abc", 1) == "…" and cut_middle("abc", 0) == ""
    assert cell_len(cut_middle("日本語のホスト-12", 7)) <= 7
    assert fit("host-10", 8, middle=True) == "host-10 "
