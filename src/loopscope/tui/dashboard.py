"""The dashboard: every panel of one target, fed the newest view unless paused."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer

from loopscope.session import View
from loopscope.tui.finding import FindingScreen
from loopscope.tui.widgets import (
    AwaitTable,
    FindingDetail,
    FindingsTable,
    HeaderBar,
    HotFramesTable,
    LagPanel,
    TasksPanel,
)


class DashboardScreen(Screen[None]):
    CSS_PATH = "dashboard.tcss"
    # Below 120 columns the tables stack and the finding detail moves to its own screen;
    # below 36 rows the lag and task panels get fewer lines.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [Binding("space", "toggle_pause", "Pause")]

    view: reactive[View | None] = reactive(None)  # what is on screen
    paused: reactive[bool] = reactive(False)

    def __init__(self, *, how: str = "", log_path: str | None = None) -> None:
        super().__init__()
        self._how = how
        self._log_path = log_path
        self._latest: View | None = None

    @property
    def latest(self) -> View | None:
        """The newest view received, shown or not."""
        return self._latest

    def compose(self) -> ComposeResult:
        yield HeaderBar(how=self._how, log_path=self._log_path).data_bind(
            DashboardScreen.view, DashboardScreen.paused
        )
        with Horizontal(id="top"):
            yield LagPanel().data_bind(DashboardScreen.view)
            yield TasksPanel().data_bind(DashboardScreen.view)
        with Horizontal(id="middle"):
            yield HotFramesTable(id="hot").data_bind(DashboardScreen.view)
            yield AwaitTable(id="awaits").data_bind(DashboardScreen.view)
        with Horizontal(id="bottom"):
            yield FindingsTable(id="findings").data_bind(DashboardScreen.view)
            yield FindingDetail(id="detail").data_bind(DashboardScreen.view)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FindingsTable).focus()

    def show(self, view: View) -> None:
        """Take a new view; it reaches the panels unless the dashboard is paused."""
        self._latest = view
        if not self.paused:
            self.view = view

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self._latest is not None:
            self.view = self._latest

    @on(FindingsTable.Highlighted)
    def _finding_highlighted(self, event: FindingsTable.Highlighted) -> None:
        self.query_one(FindingDetail).finding = event.finding

    @on(FindingsTable.Selected)
    def _finding_selected(self, event: FindingsTable.Selected) -> None:
        snapshot = self.view.snapshot if self.view is not None else None
        self.app.push_screen(FindingScreen(event.finding, snapshot))
