"""When an event wakes the agent's server thread: a periodic summary waits (at most COALESCE)
for the next wakeup while events come close together or the server is up and about, and wakes
it when events come far apart and it sleeps with nothing queued; any other event wakes it at
once."""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator

import pytest

from loopscope.agent import _server
from loopscope.agent._server import COALESCE, IDLE_TICK, Outbox
from loopscope.events import Lag, Notice

SUMMARY = Lag(t=1.0, loop=1, window=1.0, interval=0.01, count=1, buckets=(1,), max=0.0, total=0.0)


def woken(outbox: Outbox) -> bool:
    readable, _, _ = select.select([outbox], [], [], 0)
    return bool(readable)


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    box = Outbox()
    yield box
    box.close()


def test_a_summary_wakes_a_server_that_sleeps_with_nothing_queued(outbox: Outbox) -> None:
    outbox.emit(SUMMARY)  # the first wakes it
    assert woken(outbox)
    assert outbox.drain() == [SUMMARY]
    assert outbox.timeout() == IDLE_TICK  # nothing queued: it sleeps until an event comes
    outbox.emit(SUMMARY)  # within COALESCE of the last wakeup, yet it wakes the sleeper
    assert woken(outbox)
    outbox.awake()
    assert outbox.drain() == [SUMMARY]
    # Two wakeups close together: events come often, and wait for the next wakeup again, which
    # comes at most COALESCE after the last.
    assert 0 < outbox.timeout() <= COALESCE
    outbox.emit(SUMMARY)
    assert not woken(outbox)


def test_a_summary_waits_for_a_server_that_is_up_and_about(outbox: Outbox) -> None:
    outbox.emit(SUMMARY)
    outbox.drain()
    outbox.emit(SUMMARY)  # the server has not gone to sleep again: it waits for the next time
    assert not woken(outbox)
    assert outbox.timeout() == COALESCE  # ... which is at most COALESCE from now
    outbox.awake()
    outbox.emit(Notice(t=2.0, level="warning", message="x"))  # anything else wakes it at once
    assert woken(outbox)
    assert len(outbox.drain()) == 2


def _held_gate() -> threading.Lock:
    gate = threading.Lock()
    gate.acquire()
    return gate


def test_while_the_watchdog_relays_summaries_wait_for_it_and_it_passes_the_gates_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(_server.time, "monotonic", lambda: clock[0])
    outbox = Outbox()
    try:
        _relayed(outbox, clock)
    finally:
        outbox.close()


def _relayed(outbox: Outbox, clock: list[float]) -> None:
    outbox.sleeping = True  # the server sleeps in its select()
    outbox.emit(SUMMARY)  # events come often (see above): later summaries wait
    outbox.drain()
    outbox.emit(SUMMARY)
    outbox.drain()
    assert not outbox.relay([])  # no gates: nothing relayed, summaries wake as before
    gate = _held_gate()
    assert not outbox.relay([gate])  # nothing queued
    outbox.emit(SUMMARY)
    assert not woken(outbox)
    assert not outbox.relay([gate])  # queued for less than COALESCE
    clock[0] += COALESCE
    outbox.emit(SUMMARY)  # COALESCE since the last wakeup, yet the relay wakes it, not this
    assert not woken(outbox)
    # With nothing drained, the server wakes on its own only if the watchdog stops looking.
    assert outbox.timeout() == 2 * COALESCE
    assert outbox.relay([gate])  # the watchdog's look: the server is woken and has the gate
    assert woken(outbox)
    assert not gate.acquire(blocking=False)
    assert len(outbox.drain()) == 2
    outbox.open_gates()  # the server, its work done
    assert gate.acquire(blocking=False)
    outbox.awake()
    assert outbox.timeout() == IDLE_TICK  # the relay wakes it for the summaries to come
    outbox.emit(Notice(t=2.0, level="warning", message="x"))  # anything else at once
    assert woken(outbox)
    # Woken, it may be waiting for the GIL: the next look passes it the gates to open.
    gate = _held_gate()
    assert outbox.relay([gate])
    outbox.drain()
    outbox.sleeping = False  # up and about (sending, say): it gets them too
    later = _held_gate()
    assert outbox.relay([later])
    outbox.open_gates()
    assert gate.acquire(blocking=False) and later.acquire(blocking=False)


def test_gates_the_server_never_opened_are_opened_as_the_outbox_closes() -> None:
    box = Outbox()
    box.sleeping = True
    box.emit(Notice(t=2.0, level="warning", message="x"))
    box.drain()
    box.emit(SUMMARY)
    gate = _held_gate()
    box._woken[1] -= COALESCE  # the last wakeup was COALESCE ago
    assert box.relay([gate])
    box.close()
    assert gate.acquire(blocking=False)
    assert not box.relay([_held_gate()])  # closed: nothing to wake
