"""The watchdog takes the GIL from a busy loop at the loop's next select(), not by a race.

A thread waiting for the GIL is woken each time the holder lets go of it; a loop that is never
idle lets go only for an instant at each select(), so the waiter kept losing, woken thousands of
times a second for as long as it waited, and each wake cost the loop thread a system call.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import wait_until

import loopscope.agent
from loopscope.agent import _handover
from loopscope.agent._blocks import SelectorProbe, Watchdog
from loopscope.agent._guard import Guard
from loopscope.agent._handover import Handover
from loopscope.agent._lag import LagCollector
from loopscope.agent._periodic import LoopContext
from loopscope.events import Event


class _Gated:
    """A wrapped selector whose probe holds a locked gate, due as the test sets it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.selector = selectors.DefaultSelector()
        self.probe = SelectorProbe(self.selector, 0.02, Guard(self.events.append))
        self.probe.install()
        assert self.probe.handover is not None
        self.handover = self.probe.handover
        self.gate = threading.Lock()
        self.gate.acquire()
        self.handover.gate = self.gate

    def due_in(self, seconds: float) -> float:
        self.handover.due = time.perf_counter() + seconds
        return self.handover.due

    def select_in_thread(self, timeout: float = 0) -> tuple[threading.Thread, list[float]]:
        took: list[float] = []

        def run() -> None:
            start = time.perf_counter()
            self.selector.select(timeout)
            took.append(time.perf_counter() - start)

        thread = threading.Thread(target=run)
        thread.start()
        return thread, took

    def select(self, timeout: float = 0) -> float:
        """How long a select() took, in a thread of its own."""
        thread, took = self.select_in_thread(timeout)
        thread.join(5.0)
        assert took, "select() did not return"
        return took[0]


@pytest.fixture
def gated() -> Iterator[_Gated]:
    made = _Gated()
    yield made
    made.probe.remove()
    made.selector.close()


def test_a_select_waits_at_the_gate_once_the_look_is_due_until_it_opens(
    gated: _Gated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_handover, "HANDOVER_WAIT", 10.0)  # long enough to see it wait
    gated.due_in(0.0)
    thread, took = gated.select_in_thread()
    # The loop thread waits for the gate, GIL released: this thread runs meanwhile.
    wait_until(lambda: gated.handover.gate is None, 5.0, "the loop thread to take the gate")
    assert gated.handover.gate is None and gated.handover.due == float("inf")
    assert thread.is_alive() and not took  # still at the gate
    gated.gate.release()
    thread.join(5.0)
    assert took and took[0] <= 5.0
    assert not gated.events  # nothing failed


def test_a_gate_nobody_opens_holds_the_loop_at_most_the_handover_wait(gated: _Gated) -> None:
    gated.due_in(0.0)
    took = gated.select()
    assert _handover.HANDOVER_WAIT * 0.9 <= took < 0.5, took
    assert not gated.events


def test_a_gate_nobody_opened_is_put_back_ever_further_off_then_dropped(gated: _Gated) -> None:
    """A watchdog that had no core in the millisecond the loop waited would otherwise wait for
    the GIL through the loop's iterations until its next look."""
    gated.due_in(0.0)
    for missed in range(1, _handover.HANDOVER_RETRIES + 1):
        before = time.perf_counter()
        gated.select()
        after = time.perf_counter()
        assert gated.handover.gate is gated.gate and gated.handover.missed == missed
        off = _handover.HANDOVER_AFTER * 2**missed
        assert before + off <= gated.handover.due <= after + off
        wait_until(
            lambda: time.perf_counter() >= gated.handover.due, 5.0, "the put-back gate to be due"
        )
    gated.select()  # missed once more: dropped, so a starved watchdog holds the loop no more
    assert gated.handover.gate is None and gated.handover.due == float("inf")
    gated.select()
    assert not gated.events


