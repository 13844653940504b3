"""The application: pulls views from a session on a thread and hands the newest to the screen."""

from __future__ import annotations

import threading
from typing import ClassVar, Protocol

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.worker import get_current_worker

from loopscope.session import View
from loopscope.tui.dashboard import DashboardScreen
from loopscope.tui.help import HelpScreen
from loopscope.tui.widgets import FindingsTable

# Keys that are not bindings of their own but of the widgets they act in.
_NAVIGATION_KEYS = [
    ("↑ ↓ pgup pgdn home end", "move in the focused table"),
    ("tab / shift+tab", "focus the next / previous panel"),
    ("escape", "close this screen, or an open finding"),
]


class Views(Protocol):
    """What the app reads: a live `Session`, or a `ReplaySession` on a recording."""

    def view(self) -> View: ...


class LoopscopeApp(App[None]):
    TITLE = "loopscope"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys"),
    ]

    class NewView(Message):
        """A fresh view of the session. Only the newest matters: a newer one replaces it."""

        def __init__(self, view: View) -> None:
            super().__init__()
            self.view = view

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LoopscopeApp.NewView)

    def __init__(
        self,
        session: Views,
        *,
        log_path: str | None = None,
        how: str = "",
        refresh: float = 0.25,
    ) -> None:
        super().__init__()
        if not refresh > 0:
            raise ValueError(f"refresh must be a positive number of seconds, not {refresh!r}")
        self._session = session
        self._interval = refresh
        self._stop = threading.Event()
        self.dashboard = DashboardScreen(how=how, log_path=log_path)

    def on_mount(self) -> None:
        # Pushed rather than returned by get_default_screen(), which does not load a screen's
        # CSS_PATH in Textual 8.
        self.push_screen(self.dashboard)
        self._pull_views()

    def on_unmount(self) -> None:
        self._stop.set()

    @work(thread=True, name="views", group="views", exclusive=True)
    def _pull_views(self) -> None:
        # The snapshot and the rules run here, off the UI thread; only the result crosses, as a
        # message that a newer one supersedes if the UI falls behind.
        worker = get_current_worker()
        while not worker.is_cancelled and not self._stop.is_set():
            self.post_message(self.NewView(self._session.view()))
            self._stop.wait(self._interval)

    @on(NewView)
    def _new_view(self, message: NewView) -> None:
        self.dashboard.show(message.view)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.key_help()))

    def key_help(self) -> list[tuple[str, str]]:
        """Every key, for the help screen: the bindings, then the navigation keys."""
        out: list[tuple[str, str]] = []
        for binding in (
            *self._bindings_of(LoopscopeApp),
            *self._bindings_of(DashboardScreen),
            *self._bindings_of(FindingsTable, own_only=True),
        ):
            description = _DESCRIPTIONS.get(binding.action, binding.description)
            out.append((self.get_key_display(binding), description))
        return out + _NAVIGATION_KEYS

    @staticmethod
    def _bindings_of(cls: type, *, own_only: bool = False) -> list[Binding]:
        bindings = vars(cls).get("BINDINGS", []) if own_only else cls.BINDINGS  # type: ignore[attr-defined]
        return [b for b in bindings if isinstance(b, Binding)]


_DESCRIPTIONS = {
    "quit": "quit (the program loopscope started is stopped)",
    "help": "show / hide this list of keys",
    "toggle_pause": "pause / resume the display",
    "select_cursor": "open the highlighted finding (evidence and fix)",
}
