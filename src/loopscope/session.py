"""A session: one source read into one model, and the views (snapshot + findings) of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from loopscope.events import Hello, Notice
from loopscope.model import Model
from loopscope.model.snapshot import Snapshot
from loopscope.rules import evaluate
from loopscope.rules.finding import Finding
from loopscope.sources.base import Source

# close() waits this long for the reading thread; a source that ignores close() must not
# hang the program on exit (the thread is a daemon).
_JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class View:
    snapshot: Snapshot
    findings: tuple[Finding, ...]


class Session:
    """Reads a source on a thread into a model; hands out views (snapshot + findings)."""

    def __init__(self, source: Source, *, clock: Callable[[], float] | None = None) -> None:
        """``clock`` None: snapshots are taken at the latest event's time (replay, tests)."""
        self._source = source
        self._clock = clock
        self._model = Model()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ended = threading.Event()
        self._error: str | None = None
        self._hello_at: float | None = None

    def start(self) -> None:
        """Read the source on a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("session already started")
        self._thread = threading.Thread(target=self._read, name="loopscope-session", daemon=True)
        self._thread.start()

    def feed_all(self) -> None:
        """Read the whole source on this thread."""
        self._read()

    def _read(self) -> None:
        try:
            for event in self._source.events():
                if self._hello_at is None and isinstance(event, Hello):
                    self._hello_at = time.monotonic()
                with self._lock:
                    self._model.apply(event)
        except Exception as e:  # the session ends and says why
            self._error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            with self._lock:
                snap_t = self._model.snapshot().t
                self._model.apply(
                    Notice(t=snap_t, level="error", message=f"source failed: {self._error}")
                )
        finally:
            with self._lock:
                self._model.end()
            self._ended.set()

    def view(self) -> View:
        """A fresh snapshot and its findings; safe to call from any thread."""
        now = self._clock() if self._clock is not None else None
        with self._lock:
            snapshot = self._model.snapshot(now)
        return View(snapshot=snapshot, findings=evaluate(snapshot))

    @property
    def ended(self) -> bool:
        """The source has no more events (it ended, or failed: see ``error``)."""
        return self._ended.is_set()

    @property
    def hello_at(self) -> float | None:
        """``time.monotonic()`` when the target first said hello (None: not yet)."""
        return self._hello_at

    @property
    def error(self) -> str | None:
        """Why the source failed, if it did."""
        return self._error

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the source ends or ``timeout`` passes; whether it ended."""
        return self._ended.wait(timeout)

    def close(self) -> None:
        """Close the source and wait for the reading thread to finish."""
        self._source.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
