from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import loopscope.session as session_module
from builders import app, block, census, hello, lag
from loaded import rss_kib
from loopscope.events import Event, TargetExited
from loopscope.session import Session, View
from loopscope.sources.base import ListSource

RENDER = [app(42, "render_report", "app.py")]


def events() -> list[Event]:
    out: list[Event] = [hello(100.0)]
    out += [lag(100.0 + i * 0.25, [0.001] * 20 + [0.05]) for i in range(1, 41)]
    out += [block(101.0 + i, 0.06, RENDER) for i in range(5)]
    out += [census(110.0, total=12), TargetExited(t=110.0, exit_code=0)]
    return out


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met before the deadline")
        time.sleep(0.005)


def check_view(view: View) -> None:
    snap = view.snapshot
    assert snap.target is not None and snap.target.pid == 4242
    assert snap.t == 110.0
    assert snap.duration_s == 10.0
    assert snap.blocks.count == 5
    assert snap.tasks.total == 12
    assert snap.exited is not None and snap.exited.exit_code == 0
    assert [f.code for f in view.findings] == ["LS101"]


def test_feed_all_reads_the_whole_source() -> None:
    session = Session(ListSource(events()))
    assert not session.ended
    session.feed_all()
    assert session.ended
    assert session.error is None
    check_view(session.view())


def test_start_reads_on_a_thread() -> None:
    session = Session(ListSource(events()))
    session.start()
    assert session.wait(10.0)
    assert session.ended
    check_view(session.view())
    session.close()
    with pytest.raises(RuntimeError):
        session.start()


def test_an_empty_source() -> None:
    session = Session(ListSource([]))
    session.feed_all()
    view = session.view()
    assert session.ended
    assert view.findings == ()
    assert view.snapshot.started is None


class WaitingSource:
    """Yields its events, then waits (like a live socket) until it is closed."""

    def __init__(self, events: list[Event]) -> None:
        self._events = events
        self._closed = threading.Event()
        self.yielded = 0

    def events(self) -> Iterator[Event]:
        for e in self._events:
            self.yielded += 1
            yield e
        self._closed.wait()

    def close(self) -> None:
        self._closed.set()


def test_close_stops_a_live_source_and_joins_the_thread() -> None:
    source = WaitingSource(events()[:5])
    session = Session(source)
    session.start()
    until(lambda: source.yielded == 5)
    assert not session.wait(0.01)
    assert not session.ended
    session.close()
    assert session.ended
    assert session._thread is not None and not session._thread.is_alive()


def test_the_clock_sets_the_snapshot_time() -> None:
    now = [101.0]
    session = Session(ListSource(events()[:3]), clock=lambda: now[0])
    session.feed_all()
    assert session.view().snapshot.t == 101.0
    now[0] = 400.0
    view = session.view()
    assert view.snapshot.t == 400.0
    assert view.snapshot.lag.max is None  # nothing in the last ten seconds


class FailingSource:
    def events(self) -> Iterator[Event]:
        yield hello(1.0)
        yield lag(2.0, [0.001])
        raise ConnectionResetError("agent went away")

    def close(self) -> None:
        pass


def test_a_failing_source_ends_the_session_and_keeps_the_error() -> None:
    session = Session(FailingSource())
    session.start()
    until(lambda: session.ended)
    assert session.error == "ConnectionResetError: agent went away"
    snap = session.view().snapshot
    assert snap.notices[-1] == "error: source failed: ConnectionResetError: agent went away"
    assert snap.lag.heartbeats == 1
    session.close()


def test_views_can_be_taken_while_the_thread_reads() -> None:
    many = [hello(0.0)] + [
        e for i in range(2000) for e in (lag(i * 0.25, [0.001]), census(i * 0.25, total=i))
    ]
    source = WaitingSource(many)
    session = Session(source)
    session.start()
    seen = []
    until(lambda: seen.append(session.view().snapshot.lag.heartbeats) or source.yielded == 4001)
    until(lambda: session.view().snapshot.lag.heartbeats == 2000)
    assert seen == sorted(seen)
    session.close()


def test_a_live_session_hands_free_memory_back_and_a_replay_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(session_module, "release_free_memory", lambda: calls.append(1.0))
    monkeypatch.setattr(session_module, "TRIM_EVERY_S", 0.0)
    Session(ListSource(events())).feed_all()  # a replay: its clock is the events'
    assert calls == []
    live = Session(ListSource(events()), clock=time.time)
    live.feed_all()
    assert len(calls) == len(events())  # every event, at an interval of 0
    monkeypatch.setattr(session_module, "TRIM_EVERY_S", 3600.0)
    calls.clear()
    Session(ListSource(events()), clock=time.time).feed_all()
    assert calls == []  # not before the interval


def test_free_memory_goes_back_to_the_system_where_the_c_library_can() -> None:
    trim = session_module._find_trim()
    if trim is None:
        pytest.skip("the C library has no malloc_trim (not glibc): nothing to hand back")
    # 80 MiB of malloc'd blocks, freed under a block allocated after them: the allocator cannot
    # shrink its heap past that one by itself, and keeps the pages until asked.
    held = [bytearray(4096) for _ in range(20_000)]
    pin = bytearray(4096)
    del held
    before = rss_kib(os.getpid())
    trim()
    after = rss_kib(os.getpid())
    assert before - after >= 40 * 1024, (before, after)
    del pin
