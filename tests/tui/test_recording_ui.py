"""Recording from the dashboard: the record key and the status line under the panels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dashboard_scenario import HOW, LOG_PATH, QueueSource, live_events
from helpers import in_loop, shown, until

from loopscope.record.reader import Recording
from loopscope.session import Session
from loopscope.sources.recorded import RecordedSource, RecordingControl
from loopscope.tui import make_app
from loopscope.tui.recording import RecordingApp, RecordingLine, status_line


@dataclass
class Status:
    path: Path
    dropped: int = 0
    error: str | None = None
    count: int = 1234
    size: int = 3 * 1024 * 1024


def test_status_line() -> None:
    assert status_line(Status(Path("r.lsrec"))).plain == "● REC r.lsrec · 3.0 MiB · 1,234 events"
    dropped = status_line(Status(Path("r.lsrec"), dropped=5, size=2048)).plain
    assert dropped == "● REC r.lsrec · 2 KiB · 1,234 events · 5 dropped"
    failed = status_line(Status(Path("r.lsrec"), error="writing r.lsrec failed: disk full"))
    assert failed.plain == "● recording stopped: writing r.lsrec failed: disk full"


@in_loop
async def test_the_record_key_starts_and_stops_a_recording(tmp_path: Path) -> None:
    events = live_events()
    source = QueueSource()
    recorded = RecordedSource(source)
    control = RecordingControl(recorded, directory=tmp_path / "recs", name="app", meta={"how": HOW})
    session = Session(recorded, clock=lambda: events[-1].t)
    session.start()
    half = len(events) // 2
    source.put(events[:half])
    app = make_app(session, log_path=LOG_PATH, how=HOW, refresh=0.05, recording=control)
    assert isinstance(app, RecordingApp)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await shown(pilot)
            line = app.dashboard.query_one(RecordingLine)
            assert not line.display
            await pilot.press("r")
            recorder = control.recorder
            assert recorder is not None and line.display
            assert recorder.path.parent == tmp_path / "recs"
            source.put(events[half:])
            await until(pilot, lambda: recorder.count >= len(events) - half)
            line.update()
            await pilot.pause()
            assert line.render().plain.startswith(f"● REC {recorder.path} · ")
            await pilot.press("r")
            assert control.recorder is None and control.done == [recorder]
            await pilot.pause()
            assert not line.display
            assert ("r", "start / stop recording (replay it with: loopscope replay FILE)") in (
                app.key_help()
            )
    finally:
        session.close()
        control.stop()
    with Recording.open(recorder.path) as rec:
        assert rec.info.complete
        kinds = [e.kind for e in rec.events()]
    # Started mid-session, it begins with what the dashboard knew: the target, its loop, the
    # agent's state; then what came after.
    assert sorted(kinds[:3]) == ["hello", "loop_started", "source_state"]
    assert len(kinds) == 3 + len(events) - half
