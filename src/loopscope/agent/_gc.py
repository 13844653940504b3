"""Garbage collection pauses, from a ``gc.callbacks`` callback.

The interpreter calls the callback as each collection starts and stops, on whichever thread
triggered it (an allocation there), with the world stopped for the collection in between. The
callback is one process-wide `GcMonitor`, shared by the `GcCollector` of every observed loop;
the first collector to start puts it in ``gc.callbacks``, the last to stop takes it out.

The callback runs for every collection, young ones included (thousands a second in a program
that allocates a lot), so it does as little as it can: it reads the clock, adds to running
totals, and keeps a collection that lasted at least ``MIN_PAUSE`` in a bounded deque. It takes
no lock (a collection triggered inside a lock holder's critical section would deadlock on it):
only the callback writes the totals, and collections never overlap. A loop timer of each
collector asks the monitor to `flush` every ``FLUSH_EVERY`` seconds; the monitor sends one
`GcWindow` per ``window`` seconds that saw a collection, from the difference of the totals.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._guard import Guard
from ._periodic import LoopContext, Periodic
from .events import Event, Frame, GcPause, GcWindow

MIN_PAUSE = 0.001  # collections at least this long are listed with their start time
MAX_PAUSES = 10  # listed per window, the longest
STACK_DEPTH = 6  # frames kept of the stack that triggered a listed collection
FLUSH_EVERY = 0.5

# Indices of the running totals.
_COLLECTED, _UNCOLLECTABLE, _PAUSE = 3, 4, 5


class GcMonitor:
    """The process's gc callback and its running totals. Thread-safe."""

    name = "gc"

    def __init__(self, emit: Callable[[Event], None], guard: Guard, *, window: float = 1.0) -> None:
        self._emit = emit
        self._guard = guard
        self._window = window
        self._lock = threading.Lock()  # users and flushes; never taken by the callback
        self._users = 0
        # Collections per generation, collected, uncollectable, seconds: written by the
        # callback only, read by `flush` as differences.
        self._totals: list[Any] = [0, 0, 0, 0, 0, 0.0]
        self._max = [0.0]  # the longest collection since the last window was sent
        self._long: deque[tuple[float, float, int, int, tuple[Frame, ...], float | None]] = deque(
            maxlen=256
        )
        # (start, duration) of the latest listed collections, for `collected_between`.
        self._recent: deque[tuple[float, float]] = deque(maxlen=64)
        self._off = [False]
        self._callback = self._make_callback()
        self._wall_offset = time.time() - time.perf_counter()
        self._last_totals = list(self._totals)
        self._window_start = time.perf_counter()

    def acquire(self) -> None:
        """One more collector uses the monitor: the callback goes in with the first."""
        with self._lock:
            self._users += 1
            if self._users == 1:
                # A callback that failed once stays off: the guard disabled it for good.
                self._off[0] = not self._guard.enabled(self.name)
                self._last_totals = list(self._totals)
                self._window_start = time.perf_counter()
                self._long.clear()
                self._max[0] = 0.0
                gc.callbacks.append(self._callback)

    def release(self) -> None:
        """One collector fewer: the callback comes out with the last."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._off[0] = True
                # The program may have taken it out itself (gc.callbacks.clear()).
                while self._callback in gc.callbacks:
                    gc.callbacks.remove(self._callback)

    def after_fork(self) -> None:
        """In the child of a fork: another thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    def collected_between(self, start: float, end: float) -> float:
        """Seconds of listed collections inside [start, end] (perf_counter times); thread-safe
        (the watchdog asks, about a block that has just ended)."""
        total = 0.0
        for began, pause in list(self._recent):  # one C-level copy
            total += max(0.0, min(end, began + pause) - max(start, began))
        return total

    @property
    def installed(self) -> bool:
        return self._callback in gc.callbacks

    def _make_callback(self) -> Callable[[str, dict[str, Any]], None]:
        clock = time.perf_counter
        totals = self._totals
        longest = self._max
        listed = self._long
        recent = self._recent
        off = self._off
        started = [0.0]
        cpu_started = [0.0]
        # A system call at each start (and at the end of the listed ones): on a machine short of
        # cores a young collection can take long in wall time, waiting for a core, and only its
        # CPU time tells that from a long collection.
        cpu_clock = time.thread_time
        get_frame = sys._getframe
        guard = self._guard
        name = self.name

        # Written out rather than behind Guard.wrap: it runs twice per collection. An error
        # disables it the same way (it stays in gc.callbacks, inert, until it is released).
        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if off[0]:
                return
            try:
                if phase == "start":
                    cpu_started[0] = cpu_clock()
                    started[0] = clock()
                    return
                began = started[0]
                pause = clock() - began
                generation = info["generation"]
                totals[generation] += 1
                collected = info["collected"]
                totals[_COLLECTED] += collected
                totals[_UNCOLLECTABLE] += info["uncollectable"]
                totals[_PAUSE] += pause
                if pause > longest[0]:
                    longest[0] = pause
                if pause >= MIN_PAUSE:
                    # The collection ran inside the frame that allocated: it is still ours.
                    try:
                        frame = get_frame(1)
                    except ValueError:  # triggered from a thread with no Python frame
                        frame = None
                    cpu = cpu_clock() - cpu_started[0]
                    listed.append((began, pause, generation, collected, _stack(frame), cpu))
                    recent.append((began, pause))
            except Exception as e:
                off[0] = True
                guard.failed(name, e)

        return on_gc

    def flush(self, *, force: bool = False) -> None:
        """Send the window if it is ``window`` seconds old (or ``force``) and saw a collection."""
        with self._lock:
            if self._users == 0 and not force:
                return
            now = time.perf_counter()
            elapsed = now - self._window_start
            if elapsed < self._window and not force:
                return
            totals = list(self._totals)  # one C-level copy: a consistent enough reading
            last, self._last_totals = self._last_totals, totals
            self._window_start = now
            counts = [totals[i] - last[i] for i in range(3)]
            if not any(counts):
                return
            longest, self._max[0] = self._max[0], 0.0
            listed = []
            while self._long:
                listed.append(self._long.popleft())
            listed.sort(key=lambda p: -p[1])
            offset = self._wall_offset
            event = GcWindow(
                t=now + offset,
                window=elapsed,
                collections=tuple(counts),
                pause=max(0.0, totals[_PAUSE] - last[_PAUSE]),
                max=max([longest, *(p[1] for p in listed)]),
                collected=totals[_COLLECTED] - last[_COLLECTED],
                uncollectable=totals[_UNCOLLECTABLE] - last[_UNCOLLECTABLE],
                pauses=tuple(
                    GcPause(
                        t=began + offset,
                        duration=pause,
                        generation=gen,
                        collected=n,
                        stack=stack,
                        cpu=cpu,
                    )
                    for began, pause, gen, n, stack, cpu in listed[:MAX_PAUSES]
                ),
                threshold=tuple(gc.get_threshold()),
                frozen=gc.get_freeze_count(),
            )
        self._emit(event)


_qualname: Callable[[Any], str] = (
    (lambda code: code.co_qualname) if sys.version_info >= (3, 11) else (lambda code: code.co_name)
)


def _stack(frame: Any) -> tuple[Frame, ...]:
    out: list[Frame] = []
    while frame is not None and len(out) < STACK_DEPTH:
        code = frame.f_code
        out.append(Frame(code.co_filename, frame.f_lineno or 0, _qualname(code)))
        frame = frame.f_back
    return tuple(out)


class GcCollector(Periodic):
    """One loop's share of the gc monitor: keeps it installed, and flushes it on a timer."""

    name = "gc"

    def __init__(
        self, context: LoopContext, monitor: GcMonitor, *, interval: float = FLUSH_EVERY
    ) -> None:
        super().__init__(context, interval)
        self._monitor = monitor
        self._started = False

    def start(self) -> None:
        """Install the callback (if no other loop has) and start the timer; on the loop thread."""
        if self._stopped:
            return
        self._monitor.acquire()
        self._started = True
        super().start()

    def reset(self) -> None:
        """Release the callback."""
        if self._started:
            self._monitor.release()

    def tick(self) -> None:
        self._monitor.flush()
