"""SVG snapshots of the dashboard per terminal size and state (pytest-textual-snapshot).

Regenerate after a deliberate change with ``pytest tests/tui --snapshot-update`` and look at
the result: these files are the reviewed picture of the UI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dashboard_scenario import exited_events, live_events, web_events
from helpers import dashboard, fed_session, shown, until
from textual.pilot import Pilot

from loopscope.tui.finding import FindingScreen
from loopscope.tui.help import HelpScreen

SIZES = [(80, 24), (160, 48)]


async def _live(pilot: Pilot[Any]) -> None:
    await shown(pilot)


async def _paused(pilot: Pilot[Any]) -> None:
    await shown(pilot)
    await pilot.press("space")
    await pilot.pause()


async def _help(pilot: Pilot[Any]) -> None:
    await shown(pilot)
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
    await pilot.pause()


async def _finding(pilot: Pilot[Any]) -> None:
    await shown(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, FindingScreen))
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("state", "exited", "before"),
    [("live", False, _live), ("paused", False, _paused), ("exited", True, _live)],
    ids=["live", "paused", "exited"],
)
def test_dashboard(
    snap_compare: Callable[..., bool],
    size: tuple[int, int],
    state: str,
    exited: bool,
    before: Callable[[Pilot[Any]], object],
) -> None:
    events = exited_events() if exited else live_events()
    assert snap_compare(dashboard(fed_session(events)), terminal_size=size, run_before=before)


@pytest.mark.parametrize("before", [_help, _finding], ids=["help", "finding"])
def test_screens_over_the_dashboard(
    snap_compare: Callable[..., bool], before: Callable[[Pilot[Any]], object]
) -> None:
    app = dashboard(fed_session(live_events()))
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_dashboard_of_a_web_service(snap_compare: Callable[..., bool]) -> None:
    # The routes panel, which only a web service's dashboard shows (where there is room).
    app = dashboard(fed_session(web_events()))
    assert snap_compare(app, terminal_size=(160, 48), run_before=_live)
