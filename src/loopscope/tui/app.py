"""The application: pulls views from a session on a thread and hands the newest to the screen."""

from __future__ import annotations

import gc
import sys
import threading
import time
from typing import TYPE_CHECKING, ClassVar, Protocol

from textual import events, on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.message import Message
from textual.worker import get_current_worker

from loopscope.session import View
from loopscope.tui._screen import ViewScreen
from loopscope.tui.awaits import AwaitsScreen
from loopscope.tui.blocks import BlocksScreen
from loopscope.tui.dashboard import DashboardScreen
from loopscope.tui.finding import FindingScreen
from loopscope.tui.help import HelpScreen
from loopscope.tui.processes import ProcessesScreen
from loopscope.tui.tasks import TasksScreen

if TYPE_CHECKING:
    from loopscope.fleet.rows import Processes

# The garbage collector while the app runs. Textual makes cyclic garbage as it renders (a line
# it draws can hold itself in its own caches), so at Python's defaults a collection of every
# generation ran every few seconds, scanned a quarter of a million objects and stalled the UI
# for 100-200 ms: a key pressed then waited for it. Collecting the young generation every 10,000
# allocations, not 700, lets most of that garbage die young, and what the app holds from its
# start (modules, styles) is frozen out of every scan (BENCHMARKS.md, "Switching screens").
#
# A collection of every generation still takes 150-500 ms, over the objects Textual keeps for
# the screens the app keeps. Python starts one when enough objects have survived, which may be
# while a key is handled; the app starts them itself instead, once no key was pressed and the
# mouse left alone for IDLE_S, at most every FULL_EVERY_S, and after FULL_LATEST_S whatever the
# input. From 3.14 the collector is incremental (it collects the old generation in slices): the
# app leaves that to it.
DEFERS_FULL = sys.version_info < (3, 14)
IDLE_S = 1.0
FULL_EVERY_S = 20.0
FULL_LATEST_S = 120.0
# With this third threshold, Python's own full collections never come.
GC_THRESHOLDS = (10_000, 5, 1_000_000_000 if DEFERS_FULL else 10)

