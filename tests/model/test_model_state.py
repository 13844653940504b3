from __future__ import annotations

import dataclasses
import math

import pytest

from builders import app, block, census, hello, lag
from loopscope.events import LoopStarted, LoopStopped, Notice, SourceState, TargetExited
from loopscope.model import Model
from loopscope.model._model import MAX_NOTICES
from loopscope.model.snapshot import ExitInfo, LoopInfo, SourceInfo, TargetInfo


def test_an_empty_model_has_an_empty_snapshot() -> None:
    snap = Model().snapshot()
    assert (snap.t, snap.started, snap.duration_s) == (0.0, None, 0.0)
    assert (snap.target, snap.exited) == (None, None)
    assert snap.loops == snap.sources == snap.notices == ()
    assert snap.blocks.count == 0 and snap.blocks.hot == ()


def test_target_from_hello() -> None:
    model = Model()
    model.apply(hello(5.0, pid=77))
    assert model.snapshot().target == TargetInfo(
        pid=77,
        python="3.11.7",
        executable="/srv/venv/bin/python",
        argv=("app.py", "--port", "8080"),
        agent_version="0.1.0",
        cwd="/srv/app",
    )


def test_loops_start_and_stop() -> None:
    model = Model()
    model.apply(
        LoopStarted(
            t=1.0,
            loop=11,
            thread_id=1,
            thread_name="MainThread",
            loop_class="asyncio.unix_events._UnixSelectorEventLoop",
            features=("lag", "blocks"),
        )
    )
    model.apply(
        LoopStarted(
            t=1.5,
            loop=22,
            thread_id=2,
            thread_name="worker",
            loop_class="uvloop.Loop",
            features=("lag",),
            unavailable=("utilisation: loop has no Python selector",),
        )
    )
    model.apply(LoopStopped(t=2.0, loop=11))
    model.apply(LoopStopped(t=2.0, loop=99))  # never seen: ignored
    assert model.snapshot().loops == (
        LoopInfo(
            loop=11,
            thread_name="MainThread",
            loop_class="asyncio.unix_events._UnixSelectorEventLoop",
            features=("lag", "blocks"),
            unavailable=(),
            running=False,
        ),
        LoopInfo(
            loop=22,
            thread_name="worker",
            loop_class="uvloop.Loop",
            features=("lag",),
            unavailable=("utilisation: loop has no Python selector",),
            running=True,
        ),
    )


def test_sources_keep_their_latest_state_in_order_of_appearance() -> None:
    model = Model()
    model.apply(SourceState(t=1.0, source="agent", state="live"))
    model.apply(SourceState(t=1.0, source="py-spy", state="unavailable", detail="not installed"))
    model.apply(SourceState(t=3.0, source="agent", state="lost", detail="connection reset"))
    assert model.snapshot().sources == (
        SourceInfo(name="agent", state="lost", detail="connection reset"),
        SourceInfo(name="py-spy", state="unavailable", detail="not installed"),
    )


def test_time_is_the_latest_event_and_duration_runs_from_the_first() -> None:
    model = Model()
    model.apply(hello(100.0))
    model.apply(lag(103.0, [0.001]))
    # A block's t is its start: it reaches 103.5 although it arrives after the lag window.
    model.apply(block(102.0, 1.5, [app(42, "r")]))
    snap = model.snapshot()
    assert (snap.t, snap.started, snap.duration_s) == (103.5, 100.0, 3.5)
    assert model.snapshot(now=110.0).duration_s == 10.0


@pytest.mark.parametrize(
    ("exit_code", "reason", "text"),
    [
        (0, "exited", "program exited with code 0"),
        (3, "exited", "program exited with code 3"),
        (None, "", "program exited, exit code unknown"),
        (-9, "killed by SIGKILL", "program was killed by SIGKILL"),
        (-2, "stopped by loopscope with SIGINT", "stopped by loopscope (SIGINT), exit code -2"),
        (0, "stopped by loopscope", "stopped by loopscope, exit code 0"),
        (
            2,
            "exited before its agent started",
            "program exited with code 2 before its agent started",
        ),
        (
            -15,
            "killed by SIGTERM before its agent started",
            "program was killed by SIGTERM before its agent started",
        ),
        (1, "vanished", "program ended (vanished), exit code 1"),
    ],
)
def test_how_the_program_ended_reads(exit_code: int | None, reason: str, text: str) -> None:
    assert ExitInfo(t=1.0, exit_code=exit_code, reason=reason).describe() == text


def test_after_the_target_exits_time_stops_so_its_data_stays_in_view() -> None:
    model = Model()
    model.apply(hello(100.0))
    model.apply(lag(104.0, [0.030]))
    model.apply(census(104.0, total=9))
    model.apply(TargetExited(t=105.0, exit_code=3, reason="exited"))
    snap = model.snapshot(now=500.0)
    assert snap.exited == ExitInfo(t=105.0, exit_code=3, reason="exited")
    assert snap.t == 105.0
    assert snap.duration_s == 5.0
    assert snap.lag.max == 0.030
    assert snap.tasks.total == 9


def test_live_clock_moves_recent_figures_on() -> None:
    model = Model()
    model.apply(lag(100.0, [0.030]))
    assert model.snapshot(now=105.0).lag.max == 0.030
    assert model.snapshot(now=200.0).lag.max is None


def test_notices_are_bounded_newest_last() -> None:
    model = Model()
    model.apply(Notice(t=1.0, level="warning", message="census sampled 1000 of 20000 tasks"))
    for i in range(MAX_NOTICES + 5):
        model.apply(Notice(t=2.0 + i, level="info", message=f"n{i}"))
    notices = model.snapshot().notices
    assert len(notices) == MAX_NOTICES
    assert notices[-1] == f"n{MAX_NOTICES + 4}"
    model.apply(Notice(t=99.0, level="error", message="lag hook disabled"))
    assert model.snapshot().notices[-1] == "error: lag hook disabled"


def test_snapshots_are_frozen_and_independent_of_later_events() -> None:
    model = Model()
    model.apply(block(1.0, 0.05, [app(42, "r")]))
    snap = model.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.t = 5.0  # type: ignore[misc]
    model.apply(block(2.0, 0.05, [app(42, "r")]))
    assert snap.blocks.count == 1
    assert snap.blocks.hot[0].blocks == 1


def test_damaged_numbers_do_not_spread() -> None:
    # Non-finite numbers travel as null and come back as infinity.
    model = Model()
    model.apply(lag(10.0, [0.002]))
    model.apply(dataclasses.replace(lag(11.0, [0.001]), max=math.inf))
    model.apply(dataclasses.replace(lag(11.5, [0.001]), t=math.inf))
    model.apply(dataclasses.replace(block(11.0, 0.05, [app(42, "r")]), duration=math.inf))
    model.apply(block(11.0, -1.0, [app(42, "r")]))
    snap = model.snapshot()
    assert snap.t == 11.0  # the lag window with a damaged max still happened
    assert snap.lag.max == snap.lag.session_max == 0.002
    assert snap.blocks.count == 0
