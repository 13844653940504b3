"""Garbage collections in the Perfetto export: slices on a track of their own."""

from __future__ import annotations

import json

from builders import hello, lag
from loopscope.events import GcPause, GcWindow
from loopscope.record import export


def test_gc_pauses_are_slices_on_the_garbage_collector_track() -> None:
    window = GcWindow(
        t=3.0,
        window=1.0,
        collections=(50, 5, 1),
        pause=0.09,
        max=0.08,
        collected=10,
        uncollectable=0,
        pauses=(
            GcPause(t=2.5, duration=0.08, generation=2, collected=9, cpu=0.07),
            GcPause(t=2.1, duration=0.002, generation=0, collected=1),
        ),
    )
    data = export.perfetto([hello(1.0), lag(2.0, [0.001]), window, window])
    json.dumps(data, allow_nan=False)
    events = data["traceEvents"]
    slices = [e for e in events if e["ph"] == "X" and e["cat"] == "gc"]
    assert [(s["name"], s["ts"], s["dur"]) for s in slices][:2] == [
        ("gc: generation 2", 1_500_000.0, 80_000.0),
        ("gc: generation 0", 1_100_000.0, 2_000.0),
    ]
    assert slices[0]["args"] == {"duration_ms": 80.0, "collected": 9, "cpu_ms": 70.0}
    names = [e for e in events if e["ph"] == "M" and e["tid"] == slices[0]["tid"]]
    assert [n["args"]["name"] for n in names] == ["garbage collector"]
