"""The replay timeline: the whole recording in one line, with its blocks, and where the replay
is; a click seeks there."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from loopscope.replay import ReplayClock
from loopscope.report import duration as short_duration

_BAR = "─"
_BLOCKS = " ▂▄▆█"  # by the longest block in a cell; " " is none


def clock_time(seconds: float) -> str:
    """Elapsed time as m:ss.s, or h:mm:ss past an hour."""
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        h, rest = divmod(int(seconds), 3600)
        return f"{h}:{rest // 60:02d}:{rest % 60:02d}"
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}"


def timeline(
    width: int,
    *,
    start: float,
    end: float,
    now: float,
    blocks: Sequence[tuple[float, float]],
    playing: bool,
    speed: float,
) -> Text:
    """Two lines: the bar (blocks marked, the position highlighted), then the transport state."""
    width = max(10, width)
    span = max(end - start, 1e-9)
    longest = [0.0] * width
    for t, d in blocks:
        i = min(width - 1, max(0, int((t - start) / span * width)))
        longest[i] = max(longest[i], d)
    worst = max(longest, default=0.0) or 1.0
    at = min(width - 1, max(0, int((now - start) / span * width)))
    bar = Text()
    for i, d in enumerate(longest):
        if d > 0:
            level = max(1, min(4, round(d / worst * 4)))
            cell, style = _BLOCKS[level], "red"
        else:
            cell, style = _BAR, "dim"
        bar.append(cell, style=f"reverse {style}" if i == at else style)
    state = Text()
    state.append("▶ playing" if playing else "⏸ paused", style="bold green" if playing else "bold")
    state.append(f"  {speed:g}×  ")  # noqa: RUF001 (the multiplication sign is meant)
    state.append(f"{clock_time(now - start)} / {clock_time(end - start)}", style="bold")
    if blocks:
        state.append(
            f"  {len(blocks)} blocks, longest {short_duration(max(d for _, d in blocks))}",
            style="dim",
        )
    return Text("\n").join([bar, state])


class Timeline(Widget):
    """The recording's timeline; follows ``clock`` and seeks it on a click."""

    DEFAULT_CSS = """
    Timeline {
        height: 2;
        padding: 0 1;
        background: $panel;
    }
    """

    class Seeked(Message):
        """The user clicked the timeline: the replay moved to ``t``."""

        def __init__(self, t: float) -> None:
            super().__init__()
            self.t = t

    def __init__(
        self, clock: ReplayClock, blocks: Sequence[tuple[float, float]], *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.blocks = tuple(blocks)

    def on_mount(self) -> None:
        self.set_interval(0.25, self.refresh)

    def render(self) -> Text:
        return timeline(
            self.content_size.width,
            start=self.clock.start,
            end=self.clock.end,
            now=self.clock.now(),
            blocks=self.blocks,
            playing=self.clock.playing,
            speed=self.clock.speed,
        )

    def on_click(self, event: events.Click) -> None:
        width = max(10, self.content_size.width)
        x = event.x - self.styles.padding.left
        if not 0 <= x < width:
            return
        t = self.clock.start + (x + 0.5) / width * (self.clock.end - self.clock.start)
        self.clock.seek(t)
        self.refresh()
        self.post_message(self.Seeked(self.clock.now()))
