"""Charts as pure Rich renderables: they draw the numbers they are given and know no app."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

from loopscope.tui._format import duration

# A cell is split into eighths by these characters; index 0 is an empty cell.
EIGHTHS = " ▁▂▃▄▅▆▇█"

# Lag colours: fine, noticeable, and a stall at least as long as the agent's default block
# threshold (20 ms), which is where requests start to queue behind the loop.
LAG_WARN = 0.005
LAG_BAD = 0.020
# The lag scale never drops below this ceiling, so a healthy loop's sub-millisecond jitter stays
# a flat line instead of being stretched to fill the chart.
LAG_MIN_CEILING = 0.010

_GREEN = Style(color="green")
_YELLOW = Style(color="yellow")
_RED = Style(color="red")
_CYAN = Style(color="cyan")
_DIM = Style(dim=True)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value`` (> 0)."""
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10.0**exponent
        # Tolerate float noise: 0.1 must give 0.1, not 0.2.
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


@dataclass
class Bars:
    """Vertical bars, one column per value, the newest on the right.

    Values beyond the width are dropped from the left (the oldest); with fewer values than
    columns the bars are right-aligned, so time always flows towards the right edge. A None
    value is a blank column (no data); every other value, even zero, shows at least the lowest
    eighth. ``label`` draws a gutter on the left: its width, and the texts for the top and
    bottom rows.
    """

    values: Sequence[float | None]
    _: KW_ONLY
    ceiling: float
    height: int | None = None
    style: Callable[[float], Style] | None = None
    label: tuple[int, str, str] | None = None

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = max(1, self.height or options.height or 1)
        gutter, top, bottom = self._gutter(options.max_width)
        columns = options.max_width - gutter
        shown = list(self.values[-columns:]) if columns > 0 else []
        pad = columns - len(shown)
        levels = [0 if v is None else self._eighths(v, height) for v in shown]
        styles = [self.style(v) if self.style and v is not None else Style() for v in shown]

        for row in range(height - 1, -1, -1):  # top row first
            if gutter:
                text = top if row == height - 1 else bottom if row == 0 else ""
                yield Segment(text[: gutter - 1].rjust(gutter - 1) + " ", _DIM)
            if pad:
                yield Segment(" " * pad)
            yield from _row_segments(levels, styles, row)
            yield Segment.line()

    def _gutter(self, width: int) -> tuple[int, str, str]:
        if self.label is None or self.label[0] >= width:
            return 0, "", ""
        return self.label

    def _eighths(self, value: float, height: int) -> int:
        total = height * 8
        if not value > 0 or self.ceiling <= 0:
            return 1
        return max(1, min(total, round(value / self.ceiling * total)))


def bin_series(
    points: Sequence[tuple[float, float]], *, end: float, span: float, columns: int
) -> list[float | None]:
    """Time-ordered ``(t, value)`` points as ``columns`` equal slices of ``(end - span, end]``.

    A point stands for the interval since the point before it (a lag window ends at its ``t``
    and a stalled loop delays it, so a long stall is drawn as wide as it lasted); a slice
    takes the largest value that covers it, or None when nothing does.
    """
    out: list[float | None] = [None] * max(0, columns)
    if columns <= 0 or span <= 0:
        return out
    start = end - span
    step = span / columns
    previous: float | None = None
    for t, value in points:
        since = t if previous is None else previous
        previous = t
        if t <= start or since > end:
            continue
        # Slices are (a, b]: a point exactly on a boundary belongs to the slice it ends.
        last = min(columns - 1, math.ceil((min(t, end) - start) / step) - 1)
        first = max(0, min(last, math.floor((max(since, start) - start) / step)))
        for i in range(first, last + 1):
            current = out[i]
            if current is None or value > current:
                out[i] = value
    return out


class TimeChart:
    """Bars over a fixed span of time ending at ``end``: as many slices as there are columns,
    so the chart always covers the whole span whatever the width."""

    def __init__(
        self,
        points: Sequence[tuple[float, float]],
        *,
        end: float,
        span: float,
        ceiling: float,
        height: int | None = None,
        style: Callable[[float], Style] | None = None,
        label: tuple[int, str, str] | None = None,
    ) -> None:
        self.points = points
        self.end = end
        self.span = span
        self.bars = Bars((), ceiling=ceiling, height=height, style=style, label=label)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        gutter, _, _ = self.bars._gutter(options.max_width)
        columns = options.max_width - gutter
        self.bars.values = bin_series(self.points, end=self.end, span=self.span, columns=columns)
        yield from self.bars.__rich_console__(console, options)


def _row_segments(levels: list[int], styles: list[Style], row: int) -> RenderResult:
    """One row of bars, merging neighbouring cells of the same style into one segment."""
    run: list[str] = []
    run_style: Style | None = None
    for level, style in zip(levels, styles, strict=True):
        char = EIGHTHS[max(0, min(8, level - row * 8))]
        if run and style != run_style:
            yield Segment("".join(run), run_style)
            run = []
        run.append(char)
        run_style = style
    if run:
        yield Segment("".join(run), run_style)


def lag_style(seconds: float) -> Style:
    if seconds >= LAG_BAD:
        return _RED
    if seconds >= LAG_WARN:
        return _YELLOW
    return _GREEN


def lag_chart(
    points: Sequence[tuple[float, float]], *, end: float, span: float, height: int | None = None
) -> TimeChart:
    """Lag over time on a linear scale whose ceiling (shown on the left) follows the largest
    lag in view, so the bars climb as soon as the loop blocks."""
    peak = max((v for t, v in points if t > end - span and v > 0), default=0.0)
    ceiling = nice_ceiling(max(peak, LAG_MIN_CEILING))
    return TimeChart(
        points,
        end=end,
        span=span,
        ceiling=ceiling,
        height=height,
        style=lag_style,
        label=(8, duration(ceiling), "0"),
    )


def busy_chart(
    points: Sequence[tuple[float, float]], *, end: float, span: float, height: int | None = None
) -> TimeChart:
    """A busy share (0..1) over time, on a fixed 0-100% scale."""
    return TimeChart(
        points,
        end=end,
        span=span,
        ceiling=1.0,
        height=height,
        style=lambda v: _RED if v >= 0.9 else _YELLOW if v >= 0.5 else _GREEN,
        label=(8, "100%", "0"),
    )


def trend(
    points: Sequence[tuple[float, float]], *, end: float, span: float, height: int = 1
) -> TimeChart:
    """A count over time, scaled from zero to its largest value in view."""
    peak = max((v for t, v in points if t > end - span), default=0.0)
    return TimeChart(
        points, end=end, span=span, ceiling=peak, height=height, style=lambda _v: _CYAN
    )
