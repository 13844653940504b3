"""What the timing rules (saturation, gc, executor, variability) share: the recent timeline,
lag percentiles over it; and what every rule renders code locations with."""

from __future__ import annotations

import os
from collections.abc import Sequence

from loopscope.events import Frame
from loopscope.model._lag import merge, percentile
from loopscope.model.location import Located
from loopscope.model.snapshot import GcSiteView, HotFrame, Snapshot, TimeBin
from loopscope.rules.finding import Location

# The rules look at the last this many seconds of the timeline.
WINDOW_S = 60.0


def recent(snapshot: Snapshot, seconds: float = WINDOW_S) -> list[TimeBin]:
    """The timeline's seconds in the last ``seconds`` of the session, oldest first."""
    start = snapshot.t - seconds
    return [b for b in snapshot.timeline if b.t >= start - 1.0]


def lag_percentiles(bins: Sequence[TimeBin]) -> tuple[float | None, float | None, float]:
    """p50, p99 and max lag over ``bins``."""
    buckets = merge(b.lag_buckets for b in bins)
    top = max((b.lag_max for b in bins if b.heartbeats), default=0.0)
    return percentile(buckets, 0.5, top), percentile(buckets, 0.99, top), top


def function_named(snapshot: Snapshot, name: str) -> Location | None:
    """A code location of the (coroutine) function ``name``: where its tasks waited or blocked.
    (Python 3.10 names functions without their class: the last part of ``name`` matches.)"""
    frames = [
        *snapshot.functions_seen,
        *(f for h in snapshot.blocks.hot for f in h.stack),
    ]
    for wanted in (name, short(name)):
        for f in frames:
            if f.function == wanted:
                return Location.of(f)
    return None


def where(frame: Frame | HotFrame | Location | GcSiteView) -> str:
    """``render (app.py:42)``."""
    return f"{short(frame.function)} ({file_line(frame)})"


def function_at(place: Located) -> str:
    """``Handler.render (app.py:42)``: the function named in full."""
    return f"{place.function} ({file_line(place)})"


def file_line(place: Located) -> str:
    """``app.py:42``."""
    return f"{os.path.basename(place.file)}:{place.line}"


def short(function: str) -> str:
    """``Handler.render`` -> ``render``."""
    return function.rsplit(".", 1)[-1]


def seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
