"""Replaying a recording as a plain source (`loopscope.replay` plays it on a clock)."""

from __future__ import annotations

from collections.abc import Iterator

from loopscope.events import Event
from loopscope.record.reader import Recording


class ReplaySource:
    """Every event of a recording, as fast as they can be read (for reports and exports).

    A damaged recording yields what can be read, then an error `Notice` saying so."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._closed = False

    def events(self) -> Iterator[Event]:
        for row in self.recording.rows():
            if self._closed:
                return
            yield row.event

    def close(self) -> None:
        self._closed = True