def test_a_gate_is_not_put_back_once_the_watchdog_has_looked(
    gated: _Gated, monkeypatch: pytest.MonkeyPatch
) -> None:
    watchdog = Watchdog(gated.events.append, Guard(gated.events.append))
    monkeypatch.setattr(_handover, "HANDOVER_WAIT", 0.2)
    # The watchdog looked while the loop waited and left a new gate, but its look outlasted
    # the wait, so the old gate was still shut: the new one stays, due when the watchdog said,
    # and counts no miss.
    gated.handover.missed = 3
    gated.due_in(0.0)
    thread, took = gated.select_in_thread()
    wait_until(lambda: gated.handover.gate is None, 5.0, "the loop thread to take the gate")
    watchdog._leave_gate(gated.probe, 60.0 + time.perf_counter())
    left, due = gated.handover.gate, gated.handover.due
    thread.join(5.0)
    assert took and left is not None and left is not gated.gate
    assert gated.handover.gate is left and gated.handover.due == due and gated.handover.missed == 0
    assert not gated.events


def test_a_select_before_the_look_is_due_or_that_may_wait_does_not_wait_at_the_gate(
    gated: _Gated,
) -> None:
    due = gated.due_in(60.0)
    for _ in range(20):
        gated.select()
        assert gated.handover.gate is gated.gate and gated.handover.due == due  # not taken
    # Due, but select() may wait for events (no callbacks ready): the GIL is free then.
    due = gated.due_in(0.0)
    gated.select(0.0001)
    assert gated.handover.gate is gated.gate and gated.handover.due == due


async def churn(seconds: float) -> None:
    """Batches of short coroutines gathered: the loop never waits in select()."""

    async def short() -> None:
        await asyncio.sleep(0)

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        await asyncio.gather(*[short() for _ in range(100)])


def _need_two_cores_and_wakeup_counts() -> None:
    if os.cpu_count() == 1:
        pytest.skip("needs two cores: on one, the GIL is handed over with the core")
    if _voluntary_switches(threading.get_native_id()) is None:
        pytest.skip("needs /proc/self/task/*/status to count a thread's wake-ups")


