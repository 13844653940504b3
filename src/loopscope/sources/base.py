"""What every source is: something that yields events until it ends."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from loopscope.events import Event


class Source(Protocol):
    """A source of events. ``events()`` blocks while waiting and returns when the source ends;
    ``close()`` may be called from another thread and makes ``events()`` return soon."""

    def events(self) -> Iterator[Event]: ...

    def close(self) -> None: ...


class ListSource:
    """A fixed list of events: for tests, and for anything already in memory."""

    def __init__(self, events: Iterable[Event]) -> None:
        self._events = list(events)
        self._closed = False

    def events(self) -> Iterator[Event]:
        for event in self._events:
            if self._closed:
                return
            yield event

    def close(self) -> None:
        self._closed = True
