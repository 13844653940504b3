"""Races: the race windows found in the source, the runtime's sightings of tasks inside them, and
the lost updates `loopscope.watch` reported."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from loopscope.events import Frame, LostUpdate, RaceSpan, RaceWindow, RaceWindows
from loopscope.model.snapshot import LostUpdateView, RaceView, RaceWindowView

MAX_WINDOWS = 5_000  # windows kept from the scan; further ones are dropped
MAX_SHOWN = 200  # windows in a snapshot (all observed ones come first)
MAX_LOST = 100  # lost-update places kept
MAX_NAMES = 5


def _key(span: RaceSpan) -> tuple[str, int, str, int, int]:
    # The await lines are left out: the runtime's copy of a window is the scanner's.
    return (span.file, span.first_line, span.target, span.read_line, span.write_line)


@dataclass
class _Window:
    span: RaceSpan
    observations: int = 0
    max_tasks: int = 0
    tasks: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_NAMES))
    first_t: float | None = None
    last_t: float | None = None


@dataclass
class _Lost:
    latest: LostUpdate
    count: int = 0
    tasks: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_NAMES))
    other_tasks: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_NAMES))
    first_t: float = 0.0


class RaceState:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, int, str, int, int], _Window] = {}
        self._lost: dict[tuple[str, Frame, Frame], _Lost] = {}
        self._files = 0
        self._functions = 0

    def scanned(self, event: RaceWindows) -> None:
        self._files += event.files
        self._functions += event.functions
        for span in event.windows:
            key = _key(span)
            if key not in self._windows and len(self._windows) < MAX_WINDOWS:
                self._windows[key] = _Window(span)

    def observed(self, event: RaceWindow) -> None:
        key = _key(event.window)
        window = self._windows.get(key)
        if window is None:  # seen before its scan arrived (or the scan was dropped)
            window = self._windows[key] = _Window(event.window)
        window.observations += 1
        window.max_tasks = max(window.max_tasks, event.count)
        for name in event.tasks:
            if name in window.tasks:
                window.tasks.remove(name)
            window.tasks.appendleft(name)
        if window.first_t is None:
            window.first_t = event.t
        window.last_t = event.t

    def lost(self, event: LostUpdate) -> None:
        key = (event.target, event.read, event.write)
        entry = self._lost.get(key)
        if entry is None:
            if len(self._lost) >= MAX_LOST:
                return
            entry = self._lost[key] = _Lost(event, first_t=event.t)
        entry.latest = event
        entry.count += 1 + max(0, event.repeats)
        for names, name in ((entry.tasks, event.task), (entry.other_tasks, event.other_task)):
            if name not in names:
                names.append(name)

    def view(self) -> RaceView:
        windows = sorted(
            self._windows.values(),
            key=lambda w: (-w.observations, w.span.file, w.span.read_line, w.span.target),
        )[:MAX_SHOWN]
        lost = sorted(self._lost.values(), key=lambda e: -e.count)
        return RaceView(
            windows=tuple(
                RaceWindowView(
                    span=w.span,
                    observations=w.observations,
                    max_tasks=w.max_tasks,
                    tasks=tuple(w.tasks),
                    first_t=w.first_t,
                    last_t=w.last_t,
                )
                for w in windows
            ),
            lost_updates=tuple(
                LostUpdateView(
                    target=e.latest.target,
                    read=e.latest.read,
                    write=e.latest.write,
                    other_write=e.latest.other_write,
                    count=e.count,
                    tasks=tuple(e.tasks),
                    other_tasks=tuple(e.other_tasks),
                    version_read=e.latest.version_read,
                    version_now=e.latest.version_now,
                    first_t=e.first_t,
                    last_t=e.latest.t,
                )
                for e in lost
            ),
            files_scanned=self._files,
            functions_scanned=self._functions,
        )
