"""The model: folds events into state and hands out immutable snapshots."""

from __future__ import annotations

import dataclasses
import linecache
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from loopscope.codemap import CodeMap
from loopscope.events import (
    Block,
    Census,
    Duplicates,
    Event,
    ExecutorSample,
    ExternalSamples,
    ExternalTasks,
    GcWindow,
    Hello,
    Lag,
    Lifecycle,
    LoopStarted,
    LoopStopped,
    LostUpdate,
    NeverAwaited,
    Notice,
    RaceWindow,
    RaceWindows,
    SourceState,
    TargetExited,
    TaskErrors,
    TaskList,
)
from loopscope.model._blocks import BlockState, Outside
from loopscope.model._contention import ContentionState
from loopscope.model._duplicates import DuplicateState
from loopscope.model._errors import ErrorState
from loopscope.model._external import ExternalState
from loopscope.model._lag import LagState
from loopscope.model._leak import GrowthState
from loopscope.model._monitor import MonitorState
from loopscope.model._races import RaceState
from loopscope.model._routes import RouteTracker
from loopscope.model._tasklist import TaskListState
from loopscope.model._tasks import TaskState
from loopscope.model._timing import TimingState
from loopscope.model.snapshot import ExitInfo, LoopInfo, Snapshot, SourceInfo, TargetInfo

LAG_SERIES_SECONDS = 60.0  # how far back the lag and task series go
RECENT_SECONDS = 10.0  # the window of "now" figures: lag percentiles, rates, recent blocks
MAX_NOTICES = 50
MAX_LOOPS = 32  # loops listed; a program that keeps making loops has its oldest stopped dropped


def _linecache_line(file: str, line: int) -> str:
    return linecache.getline(file, line)


