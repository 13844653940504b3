"""The replay dashboard: the panels as live at the replay's time, a timeline, transport keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_scenario import exited_events
from helpers import fed_session, in_loop, rows, shown, text_of, until
from textual.pilot import Pilot

from loopscope.record.reader import Recording
from loopscope.replay import ReplayClock, ReplaySession
from loopscope.tui.help import HelpScreen
from loopscope.tui.replay import ReplayApp, make_replay_app
from loopscope.tui.timeline import Timeline, clock_time, timeline
from loopscope.tui.widgets import FindingsTable, HeaderBar, HotFramesTable

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden-v1.lsrec"


@pytest.fixture
def recording() -> Iterator[Recording]:
    with Recording.open(GOLDEN) as rec:
        yield rec


def replay_app(recording: Recording, at: float | None = None) -> ReplayApp:
    info = recording.info
    clock = ReplayClock(info.start, info.end, playing=False)
    clock.seek(info.end if at is None else at)
    return make_replay_app(ReplaySession(recording, clock), refresh=0.02)


def test_timeline_marks_blocks_and_the_position() -> None:
    text = timeline(
        20,
        start=0.0,
        end=20.0,
        now=10.0,
        blocks=[(16.0, 0.1), (17.0, 0.25)],
        playing=False,
        speed=2.0,
    )
    bar, state = text.plain.split("\n")
    assert len(bar) == 20
    assert bar[16] == "▄" and bar[17] == "█" and set(bar[:16]) == {"─"}
    assert any("reverse" in str(span.style) for span in text.spans if span.start == 10)
    assert state == "⏸ paused  2×  0:10.0 / 0:20.0  2 blocks, longest 250ms"  # noqa: RUF001 (the multiplication sign is meant)


def test_clock_time() -> None:
    assert clock_time(0) == "0:00.0"
    assert clock_time(75.25) == "1:15.2"
    assert clock_time(3725) == "1:02:05"


@in_loop
async def test_replay_at_the_end_shows_what_live_showed(recording: Recording) -> None:
    live = fed_session(exited_events()).view()  # the golden recording was made from these
    app = replay_app(recording)
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        view = app.dashboard.view
        assert view is not None
        assert view.findings == live.findings
        assert view.snapshot.blocks == live.snapshot.blocks
        hot = rows(app.dashboard.query_one(HotFramesTable))
        assert hot and "render_report" in " ".join(hot[0])
        assert "replay of" in text_of(app.dashboard.query_one(HeaderBar))
        assert app.dashboard.query_one(FindingsTable).has_focus


@in_loop
async def test_transport_keys_move_the_clock(recording: Recording) -> None:
    info = recording.info
    app = replay_app(recording, at=info.start + 10.0)
    async with app.run_test(size=(120, 36)) as pilot:
        await shown(pilot)
        clock = app.clock
        await pilot.press("full_stop")
        assert clock.now() == pytest.approx(info.start + 11.0)
        await pilot.press("comma", "comma")
        assert clock.now() == pytest.approx(info.start + 9.0)
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert clock.speed == 4.0
        await pilot.press("left_square_bracket")
        assert clock.speed == 2.0
        await pilot.press("space")
        assert clock.playing
        await pilot.press("space")
        assert not clock.playing
        await pilot.press("0")
        assert clock.now() == info.start
        # The panels follow the clock: no blocks yet at the start.
        await until(
            pilot,
            lambda: app.dashboard.view is not None and app.dashboard.view.snapshot.t == info.start,
        )
        assert app.dashboard.view is not None and app.dashboard.view.snapshot.blocks.count == 0


@in_loop
async def test_clicking_the_timeline_seeks(recording: Recording) -> None:
    info = recording.info
    app = replay_app(recording, at=info.start)
    async with app.run_test(size=(120, 36)) as pilot:
        await shown(pilot)
        bar = app.dashboard.query_one(Timeline)
        width = bar.content_size.width
        await pilot.click(Timeline, offset=(1 + width * 3 // 4, 0))
        expected = info.start + info.duration * 0.75
        assert abs(app.clock.now() - expected) <= info.duration / width
        await until(
            pilot,
            lambda: (
                app.dashboard.view is not None and app.dashboard.view.snapshot.t == app.clock.now()
            ),
        )


@in_loop
async def test_help_lists_the_transport_keys(recording: Recording) -> None:
    app = replay_app(recording)
    async with app.run_test(size=(120, 36)) as pilot:
        await shown(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = dict(app.key_help())
        assert "play / pause the replay" in keys["space"]
        assert "pause / resume the display" not in keys.values()
        assert {"click", "[", "]"} <= set(keys)


async def _at_the_end(pilot: Pilot[Any]) -> None:
    await shown(pilot)
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_replay_snapshot(
    snap_compare: Callable[..., bool], recording: Recording, size: tuple[int, int]
) -> None:
    app = replay_app(recording, at=recording.info.start + 17.5)
    assert snap_compare(app, terminal_size=size, run_before=_at_the_end)
