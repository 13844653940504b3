"""Navigation by messages: the screens ask, the app opens; and what the app hands its screens."""

from __future__ import annotations

import gc
import sys
import time
from typing import TypeVar

import pytest
from dashboard_scenario import QueueSource, later_blocks
from helpers import dashboard, fed_session, in_loop, live_session, rows, shown, text_of, until
from screens_scenario import screens_live_events
from textual.message import Message

import loopscope.tui.app as app_module
from loopscope.model.location import Location
from loopscope.tui.app import GC_THRESHOLDS
from loopscope.tui.awaits import AwaitsScreen
from loopscope.tui.blocks import BlocksScreen, BlockTable
from loopscope.tui.dashboard import DashboardScreen
from loopscope.tui.finding import FindingScreen
from loopscope.tui.tasks import TasksScreen, TaskTable
from loopscope.tui.widgets import AwaitTable, HeaderBar, HotFramesTable

M = TypeVar("M", bound=Message)


def posted_of(posted: list[Message], kind: type[M]) -> list[M]:
    """The messages of ``kind`` posted, each once (the hook sees a message again at each node
    it bubbles to)."""
    return list({id(m): m for m in posted if isinstance(m, kind)}.values())


@in_loop
async def test_g_on_a_finding_posts_open_evidence_and_the_app_opens_it() -> None:
    posted: list[Message] = []
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        await shown(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FindingScreen))
        finding = app.screen.finding
        assert finding.location is not None
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, BlocksScreen))
        asked = posted_of(posted, FindingScreen.OpenEvidence)
        assert [(m.screen, m.key) for m in asked] == [("blocks", finding.location.key)]


@in_loop
async def test_enter_on_a_hot_frame_posts_open_hot_frame_with_its_location_key() -> None:
    posted: list[Message] = []
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48), message_hook=posted.append) as pilot:
        await shown(pilot)
        hot = app.dashboard.view.snapshot.blocks.hot if app.dashboard.view else ()
        app.dashboard.query_one(HotFramesTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BlocksScreen))
        asked = [m.key for m in posted_of(posted, DashboardScreen.OpenHotFrame)]
        assert asked == [Location.of(hot[0]).key]
        # the blocks of that frame are highlighted
        table = app.screen.query_one(BlockTable)
        await until(pilot, lambda: table.row_count == 4)
        assert Location.of(hot[0]).file.rpartition("/")[2] in rows(table)[table.cursor_row][4]


@in_loop
async def test_open_await_site_from_the_dashboard_opens_awaits_at_that_site() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        assert app.dashboard.view is not None
        site = app.dashboard.view.snapshot.await_sites[1]
        app.dashboard.post_message(DashboardScreen.OpenAwaitSite(Location.of(site).key))
        await until(pilot, lambda: isinstance(app.screen, AwaitsScreen))
        sites = app.screen.query_one(AwaitTable)
        await until(pilot, lambda: sites.row_count == 3 and sites.cursor_row == 1)


@in_loop
async def test_a_screen_first_opened_while_paused_shows_the_frozen_view_at_once() -> None:
    source = QueueSource()
    session = live_session(source)
    try:
        source.put(screens_live_events())
        app = dashboard(session)
        async with app.run_test(size=(160, 48)) as pilot:
            await shown(pilot)
            await pilot.press("space")
            await until(pilot, lambda: "PAUSED" in text_of(app.screen.query_one(HeaderBar)))
            frozen = app.shown
            assert frozen is not None
            source.put(later_blocks())
            await until(
                pilot,
                lambda: app.latest is not None and app.latest.snapshot.blocks.count == 7,
            )
            # every screen the app knows is handed the newest view, shown or not
            assert app.dashboard.latest is app.latest
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TasksScreen))
            screen = app.screen
            assert isinstance(screen, TasksScreen)
            await until(pilot, lambda: screen.view is frozen)
            assert screen.paused
            assert screen.latest is app.latest
            assert screen.query_one(TaskTable).row_count > 0
            assert "PAUSED" in text_of(screen.query_one(HeaderBar))
    finally:
        session.close()


@in_loop
async def test_the_app_tunes_the_garbage_collector_while_it_runs_and_puts_it_back() -> None:
    before = gc.get_threshold()
    assert before != GC_THRESHOLDS
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what it held at its start is out of every scan
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen))
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@in_loop
async def test_the_app_collects_every_generation_when_no_key_comes_and_not_while_keys_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not app_module.DEFERS_FULL:
        pytest.skip(f"Python {sys.version_info[:2]}: its incremental collector is left alone")
    full: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(time.monotonic())

    monkeypatch.setattr(app_module, "IDLE_S", 0.2)
    monkeypatch.setattr(app_module, "FULL_EVERY_S", 0.0)
    gc.callbacks.append(on_gc)
    try:
        app = dashboard(fed_session(screens_live_events()))
        async with app.run_test(size=(80, 24)) as pilot:
            await shown(pilot)
            # Its timer: no key for IDLE_S, and a full collection comes by itself (besides
            # the one the app makes as it starts).
            started = len(full)
            await until(pilot, lambda: len(full) > started)
            now = time.monotonic()
            # A key just pressed: none, even long after the last one...
            count = len(full)
            app._input_at, app._full_at = now, now - 60.0
            app._collect_when_idle()
            assert len(full) == count
            # ... until FULL_LATEST_S has passed, whatever the keys.
            app._full_at = now - app_module.FULL_LATEST_S
            app._collect_when_idle()
            assert len(full) == count + 1
            # Someone else's thresholds: theirs to run.
            gc.set_threshold(700, 10, 10)
            app._input_at, app._full_at = now - 60.0, now - 60.0
            app._collect_when_idle()
            assert len(full) == count + 1
    finally:
        gc.callbacks.remove(on_gc)
