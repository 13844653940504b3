"""Driving the dashboard in tests: a session fed from fixed events, and reading what it shows."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from dashboard_scenario import FIXED_T, HOW, LOG_PATH
from rich.console import Console
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import DataTable, Static

from loopscope.events import Event
from loopscope.session import Session
from loopscope.sources.base import ListSource, Source
from loopscope.tui import make_app
from loopscope.tui.app import LoopscopeApp


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (Pilot needs one; no async plugin is used)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def fed_session(events: list[Event]) -> Session:
    session = Session(ListSource(events), clock=lambda: FIXED_T)
    session.feed_all()
    return session


def dashboard(session: Session) -> LoopscopeApp:
    app = make_app(session, log_path=LOG_PATH, how=HOW, refresh=0.05)
    assert isinstance(app, LoopscopeApp)
    return app


def live_session(source: Source) -> Session:
    session = Session(source, clock=lambda: FIXED_T)
    session.start()
    return session


async def until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met before the deadline")
        await pilot.pause(0.01)


async def shown(pilot: Pilot[Any]) -> None:
    """Wait until the dashboard shows a view and has drawn it."""
    app = pilot.app
    assert isinstance(app, LoopscopeApp)
    await until(pilot, lambda: app.dashboard.view is not None)
    await pilot.pause()


def text_of(widget: Widget) -> str:
    """What a widget draws, as plain text."""
    renderable = widget.content if isinstance(widget, Static) else widget.render()
    width = max(20, widget.content_size.width)
    console = Console(width=width, color_system=None, legacy_windows=False)
    options = console.options.update(height=max(1, widget.content_size.height))
    lines = console.render_lines(renderable, options, pad=False)  # type: ignore[arg-type]
    return "\n".join("".join(s.text for s in line).rstrip() for line in lines)


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [
        [getattr(cell, "plain", str(cell)) for cell in table.get_row_at(i)]
        for i in range(table.row_count)
    ]
