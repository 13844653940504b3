"""The lag heartbeat: a callback every few milliseconds that measures how late the loop runs it."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._handover import Handover
from ._periodic import LoopContext, Periodic
from .events import LAG_BUCKETS, Lag, lag_bucket

# A loop whose beats have all been quiet (on time, and no busy period as long as the interval)
# for CALM_AFTER seconds is calm: its heartbeat, and with it its lag windows, go to one every
# CALM_WINDOW seconds. Each beat wakes the loop, the watchdog and, as it ends a window, the
# server thread: on an idle loop that was most of what the agent cost (see BENCHMARKS.md).
CALM_AFTER = 2.0
CALM_WINDOW = 1.0
# A beat hands the watchdog the GIL only when the loop thread was busy (on CPU) at least this
# share of the time since the last beat: a loop that waited for events longer let the watchdog
# have the GIL then, at no cost, and a handover would only cost it a wake-up of the watchdog.
HAND_OVER_BUSY = 0.5


class LagCollector(Periodic):
    """Schedules a heartbeat with ``loop.call_at`` and emits one `Lag` per window.

    With ``longest_busy`` (a reader of the loop's longest busy period since the last call, from
    the selector wrapper) the heartbeat is adaptive: while its lag and the loop's busy periods
    stay under ``interval`` it beats once a window, since a beat of an idle or
    evenly loaded loop measures nothing new and each one wakes the loop, and once every
    ``calm`` seconds (a window of that length) after ``calm_after`` seconds of that; the first late
    beat or long busy period puts it back at ``interval`` for at least a window. At the slow
    paces the longest busy period between two beats counts as one more lag (when longer than
    the beat's): a callback due as it began waited that long, so a stall between slow beats is
    not missed.

    Optionally it also tracks stalls for the watchdog (a `BusyTracker`), on loops whose selector
    cannot be wrapped: ``since`` is the perf_counter() time the next beat is due (the loop is
    stuck once that is past), and a beat later than ``stall_threshold`` appends ``(due, fired,
    thread CPU time)`` to ``completed``. Its beat is then where the loop thread hands the
    watchdog the GIL (`handover`), once the watchdog's look is due.
    """

    name = "lag"

    def __init__(
        self,
        context: LoopContext,
        *,
        interval: float = 0.01,
        window: float = 0.25,
        calm: float = CALM_WINDOW,
        calm_after: float = CALM_AFTER,
        idle_clock: Callable[[], float] | None = None,
        stall_threshold: float | None = None,
        longest_busy: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(context, interval)
        self._window = window
        self._calm = max(calm, window)
        self._calm_after = calm_after
        self._idle_clock = idle_clock
        self._stall_threshold = stall_threshold
        # Without the stall tracking (the watchdog relies on each beat then) it may slow down.
        self._longest_busy = longest_busy if stall_threshold is None else None
        self._quiet_under = interval
        self._quiet_since = time.perf_counter()  # when the beats began to be quiet
        self._next = interval
        self._beat_guarded = self._guard.wrap(self.name, self._beat)
        self.handover = Handover() if stall_threshold is not None else None
        self._callback = self._beat_guarded if self.handover is None else self._beat_hand_over
        self._take_gate_guarded = self._guard.wrap(self.name, self._take_gate)
        self._last_beat = (time.perf_counter(), time.thread_time())  # for the handover
        self._due = 0.0
        self._reset_window(time.perf_counter())
        self.hook = self.name
        self.since: float | None = None
        self.completed: deque[tuple[float, float, float]] = deque(maxlen=256)

    def start(self) -> None:
        """Schedule the first beat; call on the loop thread."""
        now = time.perf_counter()
        self._reset_window(now)
        self._quiet_since = now
        self._schedule(self._loop.time(), now)

    def reset(self) -> None:
        self.since = None

    def _schedule(self, now: float, perf_now: float) -> None:
        self._due = now + self._next
        if self._stall_threshold is not None:
            self.since = perf_now + self._interval
        self._handle = self._loop.call_at(self._due, self._callback)

    def _reset_window(self, perf_now: float) -> None:
        self._window_start = perf_now
        self._idle_start = self._idle_clock() if self._idle_clock is not None else 0.0
        self._counts = [0] * LAG_BUCKETS
        self._count = 0
        self._max = 0.0
        self._total = 0.0

    def _beat(self) -> None:
        if self._stopped:
            return
        now = self._loop.time()
        perf_now = time.perf_counter()
        # call_at may run a callback up to the clock resolution early.
        lag = max(0.0, now - self._due)
        self._counts[lag_bucket(lag)] += 1
        self._count += 1
        self._total += lag
        if lag > self._max:
            self._max = lag
        if self._longest_busy is not None:
            self._pace(lag, self._longest_busy(), perf_now)
        due, threshold = self.since, self._stall_threshold
        if due is not None and threshold is not None and lag >= threshold:
            # Known to the watchdog by its start: the time this beat was due.
            self.completed.append((due, perf_now, time.thread_time()))
        if perf_now - self._window_start >= self._window:
            self._emit_window(perf_now)
        self._schedule(now, perf_now)

    def _beat_hand_over(self) -> None:
        """A beat, then the GIL handed to the watchdog if its look is due and the loop is busy
        (see `_handover`)."""
        self._beat_guarded()
        handover = self.handover
        gate = self._take_gate_guarded()
        # Not guarded: an error a signal handler raises meanwhile is the program's own.
        if handover is None or gate is None or handover.wait(gate):
            return
        try:
            handover.put_back(gate, time.perf_counter())
        except Exception as e:
            self._guard.failed(self.name, e)

    def _take_gate(self) -> Any:
        """The watchdog's gate, if its look is due by the next beat and the loop thread was
        busy since the last one (None: not now)."""
        handover = self.handover
        now, cpu = time.perf_counter(), time.thread_time()
        last, last_cpu = self._last_beat
        self._last_beat = (now, cpu)
        if handover is None or cpu - last_cpu < HAND_OVER_BUSY * (now - last):
            return None
        return handover.take_early(now, self._next)

    def _pace(self, lag: float, busy: float, perf_now: float) -> None:
        """Choose the interval to the next beat from this beat's lag and the longest busy
        period since the last one."""
        if busy > lag and self._next != self._interval:
            # Between two slow beats: counted as the lag of a callback due as it began.
            self._counts[lag_bucket(busy)] += 1
            self._count += 1
            self._total += busy
            if busy > self._max:
                self._max = busy
        if lag >= self._quiet_under or busy >= self._quiet_under:
            self._quiet_since = perf_now
        quiet = perf_now - self._quiet_since
        if quiet >= self._calm_after:
            self._next = self._calm
        elif quiet >= self._window:
            self._next = self._window
        else:
            self._next = self._interval

    def _emit_window(self, perf_now: float) -> None:
        elapsed = perf_now - self._window_start
        busy = None
        if self._idle_clock is not None and elapsed > 0:
            idle = self._idle_clock() - self._idle_start
            busy = min(1.0, max(0.0, 1.0 - idle / elapsed))
        ready_queue = getattr(self._loop, "_ready", None)
        counts = self._counts
        last = max((i for i, c in enumerate(counts) if c), default=-1)
        self._emit(
            Lag(
                t=time.time(),
                loop=self._loop_id,
                window=elapsed,
                interval=self._interval,
                count=self._count,
                buckets=tuple(counts[: last + 1]),
                max=self._max,
                total=self._total,
                busy=busy,
                ready=len(ready_queue) if ready_queue is not None else None,
            )
        )
        self._reset_window(perf_now)
