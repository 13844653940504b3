"""The heartbeat's pace on a real event loop: every ``interval`` while the loop is busy, once a
window once it is quiet, once every ``calm`` seconds once it has been quiet for ``calm_after``;
the first stall puts it back at ``interval``, and a stall between slow beats is still counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from loopscope.agent._guard import Guard
from loopscope.agent._lag import LagCollector
from loopscope.agent._periodic import LoopContext
from loopscope.events import Event, Lag

INTERVAL = 0.01
WINDOW = 0.05
CALM = 0.3
CALM_AFTER = 0.3
DEADLINE = 20.0


@pytest.mark.serial  # judges beats 10 ms apart, each on time
def test_a_quiet_loop_beats_less_often_and_a_stall_brings_the_interval_back() -> None:
    out: list[Event] = []
    busy = [0.0]  # the longest busy period since the last beat, as the selector wrapper says

    def longest_busy() -> float:
        value, busy[0] = busy[0], 0.0
        return value

    async def main() -> list[Lag]:
        loop = asyncio.get_running_loop()
        lag = LagCollector(
            LoopContext(loop, id(loop), out.append, Guard(out.append)),
            interval=INTERVAL,
            window=WINDOW,
            calm=CALM,
            calm_after=CALM_AFTER,
            longest_busy=longest_busy,
        )
        lag.start()
        deadline = time.monotonic() + DEADLINE

        async def windows_until(done: Callable[[list[Lag]], bool]) -> list[Lag]:
            while not done(seen := [e for e in out if isinstance(e, Lag)]):
                assert time.monotonic() < deadline, seen
                await asyncio.sleep(0.01)
            return seen

        # Calm: two windows in a row as long as the calm pace.
        await windows_until(lambda s: len(s) >= 2 and all(w.window >= 0.8 * CALM for w in s[-2:]))
        # A stall between two calm beats: counted, and the beats go back to the interval.
        seen = len([e for e in out if isinstance(e, Lag)])
        time.sleep(0.06)
        busy[0] = 0.06
        after = await windows_until(lambda s: len(s) >= seen + 3)
        lag.stop()
        return after[seen - 2 :]

    calm_a, calm_b, stalled, back, slow = asyncio.run(main())[:5]
    assert calm_a.count == calm_b.count == 1  # one beat a window
    assert calm_b.window < 2 * CALM
    assert stalled.max >= 0.06 and stalled.count == 2  # the beat, and the stall between beats
    # Back at the interval for a window: a short window of many beats; then quiet again, at one
    # beat a window.
    assert back.window < 3 * WINDOW and back.count >= 3
    assert slow.window < 3 * WINDOW and slow.count == 1
