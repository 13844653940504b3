"""Task growth by await site: how many tasks wait at each site, census after census.

Leaked tasks are almost always waiting (on an event never set, a queue nobody fills, a long
sleep), so the await site whose population grows with the live task count says which code
leaks them.
"""

from __future__ import annotations

from collections import deque

from loopscope.events import Census
from loopscope.model._bounds import keep_latest
from loopscope.model.snapshot import SiteGrowth
from loopscope.model.trend import slope

MAX_TRACKED = 300  # sites followed per session; the one idle longest goes first
MAX_POINTS = 400
MAX_VIEWS = 10

_Key = tuple[int, str, int, str, str]  # (loop, file, line, function, kind)


class _Series:
    __slots__ = ("last_seen", "points")

    def __init__(self) -> None:
        self.points: deque[tuple[float, int]] = deque(maxlen=MAX_POINTS)
        self.last_seen = 0.0


class GrowthState:
    def __init__(self, series_seconds: float) -> None:
        self._seconds = series_seconds
        self._sites: dict[_Key, _Series] = {}
        self._view: tuple[SiteGrowth, ...] | None = ()
        self._view_now = 0.0

    def census(self, event: Census) -> None:
        t, loop = event.t, event.loop
        present = set()
        for s in event.sites:
            key = (loop, s.file, s.line, s.function, s.kind)
            series = self._sites.get(key)
            if series is None:
                series = self._sites[key] = _Series()
            series.points.append((t, s.count))
            series.last_seen = t
            present.add(key)
        horizon = t - self._seconds
        for key, series in list(self._sites.items()):
            if key[0] != loop or key in present:
                continue
            if series.last_seen < horizon:
                del self._sites[key]  # idle for the whole span: nothing to trend
            else:
                series.points.append((t, 0))
        keep_latest(self._sites, MAX_TRACKED, lambda s: s.last_seen)
        self._view = None

    def loop_stopped(self, loop: int) -> None:
        for key in [k for k in self._sites if k[0] == loop]:
            del self._sites[key]
        self._view = None

    def view(self, now: float) -> tuple[SiteGrowth, ...]:
        """The sites whose population grew over the last ``series_seconds``, fastest first."""
        if self._view is not None and now == self._view_now:
            return self._view
        start = now - self._seconds
        out = []
        for (_, file, line, function, kind), series in self._sites.items():
            points = [(t, float(n)) for t, n in series.points if start <= t <= now]
            if len(points) < 2 or points[-1][1] <= points[0][1]:
                continue
            out.append(
                SiteGrowth(
                    file=file,
                    line=line,
                    function=function,
                    kind=kind,
                    count=int(points[-1][1]),
                    slope=slope(points),
                    span=points[-1][0] - points[0][0],
                    first=int(points[0][1]),
                )
            )
        out.sort(key=lambda g: (-g.slope, g.file, g.line))
        self._view = tuple(out[:MAX_VIEWS])
        self._view_now = now
        return self._view
