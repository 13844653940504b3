"""A source whose events are also recorded, and the control that starts and stops recording."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from loopscope.events import Event, Hello, LoopStarted, LoopStopped, SourceState
from loopscope.record._format import RecordingError
from loopscope.record.writer import Recorder
from loopscope.sources.base import Source

_ORDER = {"hello": 0, "loop": 1, "source": 2}


class RecordedSource:
    """``source``'s events, each also handed to the current recorder (if any) as it passes.

    A recording can start mid-session (`record_to`): it begins with what the dashboard already
    knows of the target (its hello, its running loops, the state of each source), so that it
    replays on its own.
    """

    def __init__(self, source: Source, recorder: Recorder | None = None) -> None:
        self.source = source
        self._recorder = recorder
        self._lock = threading.Lock()
        self._context: dict[tuple[str, object], Event] = {}

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    def events(self) -> Iterator[Event]:
        for event in self.source.events():
            with self._lock:
                self._remember(event)
                if self._recorder is not None:
                    self._recorder.put(event)
            yield event

    def record_to(self, recorder: Recorder | None) -> Recorder | None:
        """Record from now on to ``recorder`` (None: stop); the previous recorder, to close."""
        with self._lock:
            previous, self._recorder = self._recorder, recorder
            if recorder is not None and recorder is not previous:
                # the target first, then its loops, then the state of each source
                for _, event in sorted(self._context.items(), key=lambda kv: _ORDER[kv[0][0]]):
                    recorder.put(event)
        return previous

    def close(self) -> None:
        self.source.close()

    def _remember(self, event: Event) -> None:
        if isinstance(event, Hello):
            self._context[("hello", None)] = event
        elif isinstance(event, LoopStarted):
            self._context[("loop", event.loop)] = event
        elif isinstance(event, LoopStopped):
            self._context.pop(("loop", event.loop), None)
        elif isinstance(event, SourceState):
            self._context[("source", event.source)] = event


class RecordingControl:
    """Starts and stops the recording of a session (the dashboard's record key).

    The first recording goes to ``first`` when given (``--record FILE``); each later one to a
    new file in ``directory`` named after the time and ``name``.
    """

    def __init__(
        self,
        source: RecordedSource,
        *,
        directory: Path,
        name: str,
        meta: Mapping[str, Any] | None = None,
        first: Path | None = None,
    ) -> None:
        self._source = source
        self._directory = directory
        self._name = name
        self._meta = dict(meta or {})
        self._first = first
        self.done: list[Recorder] = []  # recordings stopped, oldest first

    @property
    def recorder(self) -> Recorder | None:
        return self._source.recorder

    def start(self) -> Recorder:
        """Start recording (if not already); RecordingError when the file cannot be made."""
        current = self._source.recorder
        if current is not None:
            return current
        path = self._first if self._first is not None else self._new_path()
        self._first = None
        recorder = Recorder(path, meta=self._meta)
        self._source.record_to(recorder)
        return recorder

    def stop(self) -> Recorder | None:
        """Stop recording and close the file; the recorder that stopped."""
        recorder = self._source.record_to(None)
        if recorder is not None:
            recorder.close()
            self.done.append(recorder)
        return recorder

    def toggle(self) -> Recorder | None:
        """Start or stop; the recorder now running, if any."""
        if self._source.recorder is None:
            return self.start()
        self.stop()
        return None

    def _new_path(self) -> Path:
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RecordingError(f"cannot create {self._directory}: {e.strerror}") from None
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._name}"
        path = self._directory / f"{stem}.lsrec"
        n = 1
        while path.exists():
            n += 1
            path = self._directory / f"{stem}-{n}.lsrec"
        return path
