"""The model's memory over a long session, from a short recording: its events are fed again and
again, each pass shifted in time by the recording's length, as if the session went on.

Reports, after each pass, the Python memory the model holds (tracemalloc, everything but the
reading of the recording) and which of its parts reach more objects than after the pass before.
A part that keeps growing pass after pass holds events it should have let go; one that grows and
then stops is filling a bounded window.

    .venv/bin/python benchmarks/model_growth.py RECORDING [--passes 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from loopscope.events import Hello
from loopscope.model import Model
from loopscope.record.reader import Recording, RecordingError


def reachable(root: object) -> int:
    """How many objects ``root`` reaches, not counting classes, modules and functions."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or callable(obj):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def parts(model: Model) -> dict[str, int]:
    """Objects reached from each of the model's parts (one level into its state objects)."""
    out: dict[str, int] = {}
    for name, value in vars(model).items():
        inner: dict[str, Any] = getattr(value, "__dict__", {}) if not callable(value) else {}
        if inner:
            for sub, v in inner.items():
                out[f"{name}.{sub}"] = reachable(v)
        else:
            out[name] = reachable(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("--passes", type=int, default=8)
    args = parser.parse_args()
    try:
        recording = Recording.open(args.recording)
    except (OSError, RecordingError) as e:
        sys.exit(f"model_growth: {e}")
    shift = recording.info.duration + 1.0
    tracemalloc.start()
    model = Model()
    before: dict[str, int] = {}
    print(f"{args.recording}: {recording.info.duration:.0f} s a pass")
    with recording:
        for n in range(args.passes):
            for row in recording.rows():
                event = row.event
                if n and isinstance(event, Hello):
                    continue
                if n and hasattr(event, "t"):
                    event = dataclasses.replace(event, t=event.t + n * shift)  # type: ignore[type-var]
                model.apply(event)
            model.snapshot()
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] / 1024
            now = parts(model)
            grew = sorted(
                ((now[k] - before.get(k, 0), k) for k in now if now[k] > before.get(k, 0)),
                reverse=True,
            )[:3]
            shown = ", ".join(f"{k} +{d}" for d, k in grew) if before else "(first pass)"
            print(f"pass {n + 1}: {held:8.0f} KiB traced; objects gained: {shown}", flush=True)
            before = now


if __name__ == "__main__":
    main()
