"""Several sources read as one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from loopscope.events import Event, Notice, SourceState, TargetExited
from loopscope.sources.base import ListSource
from loopscope.sources.merge import Fallback, MergedSource


class Endless:
    """Says it is live, then waits until closed, then says it ended."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def events(self) -> Iterator[Event]:
        yield SourceState(t=1.0, source="py-spy", state="live")
        self._closed.wait(30)
        yield SourceState(t=3.0, source="py-spy", state="ended", detail="closed")

    def close(self) -> None:
        self._closed.set()


class Failing:
    def events(self) -> Iterator[Event]:
        yield SourceState(t=1.0, source="aiomonitor", state="live")
        raise RuntimeError("boom")

    def close(self) -> None:
        pass


def test_the_leader_ending_closes_the_others_and_the_exit_comes_last() -> None:
    leader = ListSource([SourceState(t=1.0, source="agent", state="live"),
                         TargetExited(t=2.0, exit_code=None, reason="exited")])  # fmt: skip
    events = list(MergedSource([leader, Endless()], leader=leader).events())
    assert isinstance(events[-1], TargetExited)
    states = [(e.source, e.state) for e in events if isinstance(e, SourceState)]
    assert sorted(states) == [("agent", "live"), ("py-spy", "ended"), ("py-spy", "live")]


def test_without_a_leader_it_lasts_until_every_source_ends() -> None:
    a = ListSource([Notice(t=1.0, level="info", message="a")])
    b = ListSource([Notice(t=2.0, level="info", message="b")])
    events = list(MergedSource([a, b]).events())
    assert sorted(e.message for e in events if isinstance(e, Notice)) == ["a", "b"]


def test_a_failing_source_ends_with_a_notice_and_the_others_go_on() -> None:
    other = ListSource([Notice(t=2.0, level="info", message="still here")])
    events = list(MergedSource([Failing(), other]).events())
    messages = [e.message for e in events if isinstance(e, Notice)]
    assert "still here" in messages
    assert "a source failed: RuntimeError: boom" in messages


def test_close_ends_every_source() -> None:
    endless = Endless()
    merged = MergedSource([endless, Endless()])
    events = merged.events()
    assert isinstance(next(events), SourceState)
    merged.close()
    rest = list(events)
    assert [e.state for e in rest if isinstance(e, SourceState)].count("ended") == 2


def _states(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.source, e.state) for e in events if isinstance(e, SourceState)]


def test_a_sampler_that_cannot_run_hands_over_to_its_fallback() -> None:
    remote = ListSource([SourceState(t=1.0, source="remote_stacks", state="unavailable",
                                     detail="cannot find a thread's current frame")])  # fmt: skip
    pyspy = ListSource([SourceState(t=2.0, source="py-spy", state="live")])
    events = list(Fallback(remote, pyspy, live=lambda: False).events())
    assert _states(events) == [("remote_stacks", "unavailable"), ("py-spy", "live")]


def test_a_sampler_that_ran_is_not_followed_by_its_fallback() -> None:
    remote = ListSource([SourceState(t=1.0, source="remote_stacks", state="live"),
                         SourceState(t=2.0, source="remote_stacks", state="lost")])  # fmt: skip
    pyspy = ListSource([SourceState(t=3.0, source="py-spy", state="live")])
    events = list(Fallback(remote, pyspy, live=lambda: True).events())
    assert _states(events) == [("remote_stacks", "live"), ("remote_stacks", "lost")]


def test_a_closed_fallback_starts_nothing() -> None:
    remote, pyspy = Endless(), Endless()
    source = Fallback(remote, pyspy, live=lambda: False)
    events: list[Event] = []
    reader = threading.Thread(target=lambda: events.extend(source.events()))
    reader.start()
    source.close()
    reader.join(10)
    assert not reader.is_alive()
    assert len(events) == 2  # the first Endless's live and ended, nothing of the second
