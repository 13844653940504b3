"""Recording size and replay speed.

1. Bytes per second: a target with N live tasks (waiting on sleeps, a lock, a queue and each
   other, with some churn) recorded at the agent's defaults by ``loopscope record`` for
   ``--seconds``; the file's growth per second, less the empty recording's size.
2. A 1-hour recording: the 10,000-task recording's events repeated with shifted times to fill an
   hour; time to open it (open + the first view), and to seek to the middle, the end, and back.

Budgets (DESIGN.md): at most 20 KB/s at defaults with 10,000 tasks; a 1-hour replay opens in at
most 2 s.

    .venv/bin/python benchmarks/recording.py [--seconds 20] [--tasks 100,1000,10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from loopscope.events import Event
from loopscope.record.reader import Recording
from loopscope.record.writer import RecordingWriter
from loopscope.replay import ReplayClock, ReplaySession

TARGET = textwrap.dedent(
    """
    import asyncio, random, sys

    async def sleeper():
        while True:
            await asyncio.sleep(random.uniform(0.05, 2.0))

    async def locked(lock):
        while True:
            async with lock:
                await asyncio.sleep(0.001)

    async def consumer(q):
        while True:
            await q.get()

    async def producer(q):
        while True:
            await q.put(1)
            await asyncio.sleep(0.01)

    async def churn():
        while True:
            await asyncio.gather(*(asyncio.sleep(0.01) for _ in range(50)))

    async def main(n):
        lock, q = asyncio.Lock(), asyncio.Queue()
        tasks = [asyncio.create_task(producer(q)), asyncio.create_task(churn())]
        for i in range(n):
            kind = i % 10
            if kind == 0:
                tasks.append(asyncio.create_task(locked(lock)))
            elif kind == 1:
                tasks.append(asyncio.create_task(consumer(q)))
            else:
                tasks.append(asyncio.create_task(sleeper()))
        await asyncio.sleep(3600)

    asyncio.run(main(int(sys.argv[1])))
    """
)


def empty_size(d: Path) -> int:
    RecordingWriter(d / "empty.lsrec").close()
    return (d / "empty.lsrec").stat().st_size


def record(tasks: int, seconds: float, d: Path) -> tuple[Path, float, int]:
    """(recording, recorded seconds, events) of the target with ``tasks`` live tasks."""
    script = d / "target.py"
    script.write_text(TARGET)
    out = d / f"tasks-{tasks}.lsrec"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "loopscope",
            "record",
            "-o",
            str(out),
            "--duration",
            str(seconds),
            "--",
            sys.executable,
            str(script),
            str(tasks),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, XDG_STATE_HOME=str(d)),
    )
    with Recording.open(out) as rec:
        return out, rec.info.duration, rec.info.count


def hour_long(source: Path, d: Path) -> Path:
    """A 1-hour recording made of ``source``'s events repeated back to back, times shifted."""
    with Recording.open(source) as rec:
        rows = [(r.ts, r.event) for r in rec.rows()]
        span = rec.info.duration
    head = [(ts, e) for ts, e in rows if e.kind in ("source_state", "hello", "loop_started")]
    body = [
        (ts, e)
        for ts, e in rows
        if e.kind not in ("source_state", "hello", "loop_started", "target_exited", "loop_stopped")
    ]
    out = d / "hour.lsrec"
    writer = RecordingWriter(out, {"how": "benchmark: one hour"})
    writer.append(head)
    shift, batch = 0.0, []
    while shift < 3600:
        for ts, e in body:
            batch.append((ts + shift, _shifted(e, shift)))
        if len(batch) > 20_000:
            writer.append(batch)
            batch = []
        shift += span
    writer.append(batch)
    writer.close()
    return out


def _shifted(event: Event, by: float) -> Event:
    return dataclasses.replace(event, t=event.t + by)


def timed(what: str, f: object) -> object:
    started = time.perf_counter()
    result = f()  # type: ignore[operator]
    print(f"  {what:<36} {(time.perf_counter() - started) * 1000:8.0f} ms", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tasks", default="100,1000,10000")
    args = parser.parse_args()
    counts = [int(n) for n in args.tasks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        base = empty_size(d)
        print(
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.seconds:g} s each; "
            f"an empty recording is {base:,} bytes"
        )
        print(f"{'tasks':>7} {'events/s':>9} {'bytes/s':>9} {'bytes/event':>12}")
        last = None
        for n in counts:
            path, seconds, events = record(n, args.seconds, d)
            size = path.stat().st_size - base
            print(
                f"{n:>7,} {events / seconds:>9.1f} {size / seconds:>9,.0f} {size / events:>12,.0f}",
                flush=True,
            )
            last = path
        assert last is not None
        print("\n1-hour recording (the last one's events repeated):")
        hour = hour_long(last, d)
        with Recording.open(hour) as rec:
            print(
                f"  {rec.info.count:,} events, {hour.stat().st_size / 1e6:.1f} MB, "
                f"{rec.info.duration / 60:.0f} min"
            )

        def open_and_show() -> tuple[Recording, ReplaySession, ReplayClock]:
            rec = Recording.open(hour)
            clock = ReplayClock(rec.info.start, rec.info.end, playing=False)
            session = ReplaySession(rec, clock)
            session.view()
            return rec, session, clock

        rec, session, clock = timed("open + first view", open_and_show)  # type: ignore[misc]
        timed("timeline (block times)", rec.block_times)
        for label, t in [
            ("seek to 30 min + view", 1800),
            ("seek to the end + view", 3600),
            ("seek back to 10 min + view", 600),
            ("step 1 s + view", 601),
        ]:
            clock.seek(clock.start + t)
            timed(label, session.view)
        rec.close()


if __name__ == "__main__":
    main()
