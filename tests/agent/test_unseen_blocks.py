"""A block with no stack sample is C code holding the GIL only if the watchdog was due to look
in it and waited for the GIL there: a calm watchdog looks every 40 ms, and a shorter block of
Python code can fall between two looks whole. Seen on a service rendering its Prometheus
metrics on the loop (25-30 ms a scrape): half its blocks had no sample, and all of them were
reported as C code holding the GIL, with a process pool for the fix.

The watchdog's looks here are the test's, taken from a thread of its own at set moments: the
real `Watchdog._poll`, with the sleep before it as the watchdog's thread would have had it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from agent_harness import wait_until

from builders import hello
from loopscope.agent._blocks import SelectorProbe, Watchdog, _OwnQueue
from loopscope.agent._guard import Guard
from loopscope.events import Block, Event
from loopscope.model import Model

# A regular expression that backtracks: the C engine holds the GIL for the whole match.
BACKTRACKS = re.compile(r"(a+)+$")


def _match_taking(seconds: float) -> str:
    """A text whose match takes ``seconds`` of CPU (wall time on a loaded machine is longer,
    never shorter)."""
    n = 16
    while True:
        text = "a" * n + "b"
        start = time.thread_time()
        BACKTRACKS.match(text)
        if time.thread_time() - start >= seconds:
            return text
        n += 1


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class _Looks:
    """A loop with the selector probe, a watchdog that is not started, and a thread that takes
    its looks when told to."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        guard = Guard(self.events.append)
        self.loop = asyncio.new_event_loop()
        self.probe = SelectorProbe(self.loop._selector, 0.02, guard)  # type: ignore[attr-defined]
        self.probe.install()
        self.watchdog = Watchdog(self.events.append, guard)
        self.watchdog.add(
            self.loop,
            id(self.loop),
            threading.get_ident(),
            self.probe,
            precise=True,
            native_id=threading.get_native_id(),
        )
        self.watchdog._leave_gates(None)  # no gates: this thread takes no turns with the loop
        self.queued: float | None = None  # the looking thread's run-queue wait so far
        self._orders: list[Callable[[], None]] = []
        self._order = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="looks")
        self._thread.start()
        wait_until(lambda: self.queued is not None, 10.0, "the looking thread to start")

    def _run(self) -> None:
        own = _OwnQueue()
        self.watchdog._own = own
        self.queued = own.waited()
        try:
            while not self._done:
                self._order.wait(10.0)
                self._order.clear()
                while self._orders:
                    self._orders.pop(0)()
                self.queued = own.waited()
        finally:
            own.close()

    def due(self, at: float) -> None:
        """The watchdog's last sleep was to end at ``at``."""
        assert self.queued is not None
        self.watchdog._asleep = (at, self.queued, sys.getswitchinterval())

    def look(self) -> None:
        """Have the looking thread look now, its sleep due as `due` last said."""
        self._orders.append(self.watchdog._poll)
        self._order.set()

    def look_on_time(self) -> None:
        self._orders.append(lambda: self.due(time.perf_counter()))
        self.look()

    def blocks(self) -> list[Block]:
        return [e for e in self.events if isinstance(e, Block)]

    def close(self) -> None:
        self._done = True
        self._order.set()
        self._thread.join(10.0)
        self.watchdog.stop()
        self.probe.remove()
        self.loop.close()


@pytest.fixture
def looks() -> Iterator[_Looks]:
    looks = _Looks()
    try:
        yield looks
    finally:
        looks.close()


def _cause(block: Block) -> str:
    model = Model()
    paths = sysconfig.get_paths()
    model.apply(
        dataclasses.replace(
            hello(), stdlib_paths=(paths["stdlib"],), site_paths=(paths["purelib"],)
        )
    )
    model.apply(block)
    (record,) = model.snapshot().blocks.recent
    return record.cause


def test_a_block_no_look_fell_in_is_not_taken_for_the_gil(looks: _Looks) -> None:
    async def scenario() -> None:
        await asyncio.sleep(0.02)
        looks.look_on_time()  # while the loop waits
        await asyncio.sleep(0.02)
        _burn(0.03)  # Python code, between two looks

    looks.loop.run_until_complete(scenario())
    wait_until(lambda: looks.probe.completed, 10.0, "the burn's busy period to end")
    looks.look_on_time()  # the next look, on time, after the block
    (block,) = wait_until(looks.blocks, 10.0, "the block")
    assert block.samples == 0 and block.held == 0.0, block
    assert _cause(block) != "gil", block


def test_a_block_the_watchdog_waited_in_for_the_gil_is_the_gils(looks: _Looks) -> None:
    text = _match_taking(0.06)
    # (calibrated again: the first matches of a pattern are not its slowest)
    text = _match_taking(0.06)

    async def scenario() -> None:
        await asyncio.sleep(0.02)
        looks.look_on_time()  # while the loop waits, just before the match
        await asyncio.sleep(0.005)
        looks.due(time.perf_counter() + 0.01)
        looks.look()  # due 10 ms into the match: the looking thread waits for the GIL
        BACKTRACKS.match(text)
        await asyncio.sleep(0.05)

    looks.loop.run_until_complete(scenario())
    looks.look_on_time()  # reports the block if the late look found it still going
    (block,) = wait_until(looks.blocks, 10.0, "the block")
    # Due 10 ms in, the look waited for the GIL to the end of a match of 60 ms or more, less
    # the switch interval that Python code may keep it (5 ms).
    assert block.held >= 0.03, block
    assert block.samples <= 1, block
    assert _cause(block) == "gil", block