# Keys that are not bindings of their own but of the widgets they act in.
_NAVIGATION_KEYS = [
    ("↑ ↓ pgup pgdn home end", "move in the focused table"),
    ("⏎ / click", "open the highlighted row (a finding, a task, a block...)"),
    ("click a header", "sort the task table by that column (again: reverse)"),
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
        Binding("1", "open('dashboard')", "Dashboard", show=False),
        Binding("2,t", "open('tasks')", "Tasks"),
        Binding("3", "open('blocks')", "Blocks"),
        Binding("4,a", "open('awaits')", "Awaits"),
        Binding("p", "open('processes')", "Processes"),
        Binding("n", "next_process", "Next process"),
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
        self._how = how
        self._log_path = log_path
        self.dashboard = DashboardScreen(how=how, log_path=log_path)
        self.paused = False
        self.latest: View | None = None  # the newest view received
        self.shown: View | None = None  # the view on screen (the newest, unless paused)
        self._made: dict[str, ViewScreen] = {}  # the screens made by name, kept (installed)
        self._thresholds: tuple[int, int, int] | None = None  # the collector's, to restore
        self._input_at = time.monotonic()  # the last key press or mouse event
        self._full_at = time.monotonic()  # the last collection of every generation

    def on_mount(self) -> None:
        # Pushed rather than returned by get_default_screen(), which does not load a screen's
        # CSS_PATH in Textual 8.
        self.push_screen(self.dashboard)
        self._pull_views()
        self._thresholds = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self._full_at = time.monotonic()
        if DEFERS_FULL:
            self.set_interval(IDLE_S / 2, self._collect_when_idle)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self._input_at = time.monotonic()
        await super().on_event(event)

    def _collect_when_idle(self) -> None:
        if gc.get_threshold() != GC_THRESHOLDS:  # someone else's settings now: theirs to run
            return
        now = time.monotonic()
        since = now - self._full_at
        if (since >= FULL_EVERY_S and now - self._input_at >= IDLE_S) or since >= FULL_LATEST_S:
            gc.collect()
            self._full_at = time.monotonic()

    def on_unmount(self) -> None:
        self._stop.set()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            gc.unfreeze()

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
        self.latest = message.view
        if not self.paused:
            self._show(message.view)
        else:
            self._hand_all()

    def _view_screens(self) -> list[ViewScreen]:
        """Every screen that shows views: the dashboard, the screens made by name, and those
        in the stack."""
        screens: list[ViewScreen] = [self.dashboard, *self._made.values()]
        screens += [s for s in self.screen_stack if isinstance(s, ViewScreen) and s not in screens]
        return screens

    def _hand(self, screen: ViewScreen) -> None:
        screen.hand(latest=self.latest, shown=self.shown, paused=self.paused)

    def _hand_all(self) -> None:
        for screen in self._view_screens():
            self._hand(screen)

    def _show(self, view: View) -> None:
        # Only the screen on top renders; the others catch up when they are shown again.
        self.shown = view
        self._hand_all()
        if not self.screen_stack:  # the app is closing
            return
        screen = self.screen
        under = self.screen_stack[-2] if len(self.screen_stack) > 1 else None
        if isinstance(screen, ViewScreen):
            screen.view = view
        elif isinstance(under, ViewScreen):
            # A modal over a screen (help, a finding): the screen under it stays current.
            under.view = view

    def action_toggle_pause(self) -> None:
        """Freeze what every screen shows (collection goes on), or catch up with the newest."""
        self.paused = not self.paused
        self._hand_all()
        for screen in self.screen_stack:
            if isinstance(screen, ViewScreen):
                screen.paused = self.paused
        if not self.paused and self.latest is not None:
            self._show(self.latest)

    def action_open(self, name: str, select: str | None = None) -> None:
        if name == "processes" and not self._followed():
            self.notify("loopscope follows one process here", timeout=3)
            return
        self._open(name, select)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The process list is there (and in the footer) only when loopscope follows several.
        if (action == "open" and parameters[:1] == ("processes",)) or action == "next_process":
            return self._followed()
        return True

    def _followed(self) -> bool:
        from loopscope.fleet.rows import Processes

        return isinstance(self._session, Processes)

    def _open(self, name: str, select: str | None = None) -> None:
        """Show screen ``name`` ("dashboard", "tasks", "blocks" or "awaits") over the dashboard,
        in place of any other; ``select``: the row to highlight there ("file:line:function" of a
        location)."""
        # Down to one screen over the dashboard, which it then replaces: the dashboard is not
        # brought back in between (restyling a whole screen is what a switch costs).
        while len(self.screen_stack) > 3 or (
            len(self.screen_stack) > 2 and not isinstance(self.screen, ViewScreen)
        ):
            self.pop_screen()
        if name == "dashboard":
            while len(self.screen_stack) > 1 and self.screen is not self.dashboard:
                self.pop_screen()
            return
        # Each screen is made once and kept (installed): showing it again only brings its
        # rows up to date, by key, instead of composing it anew.
        if name not in self._made:
            self._made[name] = self.make_screen(name)
            self.install_screen(self._made[name], name)
        screen = self._made[name]
        self._hand(screen)
        if select is not None:
            screen.select_row(select)
        if screen is self.screen:
            return
        if self.screen is self.dashboard:
            self.push_screen(screen)
        else:
            self.switch_screen(screen)

    def make_screen(self, name: str) -> ViewScreen:
        if name == "processes":
            return ProcessesScreen(self._processes(), how=self._how, log_path=self._log_path)
        screen = _SCREENS.get(name)
        if screen is None:
            raise ValueError(f"no screen {name!r}")
        return screen(how=self._how, log_path=self._log_path)

    @on(DashboardScreen.OpenHotFrame)
    def _open_hot_frame(self, message: DashboardScreen.OpenHotFrame) -> None:
        self.action_open("blocks", message.key)

    @on(DashboardScreen.OpenAwaitSite)
    def _open_await_site(self, message: DashboardScreen.OpenAwaitSite) -> None:
        self.action_open("awaits", message.key)

    @on(ProcessesScreen.ShowProcess)
    def _show_process(self, message: ProcessesScreen.ShowProcess) -> None:
        self.show_process(message.pid)

    @on(FindingScreen.OpenEvidence)
    def _open_evidence(self, message: FindingScreen.OpenEvidence) -> None:
        self.action_open(message.screen, message.key)

    def _processes(self) -> Processes:
        from loopscope.fleet.rows import Processes

        if not isinstance(self._session, Processes):
            raise ValueError("one process only")
        return self._session

    def show_process(self, pid: int) -> None:
        """Show process ``pid`` (the program or one of its children) on every screen."""
        self._processes().select(pid)
        self.action_open("dashboard")
        self.post_message(self.NewView(self._session.view()))

    def action_next_process(self) -> None:
        """Show the next process on the dashboard, after the last all of them together, then
        the first again."""
        from loopscope.fleet.rows import ALL

        if not self._followed():
            return
        fleet = self._processes()
        order = [*(r.pid for r in fleet.processes()), ALL]
        now = fleet.selected
        pid = order[(order.index(now) + 1) % len(order)] if now in order else order[0]
        fleet.select(pid)
        self.notify("all processes" if pid == ALL else f"process {pid}", timeout=2)
        self.post_message(self.NewView(self._session.view()))

    def action_close_screen(self) -> None:
        if len(self.screen_stack) > 1 and self.screen is not self.dashboard:
            self.pop_screen()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.key_help()))

    def key_help(self) -> list[tuple[str, str]]:
        """Every key, for the help screen: the bindings of the app and of the screens it shows
        (those the help has a line for, below), then the navigation keys."""
        out: list[tuple[str, str]] = []
        for binding in _bindings_of(
            LoopscopeApp, *_screen_keys(DashboardScreen, *_SCREENS.values())
        ):
            if binding.action == "dismiss" or binding.action not in _DESCRIPTIONS:
                continue
            if binding.action in ("open('processes')", "next_process") and not self._followed():
                continue
            out.append((self.get_key_display(binding), _DESCRIPTIONS[binding.action]))
        return out + _NAVIGATION_KEYS


