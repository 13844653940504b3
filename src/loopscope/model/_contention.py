"""Contention: each synchronisation object with waiters, followed from census to census."""

from __future__ import annotations

from collections import deque

from loopscope.events import Census, Frame, Resource
from loopscope.model._bounds import keep_latest
from loopscope.model.snapshot import ContentionView

MAX_TRACKED = 100  # resources followed; the one seen with waiters longest ago goes first
MAX_SAMPLES = 240  # censuses kept per resource: two minutes at the agent's 2 Hz
MAX_WAITS = 2_000  # longest-wait samples kept per resource for its percentiles
MAX_VIEWS = 50

_Key = tuple[int, int, str]  # (loop, resource id, type): ids are reused once an object is freed


class _Tracked:
    __slots__ = (
        "censuses",
        "first_t",
        "id",
        "kind",
        "label",
        "last_t",
        "loop",
        "peak",
        "samples",
        "site",
        "type",
        "waits",
    )

    def __init__(self, loop: int, resource: Resource, t: float) -> None:
        self.loop = loop
        self.id = resource.id
        self.type = resource.type
        self.label = resource.label
        self.kind = resource.kind
        self.site: Frame | None = resource.site
        self.peak = 0
        self.first_t = t
        self.last_t = t
        self.censuses = 0
        self.samples: deque[tuple[float, int, float]] = deque(maxlen=MAX_SAMPLES)
        self.waits: deque[float] = deque(maxlen=MAX_WAITS)

    def seen(self, resource: Resource, t: float) -> None:
        self.label = resource.label
        if resource.kind:
            self.kind = resource.kind
        if resource.site is not None:
            self.site = resource.site
        self.peak = max(self.peak, resource.waiters)
        self.last_t = t
        self.censuses += 1
        self.samples.append((t, resource.waiters, resource.oldest))
        self.waits.append(resource.oldest)


class ContentionState:
    def __init__(self) -> None:
        self._tracked: dict[_Key, _Tracked] = {}
        self._view: tuple[ContentionView, ...] | None = ()

    def census(self, event: Census) -> None:
        t, loop = event.t, event.loop
        present: set[_Key] = set()
        for resource in event.resources:
            if resource.waiters <= 0:
                continue
            key = (loop, resource.id, resource.type)
            tracked = self._tracked.get(key)
            if tracked is None:
                tracked = self._tracked[key] = _Tracked(loop, resource, t)
            tracked.seen(resource, t)
            present.add(key)
        for key, tracked in self._tracked.items():
            if tracked.loop == loop and key not in present:
                tracked.samples.append((t, 0, 0.0))
        keep_latest(self._tracked, MAX_TRACKED, lambda r: r.last_t)
        self._view = None

    def loop_stopped(self, loop: int) -> None:
        # Its resources' history stays: what piled up before the loop stopped still happened.
        self._view = None

    def view(self) -> tuple[ContentionView, ...]:
        if self._view is None:
            views = [_view_of(t) for t in self._tracked.values()]
            views.sort(key=lambda v: (-v.peak, -v.wait_max, v.id))
            self._view = tuple(views[:MAX_VIEWS])
        return self._view


def _view_of(tracked: _Tracked) -> ContentionView:
    waits = sorted(tracked.waits)
    samples = tuple(tracked.samples)
    return ContentionView(
        id=tracked.id,
        loop=tracked.loop,
        type=tracked.type,
        label=tracked.label,
        kind=tracked.kind,
        site=tracked.site,
        waiters=samples[-1][1] if samples else 0,
        peak=tracked.peak,
        first_t=tracked.first_t,
        last_t=tracked.last_t,
        censuses=tracked.censuses,
        wait_p50=percentile(waits, 0.50),
        wait_p99=percentile(waits, 0.99),
        wait_max=waits[-1] if waits else 0.0,
        samples=samples,
    )


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values (nearest rank); 0.0 for none."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.5) - 1))
    return ordered[rank]
