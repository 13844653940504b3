"""Writing recordings: the file writer, and the recorder thread that feeds it from a session.

The session's reading thread only hands each event to the recorder's queue (`Recorder.put`);
encoding and writing happen on the recorder's own thread, in one transaction per
``flush_interval``, so a recorder killed with SIGKILL loses at most that much.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loopscope import __version__
from loopscope.events import Event, encode
from loopscope.record._format import (
    APPLICATION_ID,
    FORMAT,
    SCHEMA,
    SCHEMA_VERSION,
    SQLITE_MAGIC,
    RecordingError,
)

FLUSH_INTERVAL = 0.5  # seconds of events written per transaction; at most this much is lost
_BUSY_TIMEOUT = 30.0  # seconds a write waits for readers of the file
_CACHE_KIB = 256  # the writer's page cache
MAX_QUEUED = 200_000  # events waiting to be written; beyond that they are dropped and counted


def check_target(path: Path) -> None:
    """Raise RecordingError unless a recording can be written at ``path``.

    An existing recording is replaced; any other existing file is left alone, so that a typo
    in ``--record`` never destroys a user's file.
    """
    if path.is_dir():
        raise RecordingError(f"{path} is a directory")
    if not path.parent.is_dir():
        raise RecordingError(f"{path}: no such directory {path.parent}")
    if path.exists():
        if not _is_recording(path):
            raise RecordingError(
                f"{path} exists and is not a loopscope recording; not replacing it"
            )
        if not os.access(path, os.W_OK):
            raise RecordingError(f"{path}: permission denied")
    elif not os.access(path.parent, os.W_OK):
        raise RecordingError(f"{path}: cannot create files in {path.parent}: permission denied")


def _is_recording(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError:
        return False
    return (
        len(header) == 100
        and header[:16] == SQLITE_MAGIC
        and int.from_bytes(header[68:72], "big") == APPLICATION_ID
    )


class RecordingWriter:
    """A new recording file at ``path`` (an existing recording there is replaced). One thread."""

    def __init__(self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        check_target(self.path)
        for suffix in ("", "-journal"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
            except OSError as e:
                raise RecordingError(f"{self.path}: cannot replace it: {e.strerror}") from None
        try:
            # A reader of the file (a report or replay of a recording in progress) holds it
            # briefly; the recorder's own thread can afford to wait for it.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT
            )
            # The rollback journal keeps the recording one file; a committed transaction is in
            # the file once the OS has it, which is what surviving a killed process needs.
            self._db.execute("PRAGMA synchronous = NORMAL")
            # Rows are only appended: the pages written last are all the writer touches again,
            # and SQLite's default page cache (2 MiB) would only grow the recorder's memory.
            self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            self._db.executescript(SCHEMA)
            self._seq = 0
            self._others = 0  # events of child processes written
            self.set_meta(
                {
                    "format": FORMAT,
                    "schema_version": SCHEMA_VERSION,
                    "loopscope_version": __version__,
                    "created": time.time(),
                    "complete": False,
                    **dict(meta or {}),
                }
            )
        except sqlite3.Error as e:
            raise RecordingError(f"{self.path}: cannot write a recording: {e}") from None

    @property
    def count(self) -> int:
        """Events written (the child processes' included)."""
        return self._seq + self._others

    def set_meta(self, values: Mapping[str, Any]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def append(
        self, rows: list[tuple[float, Event]] | list[tuple[float, Event, int | None]]
    ) -> None:
        """Write ``(received at, event)`` rows in one transaction; a row ``(received at, event,
        pid)`` with a pid is an event of that child process."""
        if not rows:
            return
        own = [(r[0], r[1]) for r in rows if len(r) < 3 or r[2] is None]
        others = [r for r in rows if len(r) > 2 and r[2] is not None]
        first = self._seq + 1
        encoded = [(first + i, ts, ev.kind, encode(ev)) for i, (ts, ev) in enumerate(own)]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO events (seq, ts, kind, payload) VALUES (?, ?, ?, ?)", encoded
            )
            if others:
                self._db.executemany(
                    "INSERT INTO process_events (ts, pid, kind, payload) VALUES (?, ?, ?, ?)",
                    [(r[0], r[2], r[1].kind, encode(r[1])) for r in others],
                )
        self._seq += len(own)
        self._others += len(others)

    def close(self, meta: Mapping[str, Any] | None = None) -> None:
        """Mark the recording complete (with ``meta``) and close the file."""
        try:
            self.set_meta({"complete": True, "events": self._seq, **dict(meta or {})})
        finally:
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


_STOP = object()


class Recorder:
    """Records events to a file on a thread of its own; `put` never blocks.

    A write that fails (disk full, file removed) stops the recording; ``error`` says why and
    the session goes on without it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        meta: Mapping[str, Any] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.time,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._writer = RecordingWriter(path, meta)
        self.path = self._writer.path
        self._flush_interval = flush_interval
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._thread = threading.Thread(target=self._run, name="loopscope-recorder", daemon=True)
        self._closed = False
        self.dropped = 0
        self.error: str | None = None
        self._thread.start()

    @property
    def count(self) -> int:
        """Events written so far."""
        return self._writer.count

    @property
    def size(self) -> int:
        """Bytes in the file so far."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def put(self, event: Event, pid: int | None = None) -> None:
        """Queue ``event``, stamped with the time it arrived; from any thread. ``pid``: the
        child process it came from (None: the program's own)."""
        if self._closed or self.error is not None:
            return
        try:
            self._queue.put_nowait((self._clock(), event, pid))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, mark the recording complete and close it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:  # the thread stopped on a write error and no longer reads
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as e:  # never a traceback from a helper thread; the user is told
            self.error = f"recording to {self.path} failed: {type(e).__name__}: {e}"

    def _loop(self) -> None:
        batch: list[tuple[float, Event, int | None]] = []
        next_flush = time.monotonic() + self._flush_interval
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                stopping = True
            elif item is not None:
                batch.append(item)  # type: ignore[arg-type]
            if stopping or time.monotonic() >= next_flush:
                if not self._write(batch):
                    break
                batch = []
                next_flush = time.monotonic() + self._flush_interval
        self._finish()

    def _write(self, batch: list[tuple[float, Event, int | None]]) -> bool:
        try:
            self._writer.append(batch)
        except (sqlite3.Error, OSError) as e:
            self.error = f"writing {self.path} failed: {e}"
            return False
        return True

    def _finish(self) -> None:
        try:
            self._writer.close({"ended": self._clock(), "dropped": self.dropped})
        except (sqlite3.Error, OSError) as e:
            if self.error is None:
                self.error = f"closing {self.path} failed: {e}"


