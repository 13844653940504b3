"""The chart renderables, without an app."""

from __future__ import annotations

import pytest
from rich.console import Console, RenderableType
from rich.segment import Segment
from rich.style import Style

from loopscope.tui._charts import (
    EIGHTHS,
    LAG_BAD,
    Bars,
    bin_series,
    lag_chart,
    lag_style,
    nice_ceiling,
    trend,
)


def render(renderable: RenderableType, width: int, height: int | None = None) -> list[str]:
    console = Console(width=width, color_system=None, legacy_windows=False)
    options = console.options if height is None else console.options.update(height=height)
    lines = console.render_lines(renderable, options, pad=False)
    return ["".join(s.text for s in line) for line in lines]


def styled_cells(
    renderable: RenderableType, width: int, height: int
) -> list[list[tuple[str, Style]]]:
    console = Console(width=width, color_system="truecolor", legacy_windows=False)
    lines = console.render_lines(renderable, console.options.update(height=height), pad=False)
    return [
        [(ch, seg.style or Style()) for seg in line for ch in seg.text]
        for line in (list(Segment.simplify(line)) for line in lines)
    ]


def column_height(lines: list[str], col: int) -> int:
    """Eighths filled in column ``col`` of a chart drawn as ``lines`` (top row first)."""
    total = 0
    for row, line in enumerate(reversed(lines)):
        total += EIGHTHS.index(line[col]) if line[col] != "█" else 8
        if EIGHTHS.index(line[col]) < 8:
            # Cells above a partly filled cell must be empty.
            above = [ln[col] for ln in list(reversed(lines))[row + 1 :]]
            assert all(ch == " " for ch in above), (col, lines)
            break
    return total


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0001, 0.0001),
        (0.00012, 0.0002),
        (0.003, 0.005),
        (0.01, 0.01),
        (0.012, 0.02),
        (0.7, 1.0),
        (1.0, 1.0),
        (2.5, 2.5),
        (0.26, 0.5),
        (120.0, 200.0),
    ],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)


def test_rising_series_climbs_to_the_top_row() -> None:
    values = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128]
    lines = render(Bars(values, ceiling=0.128, height=4), width=8)
    assert len(lines) == 4
    heights = [column_height(lines, c) for c in range(8)]
    assert heights == sorted(heights)
    assert heights[-1] == 32  # the largest value fills all four rows
    assert heights[0] == 1  # a small value still shows the floor
    assert lines[0][-1] == "█" and lines[0][0] == " "


def test_values_are_right_aligned_and_the_oldest_dropped() -> None:
    short = render(Bars([1.0, 1.0], ceiling=1.0, height=1), width=6)
    assert short == ["    ██"]
    long = render(Bars([1.0, 0.0, 0.0, 0.5], ceiling=1.0, height=1), width=3)
    assert long == ["▁▁▄"]  # the first value no longer fits


def test_empty_series_is_blank_not_a_floor() -> None:
    assert render(Bars([], ceiling=1.0, height=2), width=5) == ["     ", "     "]


def test_values_above_the_ceiling_are_clipped() -> None:
    assert render(Bars([5.0], ceiling=1.0, height=2), width=1) == ["█", "█"]


def test_height_comes_from_the_options_when_not_given() -> None:
    assert len(render(Bars([1.0], ceiling=1.0), width=4, height=3)) == 3


def series(values: list[float], step: float = 0.25) -> list[tuple[float, float]]:
    """Points ``step`` apart ending at t = 100."""
    n = len(values)
    return [(100.0 - (n - 1 - i) * step, v) for i, v in enumerate(values)]


def test_bin_series_slices_the_span_and_keeps_the_worst() -> None:
    points = series([1.0, 5.0, 2.0, 3.0])  # t = 99.25, 99.5, 99.75, 100
    assert bin_series(points, end=100.0, span=1.0, columns=2) == [5.0, 3.0]
    assert bin_series(points, end=100.0, span=1.0, columns=4) == [1.0, 5.0, 2.0, 3.0]
    # Older than the span: dropped; nothing yet at the left: blank.
    assert bin_series(points, end=100.0, span=0.5, columns=2) == [2.0, 3.0]
    assert bin_series(points, end=100.0, span=2.0, columns=4) == [None, None, 5.0, 3.0]


def test_a_late_window_covers_the_stall_before_it() -> None:
    # The loop stalled for 2 s: the next window ends 2 s after the previous one.
    points = [(96.0, 0.001), (98.0, 2.0), (98.25, 0.001)]
    binned = bin_series(points, end=98.25, span=2.25, columns=9)
    assert binned[:8] == [2.0] * 8 and binned[8] == 0.001


def test_lag_chart_labels_its_scale_and_climbs_when_the_loop_blocks() -> None:
    healthy = [0.0004] * 19
    points = series([*healthy, 0.080, 0.150, 0.120])
    lines = render(lag_chart(points, end=100.0, span=22 * 0.25, height=3), width=30)
    assert lines[0].startswith(" 200 ms ")  # the ceiling follows the largest value
    assert lines[-1].startswith("      0 ")
    bars = [line[8:] for line in lines]
    heights = [column_height(bars, c) for c in range(22)]  # one column per window
    assert heights[:19] == [1] * 19
    assert heights[-2] == round(0.150 / 0.200 * 24)  # 150 ms of a 200 ms scale
    assert heights[-3] < heights[-1] < heights[-2]


def test_lag_chart_of_a_healthy_loop_stays_flat() -> None:
    lines = render(lag_chart(series([0.0003, 0.0005, 0.0004]), end=100.0, span=3, height=2), 20)
    assert lines[0].startswith("  10 ms ")  # never stretched below the minimum ceiling
    assert lines[0][8:].strip() == ""
    assert lines[1][8:] == " " * 9 + "▁▁▁"  # one 0.25 s window per column, newest right


def test_lag_colours_mark_stalls() -> None:
    chart = lag_chart(series([0.0005, LAG_BAD * 2]), end=100.0, span=0.5, height=1)
    row = styled_cells(chart, width=10, height=1)[0]
    assert colour(row[-2][1]) == "green"
    assert colour(row[-1][1]) == "red"
    assert colour(lag_style(0.006)) == "yellow"


def colour(style: Style) -> str | None:
    return None if style.color is None else style.color.name


def test_narrow_width_drops_the_gutter_rather_than_breaking() -> None:
    assert render(lag_chart([(100.0, 0.05)], end=100.0, span=5.0, height=1), width=5) == ["    █"]


def test_trend_scales_from_zero_to_its_peak() -> None:
    assert render(trend(series([0, 50, 100], step=1.0), end=100.0, span=3.0), width=3) == ["▁▄█"]
    assert render(trend(series([0, 0]), end=100.0, span=0.5), width=2) == ["▁▁"]
