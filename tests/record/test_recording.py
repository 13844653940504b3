from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recordings import GOLDEN, scenario, write

from builders import block, hello, lag
from loopscope.events import Event, Notice, encode
from loopscope.record._format import SCHEMA_VERSION, RecordingError
from loopscope.record.reader import Recording
from loopscope.record.writer import Recorder, RecordingWriter
from loopscope.sources.base import ListSource
from loopscope.sources.recorded import RecordedSource


def read_all(path: Path) -> list[tuple[int, float, Event]]:
    with Recording.open(path) as rec:
        return [(r.seq, r.ts, r.event) for r in rec.rows()]


def test_round_trip_keeps_every_event_and_its_arrival(tmp_path: Path) -> None:
    rows = write(tmp_path / "r.lsrec", scenario())
    read = read_all(tmp_path / "r.lsrec")
    assert [(ts, ev) for _, ts, ev in read] == rows
    assert [seq for seq, _, _ in read] == list(range(1, len(rows) + 1))
    with Recording.open(tmp_path / "r.lsrec") as rec:
        info = rec.info
        assert info.count == len(rows)
        assert info.start == rows[0][0] and info.end == rows[-1][0]
        assert info.complete and info.schema_version == SCHEMA_VERSION
        assert info.meta["how"] == "test"
        assert rec.damaged is None


def test_payload_is_the_wire_event(tmp_path: Path) -> None:
    rows = write(tmp_path / "r.lsrec", scenario())
    db = sqlite3.connect(tmp_path / "r.lsrec")
    stored = db.execute("SELECT kind, payload FROM events ORDER BY seq").fetchall()
    db.close()
    assert stored == [(ev.kind, encode(ev)) for _, ev in rows]


def test_rows_stop_before_the_first_event_received_after_until(tmp_path: Path) -> None:
    rows = write(tmp_path / "r.lsrec", scenario())
    middle = rows[len(rows) // 2][0]
    with Recording.open(tmp_path / "r.lsrec") as rec:
        first = list(rec.rows(until=middle))
        rest = list(rec.rows(after=first[-1].seq))
    assert all(r.ts <= middle for r in first)
    assert [r.event for r in first + rest] == [ev for _, ev in rows]


def test_the_golden_recording_reads() -> None:
    # Written by an earlier loopscope; a change that cannot read it breaks old recordings.
    read = read_all(GOLDEN)
    assert [ev for _, _, ev in read] == [
        ev for _, ev in sorted(((ts, ev) for ts, ev in _golden_rows()), key=lambda r: r[0])
    ]


def _golden_rows() -> list[tuple[float, Event]]:
    from recordings import in_arrival_order

    return in_arrival_order(scenario())


# -- bad files ----------------------------------------------------------------------------------


def _message(path: Path) -> str:
    with pytest.raises(RecordingError) as e:
        Recording.open(path)
    return str(e.value)


def test_a_missing_file(tmp_path: Path) -> None:
    assert _message(tmp_path / "nope.lsrec") == f"no such file: {tmp_path / 'nope.lsrec'}"


def test_a_directory(tmp_path: Path) -> None:
    assert "is a directory" in _message(tmp_path)


def test_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"")
    assert "is empty, not a loopscope recording" in _message(tmp_path / "e")


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text('{"kind": "hello"}\n')
    assert "not a loopscope recording (not an SQLite file)" in _message(tmp_path / "t.json")


