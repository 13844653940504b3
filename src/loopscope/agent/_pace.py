"""The pace of the periodic passes: slow while the loop does nothing, at their interval otherwise.

A pass over the tasks of a loop that has been idle since the last one mostly finds what that one
found, yet each pass wakes the loop, the watchdog and the server thread. A `Pacer` doubles the
time to a collector's next pass while the loop stays idle between passes (up to ``SLOWEST``
seconds, or the collector's own interval if longer), and goes back to the interval as soon as
the loop did anything worth a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable

QUIET_IDLE = 0.98  # the share of the time since the last pass a quiet loop spent idle
SLOWEST = 4.0


def steady(interval: float) -> float:
    """The pace of a collector without a pacer: always its interval."""
    return interval


class Pacer:
    """Called by a collector, on the loop thread, as it schedules its next pass."""

    def __init__(self, idle_clock: Callable[[], float], slowest: float = SLOWEST) -> None:
        self._idle_clock = idle_clock
        self._slowest = slowest
        self._last: tuple[float, float] | None = None
        self._factor = 1.0

    def __call__(self, interval: float) -> float:
        now, idle = time.perf_counter(), self._idle_clock()
        last, self._last = self._last, (now, idle)
        if last is not None and now > last[0] and (idle - last[1]) / (now - last[0]) >= QUIET_IDLE:
            self._factor *= 2.0
        else:
            self._factor = 1.0
        paced = interval * self._factor
        if paced > max(interval, self._slowest):
            paced = max(interval, self._slowest)
            self._factor = paced / interval
        return paced
