"""The skeleton of a collector that does something on the loop thread every few seconds.

A `Periodic` schedules its `tick` with ``loop.call_later``, behind the agent's `Guard` (a tick
that raises disables the collector and is reported once), at the pace its ``pace`` gives (a
`_pace.Pacer` where the loop can tell when it is idle). `stop` may be called from any thread: on
the loop thread the pending tick is cancelled; from another it fires once more and does nothing
(``TimerHandle.cancel`` is not thread-safe on every loop). `reset` forgets what the collector
holds, once stopped. A collector sets up what it holds in `setup` (the constructor calls it),
and ticks every ``default_interval`` seconds unless given another interval.

Every collector of a loop is given the same `LoopContext`: the loop, the id its events carry,
where they go and the guard its hooks run behind.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from ._guard import Guard
from ._loops import on_loop_thread
from ._pace import steady
from .events import Event


@dataclass(frozen=True, slots=True)
class LoopContext:
    """What every collector of one loop is given."""

    loop: asyncio.AbstractEventLoop
    loop_id: int  # the ``loop`` of its events
    emit: Callable[[Event], None]
    guard: Guard


class Periodic:
    name = "periodic"
    # The pace of its ticks: a `_pace.Pacer` where the loop can tell when it is idle.
    pace: Callable[[float], float] = staticmethod(steady)
    # Each interval is drawn within this share of ``interval`` either side: a pass every exactly
    # 0.5 s would keep in step with a program that does something every 0.5 s, and always see
    # the same moment of it.
    jitter = 0.0
    default_interval = 1.0

    def __init__(self, context: LoopContext, interval: float | None = None) -> None:
        self.context = context
        self._loop = context.loop
        self._loop_id = context.loop_id
        self._emit = context.emit
        self._guard = context.guard
        self._interval = self.default_interval if interval is None else interval
        self._tick = self._guard.wrap(self.name, self._run)
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False
        self._random = random.Random()
        self.setup()

    def setup(self) -> None:
        """Set up what the collector holds at first (called by the constructor)."""

    @property
    def interval(self) -> float:
        return self._interval

    def start(self) -> None:
        """Schedule the first tick; call on the loop thread."""
        if not self._stopped:
            self._handle = self._loop.call_later(self._next_interval(), self._tick)

    def stop(self) -> None:
        """Stop ticking and `reset`; callable from any thread, more than once."""
        if self._stopped:
            return
        self._stopped = True
        handle, self._handle = self._handle, None
        if handle is not None and on_loop_thread(self._loop):
            handle.cancel()
        self.reset()

    def reset(self) -> None:
        """Forget what the collector holds (it is stopped)."""

    def tick(self) -> None:
        """One pass, on the loop thread."""
        raise NotImplementedError

    def _next_interval(self) -> float:
        if self.jitter:
            return self._interval * self._random.uniform(1 - self.jitter, 1 + self.jitter)
        return self._interval

    def _run(self) -> None:
        if self._stopped:
            return
        self.tick()  # if it raises, the guard disables the collector: no next tick
        if not self._stopped:
            self._handle = self._loop.call_later(self.pace(self._next_interval()), self._tick)
