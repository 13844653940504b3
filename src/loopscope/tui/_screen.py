"""What every screen of the app shares: it shows the view the app hands it, and the header."""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static

from loopscope.session import View
from loopscope.tui.widgets import HeaderBar


class ViewScreen(Screen[None]):
    """A screen that renders the view it is handed. The app hands every screen it knows the
    newest view (``latest``), what to show (``shown``: the newest, unless paused) and the pause
    state; it assigns ``view`` to the screen on top only, and the others catch up with what they
    were handed when they are shown again. A screen reads nothing from the app."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("space", "app.toggle_pause", "Pause")]
    # Widgets and modal screens whose keys act in this screen: the help lists their bindings
    # with this screen's.
    HELP_WITH: ClassVar[tuple[type[DOMNode], ...]] = ()

    view: reactive[View | None] = reactive(None)  # what is on screen
    paused: reactive[bool] = reactive(False)

    def __init__(self, *, how: str = "", log_path: str | None = None) -> None:
        super().__init__()
        self._how = how
        self._log_path = log_path
        self.latest: View | None = None  # the newest view received, shown or not
        self.shown: View | None = None  # the view to show (the newest, unless paused)
        self.paused_state = False  # whether the display is paused

    def hand(self, *, latest: View | None, shown: View | None, paused: bool) -> None:
        """Take what the app (or the screen that opens this one) has: see the class doc."""
        self.latest = latest
        self.shown = shown
        self.paused_state = paused

    def open(self, screen: ViewScreen) -> None:
        """Push ``screen`` over this one, handed what this one was handed."""
        screen.hand(latest=self.latest, shown=self.shown, paused=self.paused_state)
        self.app.push_screen(screen)

    def header(self) -> HeaderBar:
        """The header, bound to this screen's view and pause state."""
        return HeaderBar(how=self._how, log_path=self._log_path).data_bind(
            type(self).view, type(self).paused
        )

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
        """Highlight the row ``key`` (a `Location.key`), where this screen has such rows."""

    def on_screen_resume(self) -> None:
        self.paused = self.paused_state
        if self.shown is not None:
            self.view = self.shown


class SubScreen(ViewScreen):
    """A drill-down screen over the dashboard: escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.close_screen", "Back")]
