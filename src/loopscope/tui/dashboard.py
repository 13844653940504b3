"""The dashboard: every panel of one target, fed the newest view unless paused."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer

from loopscope.tui._screen import ViewScreen
from loopscope.tui.finding import FindingScreen
from loopscope.tui.widgets import (
    AwaitTable,
    FindingDetail,
    FindingsTable,
    HotFramesTable,
    LagPanel,
    RoutesTable,
    TasksPanel,
)


class DashboardScreen(ViewScreen):
    CSS_PATH = "dashboard.tcss"
    HELP_WITH = (FindingsTable, FindingScreen)
    # Below 120 columns the tables stack and the finding detail moves to its own screen;
    # below 36 rows the lag and task panels get fewer lines.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]

    class OpenHotFrame(Message):
        """Asks for the blocks screen, with the blocks of a hot frame highlighted."""

        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key  # the frame's `Location.key`

    class OpenAwaitSite(Message):
        """Asks for the awaits screen, with an await site highlighted."""

        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key  # the site's `Location.key`

    def compose(self) -> ComposeResult:
        yield self.header()
        with Horizontal(id="top"):
            yield LagPanel().data_bind(DashboardScreen.view)
            yield TasksPanel().data_bind(DashboardScreen.view)
        with Horizontal(id="middle"):
            yield HotFramesTable(id="hot").data_bind(DashboardScreen.view)
            yield AwaitTable(id="awaits").data_bind(DashboardScreen.view)
        yield RoutesTable(id="routes").data_bind(DashboardScreen.view)
        with Horizontal(id="bottom"):
            yield FindingsTable(id="findings").data_bind(DashboardScreen.view)
            yield FindingDetail(id="detail").data_bind(DashboardScreen.view)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FindingsTable).focus()

    @on(FindingsTable.Highlighted)
    def _finding_highlighted(self, event: FindingsTable.Highlighted) -> None:
        self.query_one(FindingDetail).finding = event.finding

    @on(FindingsTable.Selected)
    def _finding_selected(self, event: FindingsTable.Selected) -> None:
        snapshot = self.view.snapshot if self.view is not None else None
        self.app.push_screen(FindingScreen(event.finding, snapshot))

    @on(HotFramesTable.RowSelected, "#hot")
    def _hot_selected(self, event: HotFramesTable.RowSelected) -> None:
        # The row key is the frame's "file:line:function": its blocks are highlighted there.
        self.post_message(self.OpenHotFrame(event.row_key.value))

    @on(AwaitTable.RowSelected, "#awaits")
    def _await_selected(self, event: AwaitTable.RowSelected) -> None:
        # The row key is the site's "file:line:function:kind".
        key = event.row_key.value
        self.post_message(self.OpenAwaitSite(key.rpartition(":")[0] if key else None))
