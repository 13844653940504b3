"""Exporting a recording to trace viewers.

- Perfetto / chrome://tracing: the Trace Event Format (JSON object form). Blocks are complete
  ("X") slices on their loop's thread; lag (p50/p99/max per agent window) and tasks (by state,
  and created/finished per second) are counters ("C"); each loop's life is an async slice
  ("b"/"e"). The agent reports tasks in aggregate (census, lifecycle counts), not one by one,
  so there are no per-task slices.
- speedscope: one sampled profile per loop, of the stacks sampled while it was blocked,
  weighted by the time each stack stood for.

Exporters read the recorded events rather than snapshots: a trace covers every block of the
session, where a snapshot holds the recent ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loopscope import __version__
from loopscope.codemap import CodeMap
from loopscope.events import (
    Block,
    Census,
    Event,
    Frame,
    GcWindow,
    Hello,
    Lag,
    Lifecycle,
    LoopStarted,
    LoopStopped,
)
from loopscope.model._lag import percentile

FORMATS = ("perfetto", "speedscope")
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
_NO_SAMPLE = Frame(file="", line=0, function="(no stack sampled: a C call holding the GIL?)")
# The track of garbage collections: process-wide, so a thread of its own, apart from the loops'.
_GC_TID = 1_000_000


@dataclass
class _Loop:
    tid: int
    name: str
    started: float | None = None
    stopped: float | None = None


@dataclass
class _Trace:
    """What the exporters need from the events, gathered in one pass."""

    hello: Hello | None = None
    start: float | None = None
    end: float | None = None
    loops: dict[int, _Loop] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def loop(self, loop: int) -> _Loop:
        info = self.loops.get(loop)
        if info is None:
            # A loop seen before (or without) its loop_started event gets a thread of its own.
            info = self.loops[loop] = _Loop(tid=len(self.loops) + 1, name=f"loop {loop:#x}")
        return info


def _gather(events: Iterable[Event]) -> _Trace:
    trace = _Trace()
    for event in events:
        t = event.t
        # (a damaged recording can hold anything; a trace must stay valid JSON)
        if not math.isfinite(t * 1e6) or (
            isinstance(event, Block) and not math.isfinite((t + event.duration) * 1e6)
        ):
            continue
        trace.start = t if trace.start is None else min(trace.start, t)
        end = t + event.duration if isinstance(event, Block) else t
        trace.end = end if trace.end is None else max(trace.end, end)
        if isinstance(event, Hello) and trace.hello is None:
            trace.hello = event
        elif isinstance(event, LoopStarted):
            known = trace.loops.get(event.loop)
            tid = event.thread_id if event.thread_id > 0 else (known.tid if known else 0)
            trace.loops[event.loop] = _Loop(
                tid=tid or len(trace.loops) + 1,
                name=f"{event.thread_name} ({event.loop_class.rsplit('.', 1)[-1]})",
                started=t,
            )
        elif isinstance(event, LoopStopped):
            trace.loop(event.loop).stopped = t
        trace.events.append(event)
    return trace


def perfetto(events: Iterable[Event], *, start: float | None = None) -> dict[str, Any]:
    """The recording as a Trace Event Format JSON object; ``start``: the time its timestamps
    count from (default: its first event), the same for several processes in one trace."""
    trace = _gather(events)
    start = (trace.start or 0.0) if start is None else start
    pid = trace.hello.pid if trace.hello is not None else 1
    code = (
        CodeMap(trace.hello.stdlib_paths, trace.hello.site_paths)
        if trace.hello is not None
        else CodeMap()
    )

    def us(t: float) -> float:
        return round((t - start) * 1e6, 3)

    out: list[dict[str, Any]] = []
    name = " ".join(trace.hello.argv) if trace.hello is not None else "target"
    out.append(_meta("process_name", pid, 0, f"{name} (pid {pid})"))
    gc_track = False
    for event in trace.events:
        if isinstance(event, Block):
            loop = trace.loop(event.loop)
            frames = event.stacks[0].frames if event.stacks else ()
            where = code.locate(frames)
            label = where.function if where is not None else "unsampled"
            args: dict[str, Any] = {
                "duration_ms": round(event.duration * 1000, 3),
                "task": event.task,
                "samples": event.samples,
            }
            if event.cpu is not None and math.isfinite(event.cpu * 1000):
                args["cpu_ms"] = round(event.cpu * 1000, 3)
            if where is not None:
                args["location"] = f"{where.file}:{where.line}"
            out.append(
                {
                    "name": f"block: {label}",
                    "cat": "block",
                    "ph": "X",
                    "pid": pid,
                    "tid": loop.tid,
                    "ts": us(event.t),
                    "dur": round(event.duration * 1e6, 3),
                    "args": args,
                }
            )
        elif isinstance(event, Lag):
            p50 = percentile(event.buckets, 0.5, event.max)
            p99 = percentile(event.buckets, 0.99, event.max)
            lag = {"max_ms": event.max * 1000}
            if p50 is not None and p99 is not None:
                lag.update(p50_ms=p50 * 1000, p99_ms=p99 * 1000)
            out.append(_counter(f"lag ({trace.loop(event.loop).name})", pid, us(event.t), lag))
            if event.busy is not None:
                out.append(
                    _counter(
                        f"utilisation ({trace.loop(event.loop).name})",
                        pid,
                        us(event.t),
                        {"busy_pct": event.busy * 100},
                    )
                )
        elif isinstance(event, GcWindow):
            for p in event.pauses:
                if not (math.isfinite(p.t) and math.isfinite(p.duration * 1e6)):
                    continue
                gc_args: dict[str, Any] = {
                    "duration_ms": round(p.duration * 1000, 3),
                    "collected": p.collected,
                }
                if p.cpu is not None and math.isfinite(p.cpu * 1000):
                    gc_args["cpu_ms"] = round(p.cpu * 1000, 3)
                out.append(
                    {
                        "name": f"gc: generation {p.generation}",
                        "cat": "gc",
                        "ph": "X",
                        "pid": pid,
                        "tid": _GC_TID,
                        "ts": us(p.t),
                        "dur": round(p.duration * 1e6, 3),
                        "args": gc_args,
                    }
                )
            if event.pauses and not gc_track:
                gc_track = True
                out.append(_meta("thread_name", pid, _GC_TID, "garbage collector"))
        elif isinstance(event, Census):
            states: dict[str, float] = {"total": event.total, **event.by_state}
            out.append(_counter(f"tasks ({trace.loop(event.loop).name})", pid, us(event.t), states))
        elif isinstance(event, Lifecycle) and event.window > 0:
            rates = {
                "created_per_s": event.created / event.window,
                "finished_per_s": event.finished / event.window,
            }
            out.append(
                _counter(f"task churn ({trace.loop(event.loop).name})", pid, us(event.t), rates)
            )
    for loop_id, loop in trace.loops.items():
        out.append(_meta("thread_name", pid, loop.tid, loop.name))
        if loop.started is not None:
            end = loop.stopped if loop.stopped is not None else (trace.end or loop.started)
            common = {"name": f"loop {loop.name}", "cat": "loop", "pid": pid, "tid": loop.tid}
            common["id"] = f"{loop_id:#x}"
            out.append({**common, "ph": "b", "ts": us(loop.started)})
            out.append({**common, "ph": "e", "ts": us(max(end, loop.started))})
    return {
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {"exporter": f"loopscope {__version__}", "start_unix_s": start},
    }


def _meta(name: str, pid: int, tid: int, value: str) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": {"name": value}}


def _counter(name: str, pid: int, ts: float, values: dict[str, float]) -> dict[str, Any]:
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    return {"name": name, "ph": "C", "pid": pid, "tid": 0, "ts": ts, "args": finite}


def speedscope(events: Iterable[Event], *, name: str = "loopscope recording") -> dict[str, Any]:
    """The stacks sampled while each loop was blocked, as a speedscope file."""
    trace = _gather(events)
    frames: list[dict[str, Any]] = []
    index: dict[Frame, int] = {}

    def frame_index(frame: Frame) -> int:
        i = index.get(frame)
        if i is None:
            i = index[frame] = len(frames)
            entry: dict[str, Any] = {"name": frame.function or "?"}
            if frame.file:
                entry["file"] = frame.file
                entry["line"] = frame.line
            frames.append(entry)
        return i

    per_loop: dict[int, tuple[list[list[int]], list[float]]] = {}
    for event in trace.events:
        if not isinstance(event, Block) or not event.duration > 0:
            continue
        samples, weights = per_loop.setdefault(event.loop, ([], []))
        counted = sum(s.count for s in event.stacks)
        if counted <= 0:
            samples.append([frame_index(_NO_SAMPLE)])
            weights.append(event.duration * 1000)
            continue
        per_sample = event.duration * 1000 / counted
        for stack in event.stacks:
            if stack.count <= 0 or not stack.frames:
                continue
            # speedscope lists a stack from its root; events list the innermost frame first.
            samples.append([frame_index(f) for f in reversed(stack.frames)])
            weights.append(stack.count * per_sample)
    profiles = []
    for loop_id, (samples, weights) in per_loop.items():
        total = sum(weights)
        profiles.append(
            {
                "type": "sampled",
                "name": f"blocked: {trace.loop(loop_id).name}",
                "unit": "milliseconds",
                "startValue": 0,
                "endValue": total,
                "samples": samples,
                "weights": weights,
            }
        )
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": name,
        "activeProfileIndex": 0,
        "exporter": f"loopscope@{__version__}",
    }
