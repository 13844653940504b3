"""Recordings built for the tests: events written with the time each would have arrived."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from loopscope.events import Block, Event
from loopscope.record.writer import RecordingWriter
from tui.dashboard_scenario import exited_events

DATA = Path(__file__).resolve().parent.parent / "data"
GOLDEN = DATA / "golden-v1.lsrec"


def arrival(event: Event) -> float:
    """When a live session would have received ``event``: a block is sent when it ends."""
    return event.t + event.duration if isinstance(event, Block) else event.t


def in_arrival_order(events: Iterable[Event]) -> list[tuple[float, Event]]:
    return sorted(((arrival(e), e) for e in events), key=lambda row: row[0])


def write(path: Path, events: Iterable[Event], **meta: object) -> list[tuple[float, Event]]:
    rows = in_arrival_order(events)
    writer = RecordingWriter(path, {"how": "test", **meta})
    writer.append(rows)
    writer.close()
    return rows


def scenario() -> list[Event]:
    """The dashboard tests' session: a loop blocking in render_report, then the exit."""
    return exited_events()