def test_an_sqlite_file_that_is_not_a_recording(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    assert "is an SQLite database but not a loopscope recording" in _message(tmp_path / "other.db")


def test_a_recording_from_a_newer_schema(tmp_path: Path) -> None:
    write(tmp_path / "r.lsrec", scenario())
    db = sqlite3.connect(tmp_path / "r.lsrec")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    message = _message(tmp_path / "r.lsrec")
    assert "was written by a newer loopscope" in message and "upgrade loopscope" in message


def test_a_recording_without_its_tables(tmp_path: Path) -> None:
    write(tmp_path / "r.lsrec", scenario())
    db = sqlite3.connect(tmp_path / "r.lsrec")
    db.execute("DROP TABLE events")
    db.commit()
    db.close()
    assert "its tables are missing" in _message(tmp_path / "r.lsrec")


def test_a_truncated_recording_replays_what_is_there(tmp_path: Path) -> None:
    events = [hello(100.0)] + [lag(100.0 + i * 0.25, [0.001] * 20) for i in range(4000)]
    rows = write(tmp_path / "r.lsrec", events)
    data = (tmp_path / "r.lsrec").read_bytes()
    (tmp_path / "r.lsrec").write_bytes(data[: len(data) // 2])
    with Recording.open(tmp_path / "r.lsrec") as rec:
        read = list(rec.rows())
        damaged = rec.damaged
    assert damaged is not None and "damaged" in damaged
    last = read[-1].event
    assert isinstance(last, Notice) and last.level == "error"
    kept = [r.event for r in read[:-1]]
    assert 0 < len(kept) < len(rows)
    assert kept == [ev for _, ev in rows[: len(kept)]]


def test_a_truncated_header(tmp_path: Path) -> None:
    write(tmp_path / "r.lsrec", scenario())
    data = (tmp_path / "r.lsrec").read_bytes()
    (tmp_path / "r.lsrec").write_bytes(data[:40])
    assert "truncated" in _message(tmp_path / "r.lsrec")


def test_an_undecodable_event_becomes_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "r.lsrec", scenario())
    db = sqlite3.connect(tmp_path / "r.lsrec")
    db.execute('UPDATE events SET payload = \'{"kind": "lag"\' WHERE seq = 2')
    db.execute("UPDATE events SET payload = x'00ff' WHERE seq = 3")
    db.execute("UPDATE events SET ts = 'soon' WHERE seq = 4")
    db.commit()
    db.close()
    read = read_all(tmp_path / "r.lsrec")
    for seq in (2, 3):
        event = read[seq - 1][2]
        assert isinstance(event, Notice) and f"event {seq} is unreadable" in event.message
    assert read[3][1] == read[2][1]  # a bad arrival time takes the one before


# -- fuzzing --------------------------------------------------------------------------------------

_SAMPLE: bytes | None = None


def _sample() -> bytes:
    global _SAMPLE
    if _SAMPLE is None:
        with tempfile.TemporaryDirectory() as d:
            write(Path(d) / "s.lsrec", scenario()[:40])
            _SAMPLE = (Path(d) / "s.lsrec").read_bytes()
    return _SAMPLE


def _open_and_read(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.lsrec"
        path.write_bytes(data)
        try:
            with Recording.open(path) as rec:
                for row in rec.rows():
                    assert isinstance(row.event, Event)
                rec.block_times()
        except RecordingError as e:
            assert str(e)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=12,
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_reader_survives_damaged_bytes(edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_sample())
    for at, value in edits:
        data[at % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _open_and_read(bytes(data))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(
                st.floats(allow_nan=False),
                st.integers(min_value=-(2**63), max_value=2**63 - 1),
                st.text(max_size=4),
                st.none(),
            ),
            st.text(max_size=10),
            st.one_of(
                st.text(max_size=40),
                st.binary(max_size=40),
                st.integers(min_value=-(2**63), max_value=2**63 - 1),
                _json_values.map(lambda v: __import__("json").dumps(v)),
                st.sampled_from([encode(e) for e in scenario()[:20]]),
            ),
        ),
        max_size=20,
    ),
    meta=st.dictionaries(st.sampled_from(["complete", "how", "ended", "x"]), st.text(max_size=8)),
)
def test_reader_survives_any_rows(
    rows: list[tuple[object, str, object]], meta: dict[str, str]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.lsrec"
        RecordingWriter(path).close()
        db = sqlite3.connect(path)
        db.executemany(
            "INSERT INTO events (ts, kind, payload) VALUES (?, ?, ?)",
            [(ts if ts is not None else 0, k, p) for ts, k, p in rows],
        )
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        db.commit()
        db.close()
        _open_and_read(path.read_bytes())


# -- the recorder ---------------------------------------------------------------------------------


def test_the_recorder_writes_what_passes_through(tmp_path: Path) -> None:
    events = scenario()
    ticks = iter(range(10_000))
    recorder = Recorder(tmp_path / "r.lsrec", meta={"how": "t"}, clock=lambda: float(next(ticks)))
    source = RecordedSource(ListSource(events), recorder)
    assert list(source.events()) == events
    recorder.close()
    read = read_all(tmp_path / "r.lsrec")
    assert [ev for _, _, ev in read] == events
    assert [ts for _, ts, _ in read] == [float(i) for i in range(len(events))]
    assert recorder.count == len(events) and recorder.error is None and recorder.dropped == 0
    with Recording.open(tmp_path / "r.lsrec") as rec:
        assert rec.info.complete and rec.info.meta["events"] == len(events)


def test_the_recorder_counts_what_it_had_to_drop(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "r.lsrec", max_queued=1, flush_interval=60.0)
    for e in scenario():
        recorder.put(e)
    recorder.close()
    assert recorder.dropped > 0
    assert recorder.count + recorder.dropped == len(scenario())


def test_a_recorder_never_replaces_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('mine')\n")
    with pytest.raises(RecordingError, match="exists and is not a loopscope recording"):
        Recorder(tmp_path / "app.py")
    assert (tmp_path / "app.py").read_text() == "print('mine')\n"
    with pytest.raises(RecordingError, match="no such directory"):
        Recorder(tmp_path / "missing" / "r.lsrec")


def test_a_recorder_replaces_an_old_recording(tmp_path: Path) -> None:
    write(tmp_path / "r.lsrec", scenario())
    recorder = Recorder(tmp_path / "r.lsrec")
    recorder.put(block(1.0, 0.05))
    recorder.close()
    assert len(read_all(tmp_path / "r.lsrec")) == 1


_KILLED = textwrap.dedent(
    """
    import sys, time
    from loopscope.events import Notice
    from loopscope.record.writer import Recorder

    recorder = Recorder(sys.argv[1])
    print("started", flush=True)
    while True:
        recorder.put(Notice(t=time.time(), level="info", message="x" * 200))
        time.sleep(0.002)
    """
)


def test_a_recorder_killed_with_sigkill_loses_at_most_a_second(tmp_path: Path) -> None:
    path = tmp_path / "r.lsrec"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "started\n"
        deadline = time.monotonic() + 20
        while _count(path) < 500:  # a few flushes in: it is recording steadily
            assert time.monotonic() < deadline, "the recorder wrote nothing"
            time.sleep(0.05)
        killed_at = time.time()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    with Recording.open(path) as rec:
        assert not rec.info.complete
        assert killed_at - rec.info.end <= 1.0
        events = list(rec.events())
    assert len(events) == rec.info.count and all(isinstance(e, Notice) for e in events)


def _count(path: Path) -> int:
    try:
        with Recording.open(path) as rec:
            return rec.info.count
    except RecordingError:
        return 0


def test_the_documented_query_runs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "recording.md").read_text()
    query = docs.split('sqlite3 app.lsrec "', 1)[1].split('"', 1)[0]
    db = sqlite3.connect(f"{GOLDEN.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(query).fetchall()
    finally:
        db.close()
    assert [(ms, fn) for _, ms, fn in rows][:2] == [
        (250.0, "ReportView.render_report"),
        (180.0, "ReportView.render_report"),
    ]


def test_a_recording_started_mid_session_replays_on_its_own(tmp_path: Path) -> None:
    from loopscope.events import LoopStarted, LoopStopped, SourceState
    from loopscope.sources.recorded import RecordingControl

    def loop(t: float, n: int) -> LoopStarted:
        return LoopStarted(
            t=t, loop=n, thread_id=n, thread_name=f"T{n}", loop_class="L", features=("lag",)
        )

    before: list[Event] = [
        SourceState(t=1.0, source="agent", state="live"),
        hello(1.0),
        loop(1.0, 1),
        loop(1.0, 2),
        lag(1.5, [0.001]),
        LoopStopped(t=2.0, loop=2),
        SourceState(t=2.0, source="agent", state="lost"),
    ]
    after: list[Event] = [lag(3.0, [0.002]), block(3.5, 0.05)]
    recorded = RecordedSource(ListSource(before + after))
    control = RecordingControl(recorded, directory=tmp_path / "auto", name="app", first=None)
    stream = recorded.events()
    for _ in before:
        next(stream)
    first = control.start()
    assert control.start() is first  # already recording
    assert list(stream) == after
    control.stop()
    second = control.toggle()
    assert second is not None and second.path != first.path
    assert control.toggle() is None and control.done == [first, second]
    assert first.path.parent == tmp_path / "auto" and first.path.name.endswith("-app.lsrec")
    events = [ev for _, _, ev in read_all(first.path)]
    # The target, its running loop (not the stopped one), the agent's latest state; then the rest.
    assert events == [before[1], before[2], before[6], *after]


def test_a_control_that_cannot_make_its_directory(tmp_path: Path) -> None:
    from loopscope.sources.recorded import RecordingControl

    (tmp_path / "file").write_text("")
    control = RecordingControl(
        RecordedSource(ListSource([])), directory=tmp_path / "file" / "recs", name="app"
    )
    with pytest.raises(RecordingError, match="cannot create"):
        control.start()
    assert control.recorder is None


def test_a_recording_in_progress_can_be_read_while_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "r.lsrec"
    events = scenario()
    half = len(events) // 2
    recorder = Recorder(path, flush_interval=0.01)
    try:
        for e in events[:half]:
            recorder.put(e)
        deadline = time.monotonic() + 10
        while _count(path) < half:
            assert time.monotonic() < deadline, "the recorder wrote nothing"
            time.sleep(0.01)
        with Recording.open(path) as rec:
            assert not rec.info.complete
            reading = rec.rows()
            first = next(reading)  # a read in progress while the recorder writes on
            for e in events[half:]:
                recorder.put(e)
            assert [first.event, *(r.event for r in reading)][:half] == events[:half]
    finally:
        recorder.close()
    assert recorder.error is None
    assert [ev for _, _, ev in read_all(path)] == events
