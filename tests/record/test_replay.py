"""Replay: the clock, and that the replay shows at t what the live session showed at t."""

from __future__ import annotations

from pathlib import Path

import pytest
from recordings import GOLDEN, in_arrival_order, scenario, write

from loopscope.record.reader import Recording
from loopscope.record.writer import Recorder
from loopscope.replay import (
    SPEEDS,
    TASK_LIST_S,
    ReplayClock,
    ReplaySession,
    replay_all,
)
from loopscope.session import Session, View
from loopscope.sources.base import ListSource
from loopscope.sources.recorded import RecordedSource
from tui.screens_scenario import task_list


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_clock_plays_at_its_speed_and_pauses() -> None:
    mono = FakeMonotonic()
    clock = ReplayClock(1000.0, 1100.0, monotonic=mono)
    assert clock.now() == 1000.0 and clock.playing
    mono.now += 2
    assert clock.now() == 1002.0
    clock.faster()
    assert clock.speed == 2.0
    mono.now += 2
    assert clock.now() == 1006.0
    clock.toggle()
    mono.now += 10
    assert clock.now() == 1006.0 and not clock.playing
    clock.step(-1.5)
    assert clock.now() == 1004.5
    clock.toggle()
    mono.now += 1
    assert clock.now() == 1006.5


def test_speed_stays_between_a_quarter_and_sixteen() -> None:
    clock = ReplayClock(0.0, 10.0, monotonic=FakeMonotonic())
    for _ in range(10):
        clock.slower()
    assert clock.speed == SPEEDS[0] == 0.25
    for _ in range(10):
        clock.faster()
    assert clock.speed == SPEEDS[-1] == 16.0


def test_the_clock_stops_at_the_end_and_seeks_within_the_recording() -> None:
    mono = FakeMonotonic()
    clock = ReplayClock(0.0, 10.0, monotonic=mono)
    mono.now += 60
    assert clock.now() == 10.0 and not clock.playing
    clock.toggle()  # play again at the end: from the start
    assert clock.playing and clock.now() == 0.0
    clock.seek(-5)
    assert clock.now() == 0.0
    clock.seek(99)
    assert clock.now() == 10.0


def _live_view(rows: list[tuple[float, object]], t: float) -> View:
    """What the live session showed at t: every event received by t, seen at t."""
    received = [ev for ts, ev in rows if ts <= t]
    session = Session(ListSource(received), clock=lambda: t)  # type: ignore[arg-type]
    session.feed_all()
    return session.view()


@pytest.mark.parametrize("checkpoint_s", [300.0, 2.0], ids=["from-start", "from-checkpoints"])
def test_replay_shows_at_t_what_the_live_session_showed(
    tmp_path: Path, checkpoint_s: float
) -> None:
    rows = in_arrival_order(scenario())
    arrivals = iter([ts for ts, _ in rows])
    recorder = Recorder(tmp_path / "r.lsrec", clock=lambda: next(arrivals, rows[-1][0]))
    list(RecordedSource(ListSource([ev for _, ev in rows]), recorder).events())
    recorder.close()

    start, end = rows[0][0], rows[-1][0]
    checkpoints = [start, start + 3.3, start + 16.1, start + 17.05, start + 19.0, end]
    with Recording.open(tmp_path / "r.lsrec") as recording:
        clock = ReplayClock(recording.info.start, recording.info.end, playing=False)
        replay = ReplaySession(recording, clock, checkpoint_s=checkpoint_s)
        # forward, then back (which rebuilds the state), then forward again
        for t in [*checkpoints, *reversed(checkpoints), start + 18.0]:
            clock.seek(t)
            assert replay.view() == _live_view(rows, t), t
        views = {t: _live_view(rows, t) for t in checkpoints}
    # The checkpoints show different things: the test would notice a replay stuck at one.
    assert len({(v.snapshot.blocks.count, v.snapshot.tasks.total) for v in views.values()}) >= 3
    assert views[end].findings and not views[start + 3.3].findings


def test_replay_all_is_the_final_live_view() -> None:
    rows = in_arrival_order(scenario())
    with Recording.open(GOLDEN) as recording:
        assert replay_all(recording) == _live_view(rows, rows[-1][0])


def test_a_replay_session_of_an_empty_recording(tmp_path: Path) -> None:
    Recorder(tmp_path / "e.lsrec").close()
    with Recording.open(tmp_path / "e.lsrec") as recording:
        view = ReplaySession(recording).view()
    assert view.snapshot.started is None and view.findings == ()


@pytest.mark.parametrize("speed_steps", [0, 3])
def test_ended_once_the_clock_reaches_the_end(speed_steps: int) -> None:
    mono = FakeMonotonic()
    with Recording.open(GOLDEN) as recording:
        clock = ReplayClock(recording.info.start, recording.info.end, monotonic=mono)
        for _ in range(speed_steps):
            clock.faster()
        replay = ReplaySession(recording, clock)
        assert not replay.ended
        mono.now += recording.info.duration / clock.speed + 0.001
        assert replay.ended
        assert replay.view().snapshot.exited is not None


def test_a_jump_forward_decodes_only_the_latest_task_lists(tmp_path: Path) -> None:
    # A task list every 2 s for 10 minutes: a jump to the end decodes the last TASK_LIST_S of
    # them (they are what shows). The view shows the tasks playing through would show; its
    # ended tasks are the newest of those, from that stretch.
    lists = [task_list(1000.0 + 2.0 * i) for i in range(300)]
    path = tmp_path / "lists.lsrec"
    rows = write(path, lists)
    end = rows[-1][0]
    with Recording.open(path) as recording:
        skipped = list(recording.rows(skip={"task_list": end - TASK_LIST_S}))
        assert [r.event for r in skipped] == lists[-int(TASK_LIST_S / 2) - 1 :]
        clock = ReplayClock(recording.info.start, recording.info.end, playing=False)
        clock.seek(end)
        jumped = ReplaySession(recording, clock).view()
    live = _live_view(rows, end).snapshot.task_list
    shown = jumped.snapshot.task_list
    assert (shown.t, shown.total, shown.tasks) == (live.t, live.total, live.tasks)
    assert 0 < len(shown.finished) < len(live.finished)
    assert shown.finished == live.finished[: len(shown.finished)]
