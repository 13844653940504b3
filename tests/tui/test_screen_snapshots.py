"""SVG snapshots of the drill-down screens per terminal size and state (pytest-textual-snapshot).

Regenerate after a deliberate change with ``pytest tests/tui --snapshot-update`` and look at
the result: these files are the reviewed picture of the UI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import dashboard, fed_session, shown, until
from screens_scenario import primed_sources, screens_exited_events, screens_live_events
from textual.pilot import Pilot
from textual.widgets import DataTable

from loopscope.tui.awaits import AwaitsScreen
from loopscope.tui.blocks import BlocksScreen
from loopscope.tui.task_detail import TaskDetailScreen
from loopscope.tui.tasks import TasksScreen

SIZES = [(80, 24), (160, 48)]


@pytest.fixture(autouse=True)
def _sources() -> Iterator[None]:
    with primed_sources():
        yield


def _open(keys: tuple[str, ...], screen: type) -> Callable[[Pilot[Any]], Any]:
    async def before(pilot: Pilot[Any]) -> None:
        await shown(pilot)
        await pilot.press(*keys)
        await until(pilot, lambda: isinstance(pilot.app.screen, screen))
        tables = pilot.app.screen.query(DataTable)
        await until(pilot, lambda: all(t.row_count for t in tables if t.id != "resources"))
        await pilot.pause()

    return before


SCREENS = {
    "tasks": _open(("t",), TasksScreen),
    "task": _open(("t", "down", "enter"), TaskDetailScreen),
    "blocks": _open(("3",), BlocksScreen),
    "awaits": _open(("4",), AwaitsScreen),
}


def _paused(before: Callable[[Pilot[Any]], Any]) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        await before(pilot)
        await pilot.press("space")
        await pilot.pause()

    return run


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("state", ["live", "paused", "exited"])
@pytest.mark.parametrize("name", list(SCREENS))
def test_screen(
    snap_compare: Callable[..., bool], name: str, state: str, size: tuple[int, int]
) -> None:
    events = screens_exited_events() if state == "exited" else screens_live_events()
    before = SCREENS[name]
    if state == "paused":
        before = _paused(before)
    assert snap_compare(dashboard(fed_session(events)), terminal_size=size, run_before=before)
