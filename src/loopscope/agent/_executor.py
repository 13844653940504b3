"""The loop's default executor: its backlog, its busy workers, and how long work waits in it.

The default executor (``loop._default_executor``, a ThreadPoolExecutor) appears when the program
first calls ``run_in_executor(None, ...)`` or ``asyncio.to_thread``; a loop timer looks for it
every ``INTERVAL`` seconds, reads its queue and workers, and sends an `ExecutorSample`.

To time the queue, the collector wraps the executor's ``submit`` on the instance (restored on
`stop`): each work item is noted with the time it was submitted and where from (the innermost
application frame), and runs inside a small function that notes when a worker took it up and
how long it ran. Workers append to deques and set and pop dict keys (single operations, safe
across threads without a lock); the loop timer reads them. A work item costs a few
microseconds more, against the tens that ``run_in_executor`` itself costs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ._codemap import local_map
from ._guard import Guard
from ._loops import on_loop_thread
from .events import LAG_BUCKETS, Event, ExecutorSample, Submitter, lag_bucket

INTERVAL = 0.5
QUIET_EVERY = 5.0  # an idle executor is reported this often, a working one at every tick
MAX_SUBMITTERS = 5
MAX_SITES = 200  # distinct (site, work) pairs kept per window
MAX_DEPTH = 8  # frames walked up from submit() to find the application's

_SKIP_DIRS = tuple(
    os.path.dirname(f) + os.sep
    for f in (getattr(asyncio, "__file__", None), getattr(concurrent.futures, "__file__", None))
    if f
)
_SKIP_FILES = frozenset(
    f for f in (getattr(functools, "__file__", None), getattr(contextvars, "__file__", None)) if f
)
_own_file = globals().get("__file__")
_OWN_DIR = os.path.dirname(os.path.abspath(_own_file)) + os.sep if _own_file else None

_qualname: Callable[[Any], str] = (
    (lambda code: code.co_qualname) if sys.version_info >= (3, 11) else (lambda code: code.co_name)
)


def _skipped(filename: str) -> bool:
    return (
        filename.startswith(_SKIP_DIRS)
        or filename in _SKIP_FILES
        or (_OWN_DIR is not None and filename.startswith(_OWN_DIR))
    )


def _work_name(fn: Any) -> str:
    """The function a work item runs: through ``to_thread``'s ``partial(context.run, f)``."""
    for _ in range(3):
        if isinstance(fn, functools.partial):
            inner: Any = fn.func
            if isinstance(getattr(inner, "__self__", None), contextvars.Context):
                fn = fn.args[0] if fn.args else inner
            else:
                fn = inner
        else:
            break
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return str(name)


class _Work:
    """What the submit wrapper and the workers note, for the timer to read."""

    def __init__(self) -> None:
        self.tokens = itertools.count()
        self.waiting: dict[int, float] = {}  # token -> submitted (perf_counter), oldest first
        self.running: dict[int, float] = {}  # token -> started
        self.waits: deque[float] = deque(maxlen=50_000)  # queue waits of items taken up
        self.runs: deque[float] = deque(maxlen=50_000)  # run times of items ended
        self.submitted = 0  # written by submitters (one thread in practice: the loop's)
        self.sites: dict[tuple[Any, int, str], int] = {}


def _run(work: _Work, token: int, fn: Any, args: Any, kwargs: Any) -> Any:
    """A work item, as a worker runs it."""
    clock = time.perf_counter
    started = clock()
    submitted = work.waiting.pop(token, None)
    if submitted is not None:
        work.waits.append(started - submitted)
    work.running[token] = started
    try:
        return fn(*args, **kwargs)
    finally:
        work.running.pop(token, None)
        work.runs.append(clock() - started)


