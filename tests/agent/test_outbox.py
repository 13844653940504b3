"""When an event wakes the agent's server thread: a periodic summary waits (at most COALESCE)
for the next wakeup while events come close together or the server is up and about, and wakes
it when events come far apart and it sleeps with nothing queued; any other event wakes it at
once."""

from __future__ import annotations

import select
from collections.abc import Iterator

import pytest

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
