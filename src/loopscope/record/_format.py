"""The recording file: a SQLite database with a ``meta`` and an ``events`` table.

``events`` holds every event as it reached loopscope: ``seq`` (1, 2, 3...), ``ts`` (the wall-clock
time loopscope received it, which is what the live UI went by), ``kind`` (the event's kind, for
queries) and ``payload`` (the event's wire JSON, exactly as ``events.encode`` writes it).
``meta`` holds JSON values by key: the schema version, what was recorded, when it ended.
``process_events`` holds the events of the program's child processes that loopscope followed,
in the same form plus the ``pid`` of the process each came from (a file without the table, or
a reader that does not know it, sees the program's own process only).
See docs/recording.md.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
FORMAT = "loopscope-recording"
# SQLite's header field for the application that owns a file ("LSRC"): a recording is
# recognised without reading a table, and `file(1)` can tell it apart from other databases.
APPLICATION_ID = 0x4C535243
SQLITE_MAGIC = b"SQLite format 3\x00"

SCHEMA = f"""
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_by_ts ON events (ts);
CREATE TABLE process_events (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    pid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX process_events_by_pid ON process_events (pid, seq);
"""


class RecordingError(Exception):
    """A file that cannot be read or written as a recording; the message says why, for the user."""
