"""Reading recordings.

Nothing in a file can make the reader raise anything but `RecordingError`, and only when the
file is opened: an event that cannot be decoded becomes a warning `Notice` in its place, and a
file that is damaged part-way (truncated, overwritten) yields what can be read, then an error
`Notice`, and says so in ``damaged``.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopscope.events import DecodeError, Event, Notice, decode
from loopscope.record._format import (
    APPLICATION_ID,
    FORMAT,
    SCHEMA_VERSION,
    SQLITE_MAGIC,
    RecordingError,
)

_BATCH = 1000  # rows per query while iterating


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    ts: float  # when loopscope received the event
    event: Event


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    path: Path
    schema_version: int
    meta: dict[str, Any]
    count: int  # events in the file (the last sequence number)
    start: float  # ts of the first event (0.0 when there is none)
    end: float  # latest ts
    complete: bool  # the recorder closed the file; False if it was killed or is still writing

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


class Recording:
    """A recording opened for reading. Use `open`; close it when done (or use ``with``)."""

    def __init__(self, path: Path, db: sqlite3.Connection, info: RecordingInfo) -> None:
        self.path = path
        self._db = db
        self.info = info
        self.damaged: str | None = None  # what went wrong reading the file part-way
        self.pid: int | None = None  # the child process read (None: the program's own)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Recording:
        path = Path(path)
        truncated = _check_file(path)
        db = _connect(path)
        try:
            info = _read_info(path, db)
        except (sqlite3.Error, RecordingError) as e:
            db.close()
            if truncated:
                raise RecordingError(f"{path}: the recording is truncated") from None
            if isinstance(e, RecordingError):
                raise
            raise RecordingError(f"{path}: the recording is damaged ({e})") from None
        return cls(path, db, info)

    def __enter__(self) -> Recording:
        return self

    def pids(self) -> list[int]:
        """The child processes whose events the recording holds, by pid."""
        try:
            return [
                int(pid)
                for (pid,) in self._db.execute(
                    "SELECT DISTINCT pid FROM process_events ORDER BY pid"
                )
            ]
        except sqlite3.Error:  # an older recording, without the table
            return []

    def of(self, pid: int) -> Recording:
        """The same recording, reading the events of child process ``pid`` (see `pids`)."""
        child = Recording(self.path, self._db, self.info)
        child.pid = pid
        return child

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def rows(
        self,
        *,
        after: int = 0,
        until: float | None = None,
        skip: Mapping[str, float] | None = None,
    ) -> Iterator[Row]:
        """The events after sequence number ``after``, in order, up to (not past) the first one
        received after ``until``; ``skip`` maps kinds of event to a time before which events of
        that kind are passed over without being decoded."""
        last_ts = self.info.start
        while True:
            fetched = 0
            cursor = self._db.cursor()
            try:
                if self.pid is None:
                    cursor.execute(
                        "SELECT seq, ts, kind, payload FROM events WHERE seq > ? "
                        "ORDER BY seq LIMIT ?",
                        (after, _BATCH),
                    )
                else:
                    cursor.execute(
                        "SELECT seq, ts, kind, payload FROM process_events "
                        "WHERE pid = ? AND seq > ? ORDER BY seq LIMIT ?",
                        (self.pid, after, _BATCH),
                    )
                while True:
                    # Row by row, so that a file damaged part-way yields every row before it.
                    found = cursor.fetchone()
                    if found is None:
                        break
                    seq, ts, kind, payload = found
                    # Pages missing from a truncated file read as zeros: rows out of order.
                    if not (isinstance(seq, int) and seq > after):
                        raise sqlite3.DatabaseError("events out of order")
                    fetched += 1
                    ts = _number(ts)
                    if ts is None:
                        ts = last_ts
                    if until is not None and ts > until:
                        return
                    last_ts = ts
                    after = seq
                    if skip and isinstance(kind, str) and ts < skip.get(kind, -math.inf):
                        continue
                    yield Row(seq, ts, _event(seq, ts, payload))
            except sqlite3.Error as e:
                self.damaged = f"the recording is damaged after event {after} ({e})"
                yield Row(after, last_ts, Notice(t=last_ts, level="error", message=self.damaged))
                return
            finally:
                cursor.close()
            if fetched < _BATCH:
                return

    def events(self) -> Iterator[Event]:
        for row in self.rows():
            yield row.event

    def block_times(self) -> list[tuple[float, float]]:
        """(ts, duration) of every block, for a timeline; cheap: the payload is not decoded."""
        try:
            return [
                (float(ts), float(d))
                for ts, d in self._db.execute(
                    "SELECT ts, json_extract(payload, '$.duration') FROM events "
                    "WHERE kind = 'block' ORDER BY seq"
                    if self.pid is None
                    else "SELECT ts, json_extract(payload, '$.duration') FROM process_events "
                    f"WHERE kind = 'block' AND pid = {int(self.pid)} ORDER BY seq"
                )
                if isinstance(ts, (int, float)) and isinstance(d, (int, float))
            ]
        except (sqlite3.Error, ValueError, OverflowError):
            return []


def _event(seq: int, ts: float, payload: object) -> Event:
    try:
        if not isinstance(payload, (str, bytes)):
            raise DecodeError("payload is not text")
        return decode(payload)
    except DecodeError as e:
        return Notice(t=ts, level="warning", message=f"recording: event {seq} is unreadable: {e}")


def _check_file(path: Path) -> bool:
    """Raise RecordingError for a file that is not a recording at all; whether it is shorter
    than its header says (truncated)."""
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        raise RecordingError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise RecordingError(f"{path} is a directory, not a recording") from None
    except OSError as e:
        raise RecordingError(f"cannot read {path}: {e.strerror}") from None
    if not header:
        raise RecordingError(f"{path} is empty, not a loopscope recording")
    if not header.startswith(SQLITE_MAGIC):
        raise RecordingError(f"{path} is not a loopscope recording (not an SQLite file)")
    if len(header) < 100:
        raise RecordingError(f"{path}: the recording is truncated ({len(header)} bytes)")
    if int.from_bytes(header[68:72], "big") != APPLICATION_ID:
        raise RecordingError(f"{path} is an SQLite database but not a loopscope recording")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # SQLite trusts the page count only while the change counter matches "version valid for".
    counted = header[24:28] == header[92:96]
    try:
        return counted and path.stat().st_size < pages * page_size
    except OSError:
        return False


def _connect(path: Path) -> sqlite3.Connection:
    # Read-write, not read-only: a recorder killed mid-transaction leaves a journal that only a
    # writer can roll back. A file we may not write is opened read-only instead.
    uri = path.resolve().as_uri()
    for mode in ("rw", "ro"):
        try:
            db = sqlite3.connect(f"{uri}?mode={mode}", uri=True, check_same_thread=False)
            db.execute("PRAGMA query_only = ON")
            # A truncated file claims more pages than it has, which SQLite refuses to read at
            # all unless the schema is "writable"; query_only still forbids any write.
            db.execute("PRAGMA writable_schema = ON")
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.Error as e:
            error = e
    raise RecordingError(f"{path}: cannot open the recording ({error})")


def _read_info(path: Path, db: sqlite3.Connection) -> RecordingInfo:
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"meta", "events"} <= tables:
        raise RecordingError(f"{path}: not a loopscope recording (its tables are missing)")
    meta: dict[str, Any] = {}
    for key, value in db.execute("SELECT key, value FROM meta"):
        try:
            meta[str(key)] = json.loads(value)
        except (TypeError, ValueError, RecursionError):
            meta[str(key)] = value
    version = meta.get("schema_version")
    if meta.get("format") != FORMAT or not isinstance(version, int) or isinstance(version, bool):
        raise RecordingError(f"{path}: not a loopscope recording (its meta table is not ours)")
    if version > SCHEMA_VERSION:
        raise RecordingError(
            f"{path} was written by a newer loopscope (recording schema {version}; this "
            f"loopscope reads up to {SCHEMA_VERSION}): upgrade loopscope to read it"
        )
    if version < 1:
        raise RecordingError(f"{path}: unknown recording schema {version}")
    count, start, end = _extent(db)
    complete = meta.get("complete") is True
    return RecordingInfo(path, version, meta, count, start, end, complete)


def _extent(db: sqlite3.Connection) -> tuple[int, float, float]:
    """(last seq, first ts, latest ts). Damage at the end of the file is not an error here:
    what can be read is replayed."""
    try:
        last = db.execute("SELECT max(seq) FROM events").fetchone()[0]
        first = db.execute("SELECT ts FROM events ORDER BY seq LIMIT 1").fetchone()
        latest = db.execute("SELECT max(ts) FROM events").fetchone()[0]
        if first is None or last is None:
            return 0, 0.0, 0.0
        start, end = _number(first[0]), _number(latest)
        if start is not None and end is not None and isinstance(last, int):
            return last, start, max(start, end)
    except sqlite3.DatabaseError:
        pass
    # Damaged or odd: walk the rows that can be read.
    count, start_ts, end_ts = 0, None, None
    after = 0
    while True:
        try:
            batch = db.execute(
                "SELECT seq, ts FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, _BATCH)
            ).fetchall()
        except sqlite3.DatabaseError:
            break
        for seq, ts in batch:
            after = count = seq
            value = _number(ts)
            if value is not None:
                start_ts = value if start_ts is None else start_ts
                end_ts = value if end_ts is None else max(end_ts, value)
        if len(batch) < _BATCH:
            break
    if start_ts is None or end_ts is None:
        return count, 0.0, 0.0
    return count, start_ts, end_ts


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
