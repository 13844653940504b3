"""Recording from the dashboard: a key to start and stop, and a status line saying where to
and how much so far while it records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget

from loopscope.record._format import RecordingError
from loopscope.tui.app import LoopscopeApp, Views
from loopscope.tui.dashboard import DashboardScreen


class RecordingStatus(Protocol):
    """What the status line shows of a recorder (`loopscope.record.writer.Recorder`)."""

    path: Path
    dropped: int

    @property
    def error(self) -> str | None: ...

    @property
    def count(self) -> int: ...

    @property
    def size(self) -> int: ...


class RecordingControl(Protocol):
    """Starts and stops recording (`loopscope.sources.recorded.RecordingControl`)."""

    @property
    def recorder(self) -> RecordingStatus | None: ...

    @property
    def done(self) -> Sequence[RecordingStatus]: ...

    def toggle(self) -> RecordingStatus | None: ...


def status_line(status: RecordingStatus) -> Text:
    text = Text()
    if status.error is not None:
        text.append("● recording stopped: ", style="bold yellow")
        text.append(status.error)
        return text
    text.append("● REC ", style="bold red")
    text.append(str(status.path))
    text.append(f" · {_size(status.size)} · {status.count:,} events", style="dim")
    if status.dropped:
        text.append(f" · {status.dropped:,} dropped", style="yellow")
    return text


def _size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


class RecordingLine(Widget):
    """The recording's progress; hidden while nothing is recorded."""

    DEFAULT_CSS = """
    RecordingLine {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, control: RecordingControl) -> None:
        super().__init__()
        self.control = control

    def on_mount(self) -> None:
        self.update()
        self.set_interval(1.0, self.update)

    def update(self) -> None:
        self.display = self.control.recorder is not None
        self.refresh()

    def render(self) -> Text:
        recorder = self.control.recorder
        return Text() if recorder is None else status_line(recorder)


class RecordingDashboard(DashboardScreen):
    """The dashboard, with the recording's status line below the panels."""

    def __init__(self, control: RecordingControl, *, how: str, log_path: str | None) -> None:
        super().__init__(how=how, log_path=log_path)
        self._control = control

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield RecordingLine(self._control)


class RecordingApp(LoopscopeApp):
    """The live dashboard with a key that starts and stops recording."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "toggle_recording", "Record")]

    def __init__(
        self,
        session: Views,
        control: RecordingControl,
        *,
        log_path: str | None = None,
        how: str = "",
        refresh: float = 0.25,
    ) -> None:
        super().__init__(session, log_path=log_path, how=how, refresh=refresh)
        self.control = control
        self.dashboard = RecordingDashboard(control, how=how, log_path=log_path)

    def action_toggle_recording(self) -> None:
        try:
            recorder = self.control.toggle()
        except RecordingError as e:
            self.notify(str(e), title="Not recording", severity="error")
            return
        if recorder is not None:
            self.notify(f"Recording to {recorder.path}", title="Recording")
        elif self.control.done:
            last = self.control.done[-1]
            self.notify(f"Saved {last.count:,} events to {last.path}", title="Recording stopped")
        self.dashboard.query_one(RecordingLine).update()

    def key_help(self) -> list[tuple[str, str]]:
        keys = super().key_help()
        record = ("r", "start / stop recording (replay it with: loopscope replay FILE)")
        return [*keys[:1], record, *keys[1:]]