class ExecutorCollector:
    """Samples the loop's default executor on a loop timer; wraps its ``submit``."""

    name = "executor"

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        loop_id: int,
        emit: Callable[[Event], None],
        guard: Guard,
        *,
        interval: float = INTERVAL,
    ) -> None:
        self._loop = loop
        self._loop_id = loop_id
        self._emit = emit
        self._guard = guard
        self._interval = interval
        self._tick_guarded = guard.wrap(self.name, self._tick)
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False
        self._work = _Work()
        self._executor: Any = None  # the executor whose submit is wrapped
        self._wrapper: Callable[..., Any] | None = None
        self._window_start = time.perf_counter()
        self._last_sent = float("-inf")

    def start(self) -> None:
        """Start the timer; call on the loop thread."""
        if self._stopped:
            return
        self._window_start = time.perf_counter()
        self._handle = self._loop.call_later(self._interval, self._tick_guarded)

    def stop(self) -> None:
        """Stop the timer and restore the executor's ``submit``; callable from any thread."""
        if self._stopped:
            return
        self._stopped = True
        handle, self._handle = self._handle, None
        if handle is not None and on_loop_thread(self._loop):
            handle.cancel()
        self._unwrap()

    @property
    def wrapped(self) -> Any:
        """The executor whose ``submit`` is wrapped now, if any."""
        return self._executor

    def _tick(self) -> None:
        if self._stopped:
            return
        try:
            executor = getattr(self._loop, "_default_executor", None)
            if executor is not None:
                if executor is not self._executor:
                    self._unwrap()
                    self._wrap(executor)
                self._sample(executor)
        finally:
            if not self._stopped:
                self._handle = self._loop.call_later(self._interval, self._tick_guarded)

    # -- the wrapper ------------------------------------------------------------------------

    def _wrap(self, executor: Any) -> None:
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            self._executor = executor  # sampled, not timed
            return
        original = executor.submit
        work = self._work = _Work()
        note = self._guard.wrap(self.name, self._note, fallback=None)
        guard = self._guard
        name = self.name

        def submit(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            if name in guard.disabled:
                return original(fn, *args, **kwargs)
            token = note(work, fn)
            if token is None:
                return original(fn, *args, **kwargs)
            try:
                return original(_run, work, token, fn, args, kwargs)
            except BaseException:
                work.waiting.pop(token, None)
                raise

        executor.submit = submit  # type: ignore[method-assign]
        self._executor = executor
        self._wrapper = submit

    def _unwrap(self) -> None:
        executor, wrapper = self._executor, self._wrapper
        self._executor = self._wrapper = None
        # Something patched submit over ours: leave theirs (ours passes through once disabled).
        if executor is not None and wrapper is not None and vars(executor).get("submit") is wrapper:
            del executor.submit

    @staticmethod
    def _note(work: _Work, fn: Any) -> int:
        """Note a work item being submitted; its token."""
        token = next(work.tokens)
        work.waiting[token] = time.perf_counter()
        work.submitted += 1
        frame: Any = sys._getframe(3)  # _note <- guard <- submit <- its caller
        # The submitter is the innermost application frame (not the framework's that runs a
        # sync endpoint in a thread for it); else the innermost frame outside the machinery.
        first = None
        code = local_map()
        for _ in range(MAX_DEPTH):
            if frame is None:
                break
            filename = frame.f_code.co_filename
            if not _skipped(filename):
                if code.is_app(filename):
                    first = frame
                    break
                if first is None:
                    first = frame
            frame = frame.f_back
        frame = first
        if frame is not None:
            sites = work.sites
            key = (frame.f_code, frame.f_lineno, _work_name(fn))
            if key in sites or len(sites) < MAX_SITES:
                sites[key] = sites.get(key, 0) + 1
        return token

    # -- sampling ---------------------------------------------------------------------------

    def _sample(self, executor: Any) -> None:
        now = time.perf_counter()
        work = self._work
        waits = _take(work.waits)
        runs = _take(work.runs)
        submitted, work.submitted = work.submitted, 0
        sites, work.sites = work.sites, {}
        threads = getattr(executor, "_threads", ())
        workers = len(threads)
        queue = getattr(executor, "_work_queue", None)
        queued = queue.qsize() if queue is not None else 0
        busy = len(work.running)
        idle = getattr(getattr(executor, "_idle_semaphore", None), "_value", None)
        if isinstance(idle, int):
            busy = max(busy, workers - idle)  # items submitted before the wrapper went in
        busy = min(busy, workers)
        oldest = None
        if queued and work.waiting:
            try:
                oldest = now - next(iter(work.waiting.values()))
            except (RuntimeError, StopIteration):  # a worker took an item meanwhile
                oldest = None
        active = bool(submitted or waits or runs or queued or busy)
        if not active and now - self._last_sent < QUIET_EVERY:
            return
        self._last_sent = now
        counts = [0] * LAG_BUCKETS
        for w in waits:
            counts[lag_bucket(w)] += 1
        last = max((i for i, c in enumerate(counts) if c), default=-1)
        elapsed = now - self._window_start
        self._window_start = now
        self._emit(
            ExecutorSample(
                t=time.time(),
                loop=self._loop_id,
                window=elapsed,
                max_workers=int(getattr(executor, "_max_workers", 0) or 0),
                workers=workers,
                busy=busy,
                queued=queued,
                oldest=oldest,
                submitted=submitted,
                started=len(waits),
                wait_buckets=tuple(counts[: last + 1]),
                wait_max=max(waits, default=0.0),
                run=sum(runs),
                submitters=_submitters(sites),
            )
        )


def _take(queue: deque[float]) -> list[float]:
    out = []
    while queue:
        out.append(queue.popleft())
    return out


def _submitters(sites: dict[tuple[Any, int, str], int]) -> tuple[Submitter, ...]:
    by_site: dict[tuple[Any, int], Counter[str]] = {}
    for (code, line, work), n in list(sites.items()):
        by_site.setdefault((code, line), Counter())[work] += n
    ranked = sorted(by_site.items(), key=lambda item: -sum(item[1].values()))
    return tuple(
        Submitter(
            file=code.co_filename,
            line=line,
            function=_qualname(code),
            count=sum(works.values()),
            work=works.most_common(1)[0][0],
        )
        for (code, line), works in ranked[:MAX_SUBMITTERS]
    )
