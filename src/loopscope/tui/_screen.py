"""What every screen of the app shares: it shows the view the app hands it, and the header."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.console import RenderableType
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static

from loopscope.session import View
from loopscope.tui.widgets import HeaderBar

if TYPE_CHECKING:
    from loopscope.tui.app import LoopscopeApp


class ViewScreen(Screen[None]):
    """A screen that renders the app's current view. The app assigns ``view`` to the screen on
    top only (the others catch up when they are shown again), and ``paused`` to all of them."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("space", "app.toggle_pause", "Pause")]

    view: reactive[View | None] = reactive(None)  # what is on screen
    paused: reactive[bool] = reactive(False)

    def __init__(self, *, how: str = "", log_path: str | None = None) -> None:
        super().__init__()
        self._how = how
        self._log_path = log_path

    def header(self) -> HeaderBar:
        """The header, bound to this screen's view and pause state."""
        return HeaderBar(how=self._how, log_path=self._log_path).data_bind(
            type(self).view, type(self).paused
        )

    @property
    def owner(self) -> LoopscopeApp:
        from loopscope.tui.app import LoopscopeApp

        app = self.app
        assert isinstance(app, LoopscopeApp)
        return app

    @property
    def latest(self) -> View | None:
        """The newest view received, shown or not."""
        return self.owner.latest

    def ready(self, selector: str) -> bool:
        """Whether the widget ``selector`` is mounted: before, what it is given is lost (and a
        screen that remembers what it showed would not give it again)."""
        found = self.query(selector)
        return bool(found) and found.first().is_mounted

    def put_text(self, selector: str, content: RenderableType) -> None:
        """Show ``content`` in the Static ``selector``, and lay it out again once the current
        refresh is over: a layout asked for while one is under way (a view arriving as the
        screen comes up) can be lost, leaving the text at its old height."""
        static = self.query_one(selector, Static)
        static.update(content)
        self.call_after_refresh(static.refresh, layout=True)

    def select_row(self, key: str) -> None:
        """Highlight the row ``key`` ("file:line:function" of a location), where this screen
        has such rows."""

    def on_screen_resume(self) -> None:
        app = self.owner
        self.paused = app.paused
        if app.shown is not None:
            self.view = app.shown


class SubScreen(ViewScreen):
    """A drill-down screen over the dashboard: escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.close_screen", "Back")]