# The screens that `open` shows by name, over the dashboard.
_SCREENS: dict[str, type[ViewScreen]] = {
    "tasks": TasksScreen,
    "blocks": BlocksScreen,
    "awaits": AwaitsScreen,
}


def _screen_keys(*screens: type[ViewScreen]) -> list[type[DOMNode]]:
    """The classes whose bindings act in ``screens``, in the order the help lists them: the
    screen classes they share first (every screen's, then every sub-screen's), then each screen's
    own with the widgets and modals it names in ``HELP_WITH``."""
    chains = [[c for c in reversed(s.__mro__) if issubclass(c, ViewScreen)] for s in screens]
    shared = [c for chain in chains for c in chain[:-1]]
    out: list[type[DOMNode]] = list(dict.fromkeys(shared))
    for chain in chains:
        out += [chain[-1], *chain[-1].HELP_WITH]
    return out


def _bindings_of(*classes: type[DOMNode]) -> list[Binding]:
    """The bindings that each of ``classes`` declares itself (not those it inherits)."""
    bindings: list[Binding] = []
    for cls in classes:
        own: list[BindingType] = vars(cls).get("BINDINGS", [])
        bindings += [b for b in own if isinstance(b, Binding)]
    return bindings


_DESCRIPTIONS = {
    "quit": "quit (the program loopscope started is stopped)",
    "help": "show / hide this list of keys",
    "app.toggle_pause": "pause / resume the display (collection goes on)",
    "select_cursor": "open the highlighted row: a finding, a task, a block",
    "open('dashboard')": "the dashboard",
    "open('tasks')": "tasks: every listed task, sortable, filterable; ended tasks",
    "open('blocks')": "blocks: each block, its stacks as a call tree, the blocking source",
    "open('awaits')": "awaits: where tasks wait, and the locks, queues... they wait on",
    "open('processes')": "processes: the program and its workers, one row each; enter shows one",
    "next_process": "show the next process on the dashboard, then all of them together",
    "app.close_screen": "back to the dashboard (or the screen before)",
    "filter": "tasks: filter by name, coroutine or await site (escape clears)",
    "next_sort": "tasks: sort by the next column (or click a column header)",
    "reverse": "tasks: reverse the order",
    "goto": "finding: go to its evidence (the blocks or the await site)",
    "flame": "blocks / awaits: the flame view (arrows move, enter zooms, w weight, escape back)",
}