class Model:
    """Everything known about one target, from its events. Not thread-safe: one writer."""

    def __init__(self, *, source_line: Callable[[str, int], str] = _linecache_line) -> None:
        self._started: float | None = None
        self._latest: float | None = None
        self._target: TargetInfo | None = None
        self._loops: dict[int, LoopInfo] = {}
        self._sources: dict[str, SourceInfo] = {}
        self._exited: ExitInfo | None = None
        self._notices: deque[str] = deque(maxlen=MAX_NOTICES)
        self._lag = LagState(LAG_SERIES_SECONDS, RECENT_SECONDS)
        self._tasks = TaskState(LAG_SERIES_SECONDS, RECENT_SECONDS)
        self._blocks = BlockState(RECENT_SECONDS, source_line)
        self._contention = ContentionState()
        self._growth = GrowthState(LAG_SERIES_SECONDS)
        self._errors = ErrorState()
        self._task_list = TaskListState()
        self._races = RaceState()
        self._duplicates = DuplicateState()
        self._external = ExternalState(LAG_SERIES_SECONDS, RECENT_SECONDS)
        self._monitor = MonitorState()
        self._timing = TimingState(lambda: self._blocks.code)
        self._routes = RouteTracker()
        # Who folds in each type of event, in order: a new event needs its line here and
        # nothing in apply(). (A subclass of a listed type goes to its nearest listed base.)
        self._handlers: dict[type[Event], tuple[Callable[[Any], None], ...]] = {
            Lag: (self._lag.apply, self._timing.lag),
            Census: (
                self._tasks.census,
                self._contention.census,
                self._growth.census,
                self._timing.census,
                self._routes.census,
            ),
            Lifecycle: (self._tasks.lifecycle, self._timing.lifecycle),
            Block: (self._block_event,),
            RaceWindow: (self._races.observed,),
            RaceWindows: (self._races.scanned,),
            LostUpdate: (self._races.lost,),
            Duplicates: (self._duplicates.apply,),
            ExternalSamples: (self._external_samples,),
            ExternalTasks: (self._monitor.apply,),
            GcWindow: (self._timing.gc,),
            ExecutorSample: (self._timing.executor,),
            Hello: (self._hello,),
            LoopStarted: (self._loop_started,),
            LoopStopped: (self._loop_stopped,),
            SourceState: (self._source_state,),
            TargetExited: (self._target_exited,),
            TaskErrors: (self._errors.task_errors,),
            NeverAwaited: (self._errors.never_awaited,),
            Notice: (self._notice,),
            TaskList: (self._task_list.apply,),
        }

    def apply(self, event: Event) -> None:
        t = event.t
        # A damaged recording can carry an infinite time or duration (non-finite numbers
        # travel as null); one such event must not turn every figure into infinity.
        if not math.isfinite(t) or (
            isinstance(event, Block) and not 0.0 <= event.duration < math.inf
        ):
            return
        if self._started is None or t < self._started:
            self._started = t
        # A block's t is its start, so it lags behind the events sent before it; the clock
        # is the furthest point events describe.
        end = t + event.duration if isinstance(event, Block) else t
        if self._latest is None or end > self._latest:
            self._latest = end

        for handler in self._handlers_of(type(event)):
            handler(event)
        for block, outside in self._external.expire(t):
            self._block(block, outside)

    def _handlers_of(self, kind: type[Event]) -> tuple[Callable[[Any], None], ...]:
        """The handlers of ``kind``, or of the nearest of its base classes that has some."""
        handlers = self._handlers.get(kind)
        if handlers is None:
            bases = (self._handlers.get(base) for base in kind.__mro__[1:])
            handlers = self._handlers[kind] = next((h for h in bases if h is not None), ())
        return handlers

    def _block_event(self, event: Block) -> None:
        for block, outside in self._external.block(event):
            self._block(block, outside)

    def _external_samples(self, event: ExternalSamples) -> None:
        for block, outside in self._external.samples(event, self._blocks.code):
            self._block(block, outside)

    def _hello(self, event: Hello) -> None:
        self._target = TargetInfo(
            pid=event.pid,
            python=event.python,
            executable=event.executable,
            argv=event.argv,
            agent_version=event.agent_version,
            cwd=event.cwd,
        )
        self._blocks.code = CodeMap(event.stdlib_paths, event.site_paths)
        self._errors.code = self._blocks.code

    def _loop_started(self, event: LoopStarted) -> None:
        # (a new loop may reuse the id of a stopped one: its ids are id(loop))
        stopped = [i.loop for i in self._loops.values() if not i.running and i.loop != event.loop]
        for loop in stopped:
            self._forget_loop(loop, event.t)
        self._external.loop_started(
            event.loop, event.thread_id, main=event.thread_name == "MainThread"
        )
        self._loops[event.loop] = LoopInfo(
            loop=event.loop,
            thread_name=event.thread_name,
            loop_class=event.loop_class,
            features=event.features,
            unavailable=event.unavailable,
            running=True,
        )
        for loop in stopped[: max(0, len(self._loops) - MAX_LOOPS)]:
            del self._loops[loop]

    def _loop_stopped(self, event: LoopStopped) -> None:
        info = self._loops.get(event.loop)
        if info is not None:
            self._loops[event.loop] = dataclasses.replace(info, running=False)
        # The last loop to stop keeps its final census and lag in view: that is the
        # program's last picture. Any other stopped loop no longer counts.
        if any(i.running for i in self._loops.values()):
            self._forget_loop(event.loop, event.t)

    def _source_state(self, event: SourceState) -> None:
        if event.source in ("py-spy", "remote_stacks"):
            for block, outside in self._external.sampler(event.state == "live", event.source):
                self._block(block, outside)
        self._sources[event.source] = SourceInfo(
            name=event.source, state=event.state, detail=event.detail
        )

    def end(self) -> None:
        """The source has no more events: the blocks held for an outside sampler's samples of
        their span are added with what samples came."""
        for block, outside in self._external.release():
            self._block(block, outside)

    def _target_exited(self, event: TargetExited) -> None:
        self._exited = ExitInfo(t=event.t, exit_code=event.exit_code, reason=event.reason)

    def _notice(self, event: Notice) -> None:
        self._notices.append(
            event.message if event.level == "info" else f"{event.level}: {event.message}"
        )

    def _block(self, block: Block, outside: Outside | None) -> None:
        """A block, once py-spy's samples, if it waited for them, have come."""
        self._blocks.apply(block, outside)
        self._timing.block(block)
        self._routes.block(block, self._blocks.code)

    def _forget_loop(self, loop: int, t: float) -> None:
        self._lag.loop_stopped(loop)
        self._tasks.loop_stopped(loop, t)
        self._contention.loop_stopped(loop)
        self._growth.loop_stopped(loop)
        self._task_list.loop_stopped(loop)
        self._timing.loop_stopped(loop)
        self._routes.loop_stopped(loop)

    def snapshot(self, now: float | None = None) -> Snapshot:
        """The state at ``now`` (default: the time of the latest event). Once the target has
        exited, time stops there, so what it did last stays in view."""
        latest = self._latest if self._latest is not None else 0.0
        if now is None or (self._exited is not None and now > latest):
            now = latest
        started = self._started
        return Snapshot(
            t=now,
            started=started,
            duration_s=max(0.0, now - started) if started is not None else 0.0,
            target=self._target,
            loops=tuple(self._loops.values()),
            sources=tuple(self._sources.values()),
            exited=self._exited,
            lag=self._lag.view(now),
            tasks=self._tasks.view(now),
            await_sites=self._tasks.await_sites(),
            resources=self._tasks.resources(),
            blocks=self._blocks.view(now),
            notices=tuple(self._notices),
            contention=self._contention.view(),
            site_growth=self._growth.view(now),
            task_errors=self._errors.errors_view(),
            never_awaited=self._errors.unawaited_view(),
            never_awaited_dropped=self._errors.dropped_unawaited,
            task_list=self._task_list.view(),
            races=self._races.view(),
            duplicates=self._duplicates.view(),
            external=self._external.view(now),
            monitor=self._monitor.view(),
            gc=self._timing.gc_view(),
            executor=self._timing.executor_view(),
            executors=self._timing.executor_views(),
            timeline=self._timing.timeline(now),
            functions_seen=self._timing.functions_seen(),
            routes=self._routes.view(),
            route_waits=self._routes.waits(),
        )
