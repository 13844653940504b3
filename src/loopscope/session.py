"""A session: one source read into one model, and the views (snapshot + findings) of it."""

from __future__ import annotations

import ctypes
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
# Memory that Python frees (decoded events, the model's timeline as it moves on, SQLite's pages)
# goes back to the C allocator, and glibc keeps most of it in its arenas until it is asked to
# hand it back: a client following a busy target for an hour grew by that alone (BENCHMARKS.md,
# "The client's memory"). A live session asks at most once this often.
TRIM_EVERY_S = 60.0


def _find_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


release_free_memory = _find_trim()


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
        # Only a live session trims: a replay reads its whole file at once and ends.
        release = release_free_memory if self._clock is not None else None
        next_release = time.monotonic() + TRIM_EVERY_S
        try:
            for event in self._source.events():
                if self._hello_at is None and isinstance(event, Hello):
                    self._hello_at = time.monotonic()
                with self._lock:
                    self._model.apply(event)
                if release is not None and time.monotonic() >= next_release:
                    release()
                    next_release = time.monotonic() + TRIM_EVERY_S
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
