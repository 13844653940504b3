"""Exports checked against their formats: the Trace Event Format (Perfetto) and speedscope's."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recordings import GOLDEN
from speedscope_schema import problems

from builders import app, block, census, hello, lag, lifecycle
from loopscope.events import Block, Event, Frame, LoopStarted, LoopStopped, Stack
from loopscope.record import export
from loopscope.record.reader import Recording

LOOP_THREAD = 7


def golden_events() -> list[Event]:
    with Recording.open(GOLDEN) as rec:
        return list(rec.events())


def session() -> list[Event]:
    started = LoopStarted(
        t=100.0,
        loop=1,
        thread_id=LOOP_THREAD,
        thread_name="MainThread",
        loop_class="asyncio.unix_events._UnixSelectorEventLoop",
        features=("lag",),
    )
    return [
        hello(100.0),
        started,
        lag(100.25, [0.001] * 20 + [0.08], busy=0.5),
        block(101.0, 0.08, [app(42, "render")]),
        block(102.0, 0.03, None, samples=0),  # nothing could be sampled
        census(102.5, total=12, by_state={"waiting": 10, "ready": 2}),
        lifecycle(103.0, created=10, finished=8),
        LoopStopped(t=104.0, loop=1),
    ]


# -- Perfetto / Trace Event Format ---------------------------------------------------------------

_PHASES = {"X", "C", "M", "b", "e"}


def trace_problems(data: Any) -> list[str]:
    """What breaks the Trace Event Format (JSON object form) in ``data``."""
    out: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        return ["the trace must be an object with a traceEvents list"]
    if data.get("displayTimeUnit", "ms") not in ("ms", "ns"):
        out.append("displayTimeUnit must be ms or ns")
    open_async: Counter[tuple[Any, ...]] = Counter()
    for i, e in enumerate(data["traceEvents"]):
        ph = e.get("ph")
        if ph not in _PHASES:
            out.append(f"event {i}: unexpected phase {ph!r}")
            continue
        if not isinstance(e.get("name"), str) or not e["name"]:
            out.append(f"event {i}: name is a required string")
        if not all(isinstance(e.get(k), int) for k in ("pid", "tid")):
            out.append(f"event {i}: pid and tid are required integers")
        if ph != "M" and not _number(e.get("ts")):
            out.append(f"event {i}: ts is a required number")
        if ph == "X" and not (_number(e.get("dur")) and e["dur"] >= 0):
            out.append(f"event {i}: a complete event needs a non-negative dur")
        if ph == "C":
            args = e.get("args")
            if not isinstance(args, dict) or not args or not all(map(_number, args.values())):
                out.append(f"event {i}: counter args must be non-empty and numeric")
        if ph == "M" and not isinstance(e.get("args", {}).get("name"), str):
            out.append(f"event {i}: metadata needs args.name")
        if ph in ("b", "e"):
            if "id" not in e or "cat" not in e:
                out.append(f"event {i}: async events need an id and a cat")
            key = (e.get("cat"), e.get("id"), e.get("name"))
            open_async[key] += 1 if ph == "b" else -1
            if open_async[key] < 0:
                out.append(f"event {i}: async end before its begin")
    out += [f"async slice {k} never ends" for k, n in open_async.items() if n]
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_perfetto_trace_is_well_formed() -> None:
    data = export.perfetto(session())
    assert trace_problems(data) == []
    json.dumps(data, allow_nan=False)


def test_blocks_are_slices_on_the_loop_thread() -> None:
    events = export.perfetto(session())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert [(s["name"], s["tid"], s["ts"], s["dur"]) for s in slices] == [
        ("block: render", LOOP_THREAD, 1_000_000.0, 80_000.0),
        ("block: unsampled", LOOP_THREAD, 2_000_000.0, 30_000.0),
    ]
    assert slices[0]["args"]["location"] == "/srv/app/handlers.py:42"
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["tid"] == LOOP_THREAD}
    assert names == {"MainThread (_UnixSelectorEventLoop)"}


def test_lag_and_tasks_are_counters() -> None:
    events = export.perfetto(session())["traceEvents"]
    counters = {e["name"].split(" (")[0]: e["args"] for e in events if e["ph"] == "C"}
    assert counters["lag"]["max_ms"] == pytest.approx(80.0)
    assert counters["utilisation"] == {"busy_pct": 50.0}
    assert counters["tasks"] == {"total": 12, "waiting": 10, "ready": 2}
    assert counters["task churn"] == {"created_per_s": 10.0, "finished_per_s": 8.0}


def test_the_loop_life_is_a_matched_async_slice() -> None:
    events = export.perfetto(session())["traceEvents"]
    begin, end = (e for e in events if e["ph"] in ("b", "e"))
    assert (begin["ph"], end["ph"]) == ("b", "e") and begin["id"] == end["id"]
    assert (begin["ts"], end["ts"]) == (0.0, 4_000_000.0)


def test_the_golden_recording_exports() -> None:
    assert trace_problems(export.perfetto(golden_events())) == []
    assert problems(export.speedscope(golden_events())) == []


# -- speedscope ----------------------------------------------------------------------------------


def test_speedscope_file_matches_the_format() -> None:
    data = export.speedscope(session(), name="r.lsrec")
    assert problems(data) == []
    (profile,) = data["profiles"]
    frames = data["shared"]["frames"]
    stacks = [[frames[i]["name"] for i in s] for s in profile["samples"]]
    # Root first: the loop's frames, then the application's blocking function.
    assert stacks[0][0] == "<module>" and stacks[0][-1] == "render"
    assert stacks[1] == ["(no stack sampled: a C call holding the GIL?)"]
    assert profile["weights"] == pytest.approx([80.0, 30.0])
    assert profile["endValue"] == pytest.approx(110.0)


def test_the_checker_catches_what_speedscope_refuses() -> None:
    data = export.speedscope(session())
    data["profiles"][0]["weights"].pop()
    data["profiles"][0]["samples"][0].append(999)
    data["shared"]["frames"][0].pop("name")
    found = problems(data)
    assert any("same length" in p for p in found)
    assert any("indices into shared.frames" in p for p in found)
    assert any("name is a required string" in p for p in found)


def test_the_trace_checker_catches_unmatched_slices() -> None:
    data = export.perfetto(session())
    data["traceEvents"] = [e for e in data["traceEvents"] if e["ph"] != "e"]
    assert any("never ends" in p for p in trace_problems(data))


_frames = st.builds(
    Frame,
    file=st.text(max_size=10),
    line=st.integers(min_value=0, max_value=10_000),
    function=st.text(max_size=10),
)
_blocks = st.builds(
    Block,
    t=st.floats(min_value=0, max_value=1e6),
    loop=st.integers(min_value=1, max_value=3),
    duration=st.floats(min_value=0, max_value=100) | st.just(math.inf),
    task=st.none() | st.text(max_size=5),
    cpu=st.none() | st.floats(allow_nan=False),
    samples=st.integers(min_value=0, max_value=1000),
    stacks=st.lists(
        st.builds(
            Stack,
            count=st.integers(min_value=0, max_value=50),
            frames=st.lists(_frames, max_size=4).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_blocks, max_size=8))
def test_any_blocks_export_to_valid_files(blocks: list[Block]) -> None:
    assert problems(export.speedscope(blocks)) == []
    data = export.perfetto(blocks)
    assert trace_problems(data) == []
    json.dumps(data, allow_nan=False)
