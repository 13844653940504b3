"""Timing: garbage collection pauses, the default executor, and a per-second timeline.

The timeline puts what happened in each second of the session side by side (lag, utilisation,
blocks, gc pauses, executor backlog, tasks created), so that rules can tell what coincides with
what: a lag spike in the same second as a 80 ms collection was the collection's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from loopscope.codemap import CodeMap
from loopscope.events import (
    Block,
    Census,
    ExecutorSample,
    Frame,
    GcWindow,
    Lag,
    Lifecycle,
    Submitter,
)
from loopscope.model._lag import merge, percentile
from loopscope.model.snapshot import (
    ExecutorView,
    GcPauseView,
    GcSiteView,
    GcView,
    TimeBin,
)

TIMELINE_SECONDS = 300  # seconds of timeline kept and shown
MAX_LONGEST = 50  # gc pauses kept, the longest of the session
MAX_SITES = 20
# Names and sites are few in a sane program; these bound a program that makes them up.
_MAX_KEYS = 2_000


@dataclass
class _Bin:
    t: float
    heartbeats: int = 0
    lag_buckets: list[int] = field(default_factory=list)
    lag_max: float = 0.0
    busy_time: float = 0.0  # sum of busy * window, over the windows where busy is known
    busy_window: float = 0.0
    ready: int | None = None
    blocks: int = 0
    blocked: float = 0.0
    gc_pause: float = 0.0
    gc_max: float = 0.0
    gc_full: int = 0
    executor_queued: int | None = None
    executor_busy: int | None = None
    executor_workers: int | None = None
    created: int | None = None
    frozen: TimeBin | None = None  # cached until the bin changes

    def freeze(self) -> TimeBin:
        if self.frozen is None:
            self.frozen = TimeBin(
                t=self.t,
                heartbeats=self.heartbeats,
                lag_buckets=tuple(self.lag_buckets),
                lag_max=self.lag_max,
                busy=self.busy_time / self.busy_window if self.busy_window > 0 else None,
                ready=self.ready,
                blocks=self.blocks,
                blocked=self.blocked,
                gc_pause=self.gc_pause,
                gc_max=self.gc_max,
                gc_full=self.gc_full,
                executor_queued=self.executor_queued,
                executor_busy=self.executor_busy,
                executor_workers=self.executor_workers,
                created=self.created,
            )
        return self.frozen


def _most(a: int | None, b: int) -> int:
    return b if a is None else max(a, b)


class TimingState:
    """Folds lag, block, lifecycle, gc and executor events into the timeline and the gc and
    executor views. ``code`` gives the current `CodeMap` (it arrives with the hello)."""

    def __init__(self, code: Callable[[], CodeMap]) -> None:
        self._code = code
        self._bins: dict[int, _Bin] = {}
        # gc
        self._gc_windows = 0
        self._gc_seconds = 0.0
        self._collections = [0, 0, 0]
        self._gc_pause = 0.0
        self._gc_max = 0.0
        self._collected = 0
        self._uncollectable = 0
        self._longest: list[GcPauseView] = []
        self._listed = 0.0
        self._gc_sites: dict[tuple[str, int, str], list[float]] = {}  # -> [pauses, seconds]
        self._threshold: tuple[int, ...] = ()
        self._frozen = 0
        # executors: one per pool name ("default executor", "anyio worker threads", ...)
        self._pools: dict[str, _Pool] = {}
        self._functions: dict[str, Frame] = {}

    # -- events ----------------------------------------------------------------------------

    def _bin(self, t: float) -> _Bin | None:
        if not math.isfinite(t):
            return None
        key = math.floor(t)
        b = self._bins.get(key)
        if b is None:
            b = self._bins[key] = _Bin(t=float(key))
            if len(self._bins) > TIMELINE_SECONDS + 60:
                horizon = max(self._bins) - TIMELINE_SECONDS
                for k in [k for k in self._bins if k < horizon]:
                    del self._bins[k]
        b.frozen = None
        return b

    def lag(self, event: Lag) -> None:
        if event.count <= 0 or not math.isfinite(event.max) or not math.isfinite(event.window):
            return
        b = self._bin(event.t - event.window / 2)
        if b is None:
            return
        b.heartbeats += event.count
        b.lag_buckets = merge((b.lag_buckets, event.buckets))
        b.lag_max = max(b.lag_max, event.max)
        if event.busy is not None and math.isfinite(event.busy):
            b.busy_time += event.busy * event.window
            b.busy_window += event.window
        if event.ready is not None:
            b.ready = _most(b.ready, event.ready)

    def block(self, event: Block) -> None:
        b = self._bin(event.t)
        if b is not None:
            b.blocks += 1
            b.blocked += event.duration

    def lifecycle(self, event: Lifecycle) -> None:
        if not (math.isfinite(event.window) and math.isfinite(event.t)):
            return
        start, end = event.t - max(0.0, event.window), event.t
        if end - start < 1e-6:
            b = self._bin(end)
            if b is not None:
                b.created = (b.created or 0) + event.created
            return
        # A window (longer than a second while the loop is calm) is spread over the seconds it
        # covers, by how much of it each holds: put in one second, it would make that one look
        # like a burst and leave the others without a count.
        second = math.floor(start)
        while second < end:
            share = (min(end, second + 1.0) - max(start, second)) / (end - start)
            b = self._bin(float(second))
            if b is not None and share > 0:
                b.created = (b.created or 0) + round(event.created * share)
            second += 1

    def census(self, event: Census) -> None:
        functions = self._functions
        for site in event.sites:
            if site.function not in functions and len(functions) < _MAX_KEYS:
                functions[site.function] = Frame(site.file, site.line, site.function)

    def functions_seen(self) -> tuple[Frame, ...]:
        return tuple(self._functions.values())

    def gc(self, event: GcWindow) -> None:
        if not (math.isfinite(event.pause) and math.isfinite(event.max)):
            return
        self._gc_windows += 1
        if math.isfinite(event.window):
            self._gc_seconds += max(0.0, event.window)
        for generation, n in enumerate(event.collections[:3]):
            self._collections[generation] += n
        self._gc_pause += event.pause
        self._gc_max = max(self._gc_max, event.max)
        self._collected += event.collected
        self._uncollectable += event.uncollectable
        self._threshold = event.threshold
        self._frozen = event.frozen
        listed = 0.0
        code = self._code()
        for p in event.pauses:
            if not (math.isfinite(p.duration) and math.isfinite(p.t)):
                continue
            listed += p.duration
            self._listed += p.duration
            cpu = p.cpu if p.cpu is not None and math.isfinite(p.cpu) else None
            b = self._bin(p.t)
            if b is not None:
                b.gc_pause += p.duration
                # The longest by its CPU time where known: the rest was a wait for a core, and
                # explains no lag spike of the program's.
                b.gc_max = max(b.gc_max, p.duration if cpu is None else min(p.duration, cpu))
                b.gc_full += p.generation >= 2
            location = code.locate(p.stack)
            if location is not None and code.kind(location.file) != "app":
                location = None
            self._longest.append(GcPauseView(p.t, p.duration, p.generation, location, cpu))
            if location is not None:
                key = (location.file, location.line, location.function)
                if key in self._gc_sites or len(self._gc_sites) < _MAX_KEYS:
                    site = self._gc_sites.setdefault(key, [0.0, 0.0])
                    site[0] += 1
                    site[1] += p.duration
        self._longest.sort(key=lambda p: -p.duration)
        del self._longest[MAX_LONGEST:]
        # Collections too short to be listed: counted in the window's middle second.
        b = self._bin(event.t - (event.window / 2 if math.isfinite(event.window) else 0.0))
        if b is not None:
            b.gc_pause += max(0.0, event.pause - listed)
            if not event.pauses:
                b.gc_max = max(b.gc_max, event.max)
                b.gc_full += event.collections[2] if len(event.collections) > 2 else 0

    def executor(self, event: ExecutorSample) -> None:
        pool = self._pools.get(event.pool)
        if pool is None:
            if len(self._pools) >= _MAX_POOLS:
                return
            pool = self._pools[event.pool] = _Pool(event.pool)
        pool.add(event)
        b = self._bin(event.t)
        if b is not None:
            b.executor_queued = _most(b.executor_queued, event.queued)
            b.executor_busy = _most(b.executor_busy, event.busy)
            b.executor_workers = _most(b.executor_workers, event.max_workers)

    def loop_stopped(self, loop: int) -> None:
        for pool in self._pools.values():
            pool.latest.pop(loop, None)

    # -- views -----------------------------------------------------------------------------

    def timeline(self, now: float) -> tuple[TimeBin, ...]:
        start = now - TIMELINE_SECONDS
        return tuple(self._bins[k].freeze() for k in sorted(self._bins) if start <= k <= now)

    def gc_view(self) -> GcView:
        sites = sorted(self._gc_sites.items(), key=lambda item: (-item[1][1], item[0]))
        return GcView(
            windows=self._gc_windows,
            seconds=self._gc_seconds,
            collections=tuple(self._collections),
            pause=self._gc_pause,
            max=self._gc_max,
            collected=self._collected,
            uncollectable=self._uncollectable,
            longest=tuple(self._longest),
            listed=self._listed,
            sites=tuple(
                GcSiteView(file, line, function, int(n), seconds)
                for (file, line, function), (n, seconds) in sites[:MAX_SITES]
            ),
            threshold=self._threshold,
            frozen=self._frozen,
        )

    def executor_view(self) -> ExecutorView:
        """The loops' default executors."""
        pool = self._pools.get(DEFAULT_POOL)
        return pool.view() if pool is not None else ExecutorView()

    def executor_views(self) -> tuple[ExecutorView, ...]:
        """Every pool seen: default executors, other ThreadPoolExecutors, anyio's threads."""
        return tuple(pool.view() for pool in self._pools.values())


