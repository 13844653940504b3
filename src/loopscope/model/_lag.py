"""Loop lag: per-window points for the sparkline, percentiles over the recent past."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from loopscope.events import Lag, lag_bucket_upper
from loopscope.model.snapshot import LagPoint, LagView

# The deques are trimmed by time; this bounds them as well, should timestamps misbehave.
_MAX_WINDOWS = 20_000


def percentile(buckets: Sequence[int], q: float, exact_max: float) -> float | None:
    """The ``q`` quantile (0..1) of a lag histogram: the upper bound of the bucket holding it,
    never above the exact maximum observed."""
    n = sum(buckets)
    if n <= 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for i, c in enumerate(buckets):
        seen += c
        if seen >= rank:
            return min(lag_bucket_upper(i), exact_max)
    return exact_max  # pragma: no cover - seen reaches n


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    out: list[int] = []
    for h in histograms:
        if len(h) > len(out):
            out.extend([0] * (len(h) - len(out)))
        for i, c in enumerate(h):
            out[i] += c
    return out


@dataclass
class _Point:
    """A lag point being built: the windows of every loop that end about the same time."""

    t: float
    loops: set[int]
    buckets: list[int]
    max: float
    busy: list[float] = field(default_factory=list)

    def add(self, event: Lag) -> None:
        self.loops.add(event.loop)
        self.t = max(self.t, event.t)
        self.buckets = merge((self.buckets, event.buckets))
        self.max = max(self.max, event.max)
        if event.busy is not None:
            self.busy.append(event.busy)

    def freeze(self) -> LagPoint:
        return LagPoint(
            t=self.t,
            p50=percentile(self.buckets, 0.5, self.max) or 0.0,
            p99=percentile(self.buckets, 0.99, self.max) or 0.0,
            max=self.max,
            busy=sum(self.busy) / len(self.busy) if self.busy else None,
        )


class LagState:
    def __init__(self, series_seconds: float, recent_seconds: float) -> None:
        self._series_seconds = series_seconds
        self._recent_seconds = recent_seconds
        self._windows: deque[Lag] = deque(maxlen=_MAX_WINDOWS)
        self._points: deque[LagPoint] = deque(maxlen=_MAX_WINDOWS)
        self._pending: _Point | None = None
        self._ready: dict[int, int] = {}  # loop -> ready-queue length at its latest window
        self._session_max: float | None = None
        self._heartbeats = 0
        self._session_buckets: list[int] = []
        self._session_total = 0.0

    def apply(self, event: Lag) -> None:
        self._heartbeats += event.count
        if event.count > 0 and math.isfinite(event.max):
            self._session_max = max(self._session_max or 0.0, event.max)
        if event.ready is not None:
            self._ready[event.loop] = event.ready
        if not math.isfinite(event.max) or not math.isfinite(event.window):
            return  # damaged: counted, but no figure can be made from it
        self._session_buckets = merge((self._session_buckets, event.buckets))
        if math.isfinite(event.total):
            self._session_total += event.total
        self._windows.append(event)
        pending = self._pending
        # Windows of different loops that end within half a window of each other form one
        # point; a second window of a loop already in the point starts the next one.
        if (
            pending is not None
            and event.loop not in pending.loops
            and abs(event.t - pending.t) <= event.window / 2
        ):
            pending.add(event)
        else:
            if pending is not None:
                self._points.append(pending.freeze())
            self._pending = _Point(
                t=event.t,
                loops={event.loop},
                buckets=list(event.buckets),
                max=event.max,
                busy=[] if event.busy is None else [event.busy],
            )
        self._trim(event.t)

    def loop_stopped(self, loop: int) -> None:
        self._ready.pop(loop, None)

    def _trim(self, latest: float) -> None:
        horizon = latest - max(self._series_seconds, self._recent_seconds)
        while self._windows and self._windows[0].t < horizon:
            self._windows.popleft()
        while self._points and self._points[0].t < horizon:
            self._points.popleft()

    def view(self, now: float) -> LagView:
        series_from = now - self._series_seconds
        points = [p for p in self._points if series_from <= p.t <= now]
        if self._pending is not None and series_from <= self._pending.t <= now:
            points.append(self._pending.freeze())

        recent_from = now - self._recent_seconds
        recent = [w for w in self._windows if recent_from < w.t <= now and w.count > 0]
        buckets = merge(w.buckets for w in recent)
        top = max((w.max for w in recent), default=None)
        busy_time = sum(w.window for w in recent if w.busy is not None)
        busy = (
            sum(w.busy * w.window for w in recent if w.busy is not None) / busy_time
            if busy_time > 0
            else None
        )
        return LagView(
            series=tuple(points),
            p50=None if top is None else percentile(buckets, 0.5, top),
            p99=None if top is None else percentile(buckets, 0.99, top),
            max=top,
            busy=busy,
            ready=sum(self._ready.values()) if self._ready else None,
            session_max=self._session_max,
            heartbeats=self._heartbeats,
            session_buckets=tuple(self._session_buckets),
            session_total=self._session_total,
        )
