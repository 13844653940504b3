"""The pace of the periodic passes: slow while the loop does nothing, at their interval otherwise.

A pass over the tasks of a loop that has done nothing since the last one finds what that one
found, yet each pass wakes the loop, the watchdog and the server thread. A `Pacer` doubles the
time to a collector's next pass while the loop stays quiet between passes (up to ``SLOWEST``
seconds, or the collector's own interval if longer), and goes back to the interval as soon as
the loop did anything worth a pass. Quiet is both: idle nearly all the time, and woken up
hardly more often than the agent's own timers wake it. A loop that is idle but wakes every few
milliseconds (tasks started, sleeping, finishing) keeps its passes: its task set changes.
"""

from __future__ import annotations

import time

from ._blocks import SelectorProbe

QUIET_IDLE = 0.98  # the share of the time since the last pass a quiet loop spent idle
QUIET_WAKES = 12.0  # iterations per second of a quiet loop: about what the agent's timers make
SLOWEST = 4.0


def steady(interval: float) -> float:
    """The pace of a collector without a pacer: always its interval."""
    return interval


class Pacer:
    """Called by a collector, on the loop thread, as it schedules its next pass."""

    def __init__(self, probe: SelectorProbe, slowest: float = SLOWEST) -> None:
        self._probe = probe
        self._slowest = slowest
        self._last: tuple[float, float, int] | None = None
        self._factor = 1.0

    def __call__(self, interval: float) -> float:
        now, idle, wakes = time.perf_counter(), self._probe.idle, self._probe.selects
        last, self._last = self._last, (now, idle, wakes)
        span = now - last[0] if last is not None else 0.0
        if (
            last is not None
            and span > 0
            and (idle - last[1]) / span >= QUIET_IDLE
            and (wakes - last[2]) / span <= QUIET_WAKES
        ):
            self._factor *= 2.0
        else:
            self._factor = 1.0
        paced = interval * self._factor
        if paced > max(interval, self._slowest):
            paced = max(interval, self._slowest)
            self._factor = paced / interval
        return paced