def _voluntary_switches(native_id: int) -> int | None:
    try:
        with open(f"/proc/self/task/{native_id}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@pytest.mark.serial  # counts a thread's wake-ups while another thread keeps a core busy
def test_the_watchdog_looks_at_a_busy_loop_on_time_and_is_not_woken_by_each_iteration() -> None:
    _need_two_cores_and_wakeup_counts()
    events: list[Event] = []
    guard = Guard(events.append)
    loop = asyncio.new_event_loop()
    probe = SelectorProbe(loop._selector, 0.02, guard)  # type: ignore[attr-defined]
    watchdog = Watchdog(events.append, guard)
    late: list[float] = []
    poll = watchdog._poll

    def timed_poll() -> float | None:
        due = watchdog._asleep[0]
        if due:
            late.append(time.perf_counter() - due)
        return poll()

    watchdog._poll = timed_poll  # type: ignore[method-assign]

    probe.install()
    watchdog.add(loop, id(loop), threading.get_ident(), probe, precise=True)
    watchdog.start()
    try:
        loop.run_until_complete(churn(1.5))  # past the watchdog's first looks
        native = watchdog._thread.native_id
        assert native is not None
        late.clear()
        before = _voluntary_switches(native)
        selects = probe.selects
        loop.run_until_complete(churn(2.0))
        woken = _voluntary_switches(native)
        looks = len(late)
        selects = probe.selects - selects
    finally:
        watchdog.stop()
        probe.remove()
        loop.close()
    assert before is not None and woken is not None
    assert not [e for e in events if getattr(e, "kind", "") == "notice"], events
    assert looks >= 20, f"the watchdog looked {looks} times in 2 s"
    # It is woken for each look, and for the GIL on the loop's iterations in the millisecond
    # before the loop hands it over (about 8 a look on 2 cores); before the loop handed it over
    # at select(), it was woken on most of the loop's iterations (about 400 a look).
    per_look = (woken - before) / looks
    assert per_look < 30, (per_look, woken - before, looks, selects)
    assert statistics.median(late) < 0.01, sorted(late)[len(late) // 2 :]


def test_an_error_raised_by_a_signal_handler_during_the_wait_reaches_the_loop(
    gated: _Gated, monkeypatch: pytest.MonkeyPatch
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread, and this test is not on it")
    monkeypatch.setattr(_handover, "HANDOVER_WAIT", 10.0)

    def handler(signum: int, frame: object) -> None:
        raise RuntimeError("the program's own")

    previous = signal.signal(signal.SIGUSR1, handler)
    sender = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        gated.due_in(0.0)
        sender.start()
        started = time.perf_counter()
        with pytest.raises(RuntimeError, match="the program's own"):
            gated.selector.select(0)
        assert time.perf_counter() - started < 5.0
        assert not gated.events  # not taken for a fault of the probe's
    finally:
        sender.cancel()
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("gil", [True, False], ids=["gil", "free-threaded"])
def test_the_watchdog_leaves_gates_only_where_threads_take_turns_with_a_gil(
    gated: _Gated, monkeypatch: pytest.MonkeyPatch, gil: bool
) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil, raising=False)
    watchdog = Watchdog(gated.events.append, Guard(gated.events.append))
    loop = asyncio.new_event_loop()
    try:
        gated.handover.gate = None
        watchdog.add(loop, id(loop), threading.get_ident(), gated.probe, precise=True)
        assert (gated.handover.gate is not None) is gil  # for the first look
        watchdog._leave_gates(0.01)  # as after a look, before a sleep of 10 ms
        left = gated.handover.gate
        assert (left is not None) is gil
        assert (gated.handover.due < float("inf")) is gil
        watchdog._leave_gates(None)  # as the watchdog stops: every gate opened, none left
        assert gated.handover.gate is None and gated.handover.due == float("inf")
        if left is not None:
            assert left.acquire(blocking=False)
    finally:
        loop.close()


@pytest.mark.serial  # counts a thread's wake-ups while another thread keeps a core busy
def test_under_churn_the_server_is_woken_for_summaries_at_the_watchdogs_looks(
    tmp_path: Path,
) -> None:
    _need_two_cores_and_wakeup_counts()

    async def main() -> tuple[list[float], dict[str, str]]:
        agent = loopscope.agent.install(socket_path=str(tmp_path / "a.sock"))
        try:
            await churn(1.5)  # past the agent's start
            threads = {t.name: t.native_id for t in threading.enumerate()}
            native = threads["loopscope-server"]
            assert native is not None
            rates = []
            for _ in range(3):
                before = _voluntary_switches(native)
                started = time.perf_counter()
                await churn(1.0)
                woken = _voluntary_switches(native)
                assert before is not None and woken is not None
                rates.append((woken - before) / (time.perf_counter() - started))
            return rates, dict(agent.guard.disabled)
        finally:
            loopscope.agent.uninstall()

    rates, disabled = asyncio.run(main())
    assert not disabled
    # About 2 a second: one for each two summaries' worth (more in a second in which the
    # server's work outlasted the loop's wait at the gate). Woken by the summaries itself, it
    # waited for the GIL until the loop's next gate: 150-300 a second.
    assert min(rates) < 20, rates


def test_a_heartbeat_takes_the_gate_when_the_look_is_due_before_the_next_beat() -> None:
    """On uvloop (no selector to wrap) the heartbeat, every few milliseconds, is where the loop
    hands over the GIL: it takes the gate when the next beat would come after the look is due,
    and wakes the watchdog if that look is still ahead."""
    handover, waker = Handover(), threading.Event()
    gate = threading.Lock()
    now = time.perf_counter()
    handover.leave(gate, now + 0.05, waker)
    assert handover.take_early(now, 0.01) is None  # the next beat comes first
    assert handover.gate is gate and not waker.is_set()
    assert handover.take_early(now + 0.045, 0.01) is gate  # before the look: woken for it
    assert handover.gate is None and handover.due == float("inf") and waker.is_set()
    waker.clear()
    handover.leave(gate, now + 0.05, waker)
    assert handover.take_early(now + 0.0495, 0.01) is gate  # its look is due: it is awake
    assert not waker.is_set()
    assert handover.take_early(now + 1.0, 0.01) is None  # taken already


def test_a_heartbeat_hands_over_only_from_a_busy_loop() -> None:
    """A loop that waited for events since the last beat let the watchdog have the GIL then: a
    handover would only cost it a wake-up of the watchdog (idle on uvloop: 30 a second more)."""
    events: list[Event] = []
    loop = asyncio.new_event_loop()
    try:
        lag = LagCollector(
            LoopContext(loop, id(loop), events.append, Guard(events.append)), stall_threshold=0.02
        )
        handover, waker = lag.handover, threading.Event()
        assert handover is not None
        gate = threading.Lock()

        def beat_after(busy: bool) -> None:
            # The last beat 5 ms ago, the loop thread on CPU all that time or none of it.
            now, cpu = time.perf_counter(), time.thread_time()
            lag._last_beat = (now - 0.005, cpu - 0.005 if busy else cpu)
            handover.leave(gate, time.perf_counter(), waker)  # the look is due now
            lag._beat_hand_over()

        beat_after(busy=False)
        assert handover.gate is gate  # not taken
        beat_after(busy=True)
        assert handover.gate is None and handover.due == float("inf")  # taken, and passed
        assert not [e for e in events if getattr(e, "kind", "") == "notice"], events
    finally:
        loop.close()


@pytest.mark.serial  # counts threads' wake-ups while another thread keeps a core busy
def test_on_uvloop_the_heartbeat_hands_the_watchdog_and_the_server_the_gil(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_two_cores_and_wakeup_counts()
    uvloop = pytest.importorskip("uvloop", reason="uvloop is a dev dependency of loopscope")
    looks = [0]
    poll = Watchdog._poll

    def counted(self: Watchdog) -> float | None:
        looks[0] += 1
        return poll(self)

    monkeypatch.setattr(Watchdog, "_poll", counted)

    async def main() -> tuple[dict[str, float], int, dict[str, str]]:
        agent = loopscope.agent.install(socket_path=str(tmp_path / "a.sock"))
        try:
            await churn(1.5)  # past the agent's start
            threads = {t.name: t.native_id for t in threading.enumerate()}
            names = ("loopscope-watchdog", "loopscope-server")
            before = {name: _voluntary_switches(threads[name] or 0) for name in names}
            looks[0] = 0
            started = time.perf_counter()
            await churn(2.0)
            took = time.perf_counter() - started
            looked = looks[0]
            woken = {}
            for name in names:
                first, last = before[name], _voluntary_switches(threads[name] or 0)
                assert first is not None and last is not None
                woken[name] = last - first
            rates = {"server a second": woken["loopscope-server"] / took}
            rates["watchdog a look"] = woken["loopscope-watchdog"] / max(looked, 1)
            return rates, looked, dict(agent.guard.disabled)
        finally:
            loopscope.agent.uninstall()

    rates, looked, disabled = uvloop.run(main())
    assert not disabled
    assert looked >= 20, f"the watchdog looked {looked} times in 2 s"
    # About 1 a look and 2 a second (up to 20 a look with the machine's cores busy elsewhere,
    # and 52 a second once in 50 runs: blocks a loaded machine makes wake the server at once).
    # Before the heartbeat handed the GIL over, each waited for it through the loop's
    # iterations: 120-200 a look (3,000 a second) and about 400 a second.
    assert rates["watchdog a look"] < 30 and rates["server a second"] < 150, (rates, looked)
