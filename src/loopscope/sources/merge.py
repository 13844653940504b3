"""Several sources read as one: the events of each, in the order they arrive."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from loopscope.events import Event, Notice, TargetExited
from loopscope.sources.base import Source

_JOIN_TIMEOUT = 5.0


class _End:
    """A reading thread's last item."""


class MergedSource:
    """The events of each of ``sources``, each read on its own thread; it ends when they all
    have ended.

    A ``leader`` (one of ``sources``) decides how long this lasts: when it ends, the others are
    closed and their last events (a final window of samples, their "ended" state) are passed
    on. The target's exit (`TargetExited`) comes last. A source that ends early (py-spy not
    allowed, say) leaves the others running. A source that raises ends with a `Notice` saying
    so; the others go on.
    """

    def __init__(self, sources: Sequence[Source], *, leader: Source | None = None) -> None:
        self.sources = tuple(sources)
        self.leader = leader

    def events(self) -> Iterator[Event]:
        items: queue.Queue[Event | _End] = queue.Queue()
        sources = self.sources
        threads = [
            threading.Thread(
                target=self._read, args=(s, items), name=f"loopscope-source-{i}", daemon=True
            )
            for i, s in enumerate(sources)
        ]
        for thread in threads:
            thread.start()
        running = len(threads)
        exited: list[TargetExited] = []
        while running:
            item = items.get()
            if isinstance(item, TargetExited):
                exited.append(item)  # the program's end is the last thing said
                continue
            if isinstance(item, _End):
                running -= 1
                if item is self._leader_end:
                    for source in self.sources:
                        if source is not self.leader:
                            source.close()
                continue
            yield item
        yield from exited
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)

    _leader_end = _End()

    def _read(self, source: Source, items: queue.Queue[Event | _End]) -> None:
        try:
            for event in source.events():
                items.put(event)
        except Exception as e:  # one failing source must not end the others
            items.put(
                Notice(
                    t=time.time(),
                    level="error",
                    message=f"a source failed: {type(e).__name__}: {e}",
                )
            )
        finally:
            items.put(self._leader_end if source is self.leader else _End())

    def close(self) -> None:
        for source in self.sources:
            source.close()


class Fallback:
    """``primary``'s events, or, when it ends without having been live (``live()`` false, a
    sampler that cannot run on this target), ``fallback``'s after them: both say why in their
    states. Closing it closes both, and the fallback is not started after that."""

    def __init__(self, primary: Source, fallback: Source, *, live: Callable[[], bool]) -> None:
        self.primary = primary
        self.fallback = fallback
        self._live = live
        self._closed = threading.Event()

    def events(self) -> Iterator[Event]:
        yield from self.primary.events()
        if not self._closed.is_set() and not self._live():
            yield from self.fallback.events()

    def close(self) -> None:
        self._closed.set()
        self.primary.close()
        self.fallback.close()
