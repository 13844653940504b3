"""Tasks: the latest census of each loop merged, lifecycle rates, await sites, resources."""

from __future__ import annotations

from collections import Counter, deque

from loopscope.events import Census, Lifecycle
from loopscope.model.snapshot import AwaitSiteView, ResourceView, TaskView

MAX_SITES = 50
MAX_RESOURCES = 50
TOP_CREATED = 10
# Coroutine names are few in a sane program; a program that makes up names (lambdas in a
# generated module, ...) must not grow the model without end.
_MAX_COROUTINE_NAMES = 2_000
_OTHER = "<other>"
_MAX_POINTS = 20_000


class TaskState:
    def __init__(self, series_seconds: float, recent_seconds: float) -> None:
        self._series_seconds = series_seconds
        self._recent_seconds = recent_seconds
        self._census: dict[int, Census] = {}  # loop -> latest census
        self._series: deque[tuple[float, int]] = deque(maxlen=_MAX_POINTS)
        self._lifecycle: deque[Lifecycle] = deque(maxlen=_MAX_POINTS)
        self._lifecycle_since: float | None = None  # start of the first lifecycle window
        self._created_by: Counter[str] = Counter()

    def census(self, event: Census) -> None:
        latest = self._census.get(event.loop)
        if latest is not None and latest.t > event.t:
            return
        self._census[event.loop] = event
        self._add_point(event.t)

    def lifecycle(self, event: Lifecycle) -> None:
        start = event.t - event.window
        if self._lifecycle_since is None or start < self._lifecycle_since:
            self._lifecycle_since = start
        self._lifecycle.append(event)
        horizon = event.t - self._recent_seconds - event.window
        while self._lifecycle and self._lifecycle[0].t < horizon:
            self._lifecycle.popleft()
        for name, n in event.created_by.items():
            if name not in self._created_by and len(self._created_by) >= _MAX_COROUTINE_NAMES:
                name = _OTHER
            self._created_by[name] += n

    def loop_stopped(self, loop: int, t: float) -> None:
        if self._census.pop(loop, None) is not None:
            self._add_point(t)

    def _add_point(self, t: float) -> None:
        total = sum(c.total for c in self._census.values())
        # Censuses of several loops arrive close together: keep one point per instant.
        if self._series and t - self._series[-1][0] < 0.05:
            t = max(t, self._series[-1][0])
            self._series.pop()
        self._series.append((t, total))
        horizon = t - self._series_seconds
        while self._series and self._series[0][0] < horizon:
            self._series.popleft()

    def view(self, now: float) -> TaskView:
        by_state: Counter[str] = Counter()
        by_kind: Counter[str] = Counter()
        for c in self._census.values():
            by_state.update(c.by_state)
            by_kind.update(c.by_kind)

        recent_from = now - self._recent_seconds
        recent = [e for e in self._lifecycle if recent_from < e.t <= now]
        span = 0.0
        if self._lifecycle_since is not None:
            span = min(self._recent_seconds, now - self._lifecycle_since)

        def rate(n: int) -> float:
            return n / span if span > 0 else 0.0

        series_from = now - self._series_seconds
        return TaskView(
            total=sum(c.total for c in self._census.values()),
            by_state=dict(by_state),
            by_kind=dict(by_kind),
            created_per_s=rate(sum(e.created for e in recent)),
            finished_per_s=rate(sum(e.finished for e in recent)),
            failed_per_s=rate(sum(e.failed for e in recent)),
            series=tuple(p for p in self._series if series_from <= p[0] <= now),
            top_created=tuple(self._created_by.most_common(TOP_CREATED)),
        )

    def await_sites(self) -> tuple[AwaitSiteView, ...]:
        merged: dict[tuple[str, int, str, str], AwaitSiteView] = {}
        for c in self._census.values():
            for s in c.sites:
                key = (s.file, s.line, s.function, s.kind)
                seen = merged.get(key)
                merged[key] = AwaitSiteView(
                    file=s.file,
                    line=s.line,
                    function=s.function,
                    kind=s.kind,
                    count=s.count + (seen.count if seen else 0),
                    oldest=max(s.oldest, seen.oldest if seen else 0.0),
                    route=s.route or (seen.route if seen else None),
                )
        ordered = sorted(merged.values(), key=lambda s: (-s.count, -s.oldest, s.file, s.line))
        return tuple(ordered[:MAX_SITES])

    def resources(self) -> tuple[ResourceView, ...]:
        merged = [
            ResourceView(id=r.id, type=r.type, label=r.label, waiters=r.waiters, oldest=r.oldest)
            for c in self._census.values()
            for r in c.resources
        ]
        merged.sort(key=lambda r: (-r.waiters, -r.oldest, r.id))
        return tuple(merged[:MAX_RESOURCES])
