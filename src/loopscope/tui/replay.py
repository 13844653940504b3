"""The dashboard on a recording: the same screen, a timeline below it, and transport keys."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from loopscope.replay import ReplayClock, ReplaySession
from loopscope.tui.app import LoopscopeApp
from loopscope.tui.dashboard import DashboardScreen
from loopscope.tui.timeline import Timeline

STEP_S = 1.0
JUMP_S = 10.0


class ReplayDashboard(DashboardScreen):
    # In a replay, space plays and pauses the recording: the clock stopping freezes the view.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("space", "app.play_pause", "Play/Pause")]

    def __init__(self, clock: ReplayClock, blocks: list[tuple[float, float]], *, how: str) -> None:
        super().__init__(how=how)
        self._clock = clock
        self._blocks = blocks

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield Timeline(self._clock, self._blocks, id="timeline")


class ReplayApp(LoopscopeApp):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "slower", "Slower"),
        Binding("right_square_bracket", "faster", "Faster"),
        Binding("comma", f"step({-STEP_S})", f"-{STEP_S:g}s"),
        Binding("full_stop", f"step({STEP_S})", f"+{STEP_S:g}s"),
        Binding("b", f"step({-JUMP_S})", f"-{JUMP_S:g}s", show=False),
        Binding("f", f"step({JUMP_S})", f"+{JUMP_S:g}s", show=False),
        Binding("0", "seek_start", "Start", show=False),
    ]

    def __init__(self, session: ReplaySession, *, how: str, refresh: float = 0.1) -> None:
        super().__init__(session, how=how, refresh=refresh)
        self.clock = session.clock
        self.dashboard = ReplayDashboard(session.clock, session.recording.block_times(), how=how)

    def action_play_pause(self) -> None:
        self.clock.toggle()
        self._moved()

    def action_toggle_pause(self) -> None:
        # On every screen, space plays and pauses the recording.
        self.action_play_pause()

    def action_faster(self) -> None:
        self.clock.faster()
        self._moved()

    def action_slower(self) -> None:
        self.clock.slower()
        self._moved()

    def action_step(self, seconds: float) -> None:
        self.clock.step(seconds)
        self._moved()

    def action_seek_start(self) -> None:
        self.clock.seek(self.clock.start)
        self._moved()

    def _moved(self) -> None:
        self.dashboard.query_one(Timeline).refresh()

    def key_help(self) -> list[tuple[str, str]]:
        own = [
            (self.get_key_display(b), _DESCRIPTIONS.get(b.action, b.description))
            for b in (*ReplayDashboard.BINDINGS, *ReplayApp.BINDINGS)
            if isinstance(b, Binding)
        ]
        own.append(("click", "seek: click the timeline"))
        return own + [k for k in super().key_help() if k[0] != "space"]


_DESCRIPTIONS = {
    "app.play_pause": "play / pause the replay (at the end: play from the start)",
    "slower": "slower (down to ¼×)",  # noqa: RUF001 (the multiplication sign is meant)
    "faster": "faster (up to 16×)",  # noqa: RUF001 (the multiplication sign is meant)
    f"step({-STEP_S})": f"back {STEP_S:g} s",
    f"step({STEP_S})": f"forward {STEP_S:g} s",
    f"step({-JUMP_S})": f"back {JUMP_S:g} s",
    f"step({JUMP_S})": f"forward {JUMP_S:g} s",
    "seek_start": "back to the start",
}


def make_replay_app(session: ReplaySession, *, refresh: float = 0.1) -> ReplayApp:
    """The dashboard replaying ``session``'s recording; the caller closes the session."""
    info = session.recording.info
    how = f"replay of {info.path.name}"
    if not info.complete:
        how += " (the recorder stopped before the end)"
    return ReplayApp(session, how=how, refresh=refresh)