DEFAULT_POOL = "default executor"
_MAX_POOLS = 16


class _Pool:
    """One thread pool over the session, merged across loops (each sends its own samples)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latest: dict[int, ExecutorSample] = {}  # loop -> latest sample
        self.samples = 0
        self.backlog = 0
        self.queued_max = 0
        self.queued_sum = 0
        self.submitted = 0
        self.started = 0
        self.waits: list[int] = []
        self.wait_max: float | None = None
        self.run = 0.0
        self.submitters: Counter[tuple[str, int, str]] = Counter()
        self.work: dict[tuple[str, int, str], Counter[str]] = {}
        self.running: Counter[tuple[str, int, str]] = Counter()

    def add(self, event: ExecutorSample) -> None:
        self.latest[event.loop] = event
        self.samples += 1
        full = event.max_workers > 0 and event.busy >= event.max_workers
        if event.queued > 0 and full:
            self.backlog += 1
        self.queued_max = max(self.queued_max, event.queued)
        self.queued_sum += event.queued
        self.submitted += event.submitted
        self.started += event.started
        self.waits = merge((self.waits, event.wait_buckets))
        if event.started and math.isfinite(event.wait_max):
            self.wait_max = max(self.wait_max or 0.0, event.wait_max)
        if math.isfinite(event.run):
            self.run += event.run
        for s in event.submitters:
            key = (s.file, s.line, s.function)
            if key in self.submitters or len(self.submitters) < _MAX_KEYS:
                self.submitters[key] += s.count
                self.work.setdefault(key, Counter())[s.work] += s.count
        for s in event.running:
            key = (s.file, s.line, s.function)
            if key in self.running or len(self.running) < _MAX_KEYS:
                self.running[key] += s.count

    def view(self) -> ExecutorView:
        if not self.samples:
            return ExecutorView(pool=self.name)
        latest = list(self.latest.values())
        top = self.wait_max or 0.0
        oldest = [s.oldest for s in latest if s.oldest is not None]
        return ExecutorView(
            samples=self.samples,
            max_workers=sum(s.max_workers for s in latest),
            workers=sum(s.workers for s in latest),
            busy=sum(s.busy for s in latest),
            queued=sum(s.queued for s in latest),
            oldest=max(oldest) if oldest else None,
            backlog_samples=self.backlog,
            queued_max=self.queued_max,
            queued_mean=self.queued_sum / self.samples,
            submitted=self.submitted,
            started=self.started,
            wait_p50=percentile(self.waits, 0.5, top) if self.started else None,
            wait_p99=percentile(self.waits, 0.99, top) if self.started else None,
            wait_max=self.wait_max,
            run=self.run,
            submitters=tuple(
                Submitter(file, line, function, n, self.work[key].most_common(1)[0][0])
                for key, n in self.submitters.most_common(5)
                for file, line, function in (key,)
            ),
            pool=self.name,
            running=tuple(
                Submitter(file, line, function, n, "")
                for (file, line, function), n in self.running.most_common(5)
            ),
        )
