"""The terminal UI following a busy target: CPU share and key-press latency.

A synthetic source plays, in real time and as JSON lines decoded like the agent's socket, what
the agent sends about a target with 10,000 live tasks at its defaults: lag windows every 250 ms,
a census every 500 ms (10,000 tasks, 50 await sites, 50 resources), lifecycle windows every
500 ms, a task list every 2 s (30 tasks, 5 with chains, as the agent sends), and a
steady stream of blocks (``--blocks`` a second, each with sampled stacks 25 frames deep).

The app runs headless (Textual's ``run_test``) at its default refresh, at 160x48, on each
screen in turn for ``--seconds``: the process's CPU share over that time (the UI, the session
thread reading and modelling the events, and the rules) is printed per screen. Then keys are
pressed, each timed from the press until the app is idle again with the result on screen:
moving the cursor, sorting the task table, and switching screens; p50 and p99 over ``--presses``.
All of it is done twice in one run, by two apps one after the other: with the app's
garbage-collector settings (`loopscope.tui.app.GC_THRESHOLDS`, startup objects frozen, full
collections only when no key comes) and with Python's defaults put back once it is up; each
says how many garbage collections took over 10 ms while it ran, and the longest.

Budgets (DESIGN.md, task brief): at most 25% of a core at the default refresh; a key press
reflected on screen within 100 ms.

    .venv/bin/python benchmarks/tui.py [--seconds 10] [--blocks 2] [--presses 40] [--first python]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builders import app as app_frame
from builders import await_site, block, census, hello, lag, lifecycle
from loopscope.events import (
    AwaitFrame,
    Event,
    LoopStarted,
    Resource,
    SourceState,
    TaskInfo,
    TaskList,
    decode,
    encode,
)
from loopscope.session import Session
from loopscope.tui import make_app
from loopscope.tui.app import LoopscopeApp
from loopscope.tui.awaits import AwaitsScreen
from loopscope.tui.blocks import BlocksScreen
from loopscope.tui.dashboard import DashboardScreen
from loopscope.tui.tasks import TasksScreen, TaskTable

TASKS = 10_000
ASYNCIO = "/usr/lib/python3.11/asyncio"


class SyntheticSource:
    """The agent's stream for a 10,000-task target, in real time, as decoded JSON lines."""

    def __init__(self, blocks_per_s: float) -> None:
        self._blocks_per_s = blocks_per_s
        self._closed = threading.Event()
        self.events_read = 0

    def close(self) -> None:
        self._closed.set()

    def events(self) -> Iterator[Event]:
        t0 = time.time()
        yield from (
            hello(t0),
            SourceState(t=t0, source="agent", state="live"),
            LoopStarted(
                t=t0,
                loop=1,
                thread_id=1,
                thread_name="MainThread",
                loop_class="asyncio.unix_events._UnixSelectorEventLoop",
                features=("lag", "blocks", "census", "lifecycle", "tasks"),
            ),
        )
        schedule = [  # (period, next due, maker)
            [0.25, 0.0, self._lag],
            [0.5, 0.0, self._census],
            [0.5, 0.0, self._lifecycle],
            [2.0, 0.0, self._task_list],
            [1.0 / self._blocks_per_s, 0.0, self._block],
        ]
        n = 0
        while not self._closed.is_set():
            now = time.time()
            for entry in schedule:
                period, due, make = entry
                if now >= due:
                    entry[1] = now + period  # type: ignore[operator]
                    n += 1
                    # Through JSON, as the agent's socket delivers them.
                    yield decode(encode(make(now, n)))  # type: ignore[operator]
                    self.events_read += 1
            wait = min(e[1] for e in schedule) - time.time()  # type: ignore[type-var]
            if wait > 0:
                self._closed.wait(wait)

    def _lag(self, t: float, n: int) -> Event:
        return lag(t, [0.0003] * 20 + [0.002 + (n % 7) * 0.01], busy=0.6, ready=5)

    def _census(self, t: float, n: int) -> Event:
        sites = [
            await_site(10 + i, f"handler_{i}", ("lock", "sleep", "queue_get")[i % 3], 400 - i, 1.5)
            for i in range(50)
        ]
        resources = [
            Resource(id=i, type="Lock", label=f"Lock locked #{i}", waiters=200 - i, oldest=2.0)
            for i in range(50)
        ]
        return census(
            t,
            total=TASKS + n % 50,
            by_state={"waiting": TASKS - 40, "ready": 39, "running": 1},
            by_kind={"lock": 4000, "sleep": 4000, "queue_get": TASKS - 8040},
            sites=sites,
            resources=resources,
        )

    def _lifecycle(self, t: float, n: int) -> Event:
        return lifecycle(t, created=500, finished=495, failed=n % 3, created_by={"handle": 500})

    def _task_list(self, t: float, n: int) -> Event:
        tasks = []
        for i in range(30):
            chain: tuple[AwaitFrame, ...] = ()
            if i < 5:
                chain = (
                    AwaitFrame(file=f"{ASYNCIO}/locks.py", line=114, function="Lock.acquire"),
                    AwaitFrame(
                        file="/srv/app/handlers.py",
                        line=42,
                        function="fetch_user",
                        args=(f"user_id={i}",),
                    ),
                )
            tasks.append(
                TaskInfo(
                    id=1000 + (i + n) % 60,  # some tasks leave the list, others come
                    name=f"Task-{(i + n) % 60}",
                    coro="fetch_user",
                    state="waiting",
                    kind="lock",
                    waited=60.0 - i,
                    file="/srv/app/handlers.py",
                    line=42,
                    function="fetch_user",
                    chain=chain,
                )
            )
        return TaskList(
            t=t, loop=1, total=TASKS, sampled=True, tasks=tuple(tasks), finished=(), cost=0.0009
        )

    def _block(self, t: float, n: int) -> Event:
        stack = [app_frame(88 + n % 5, "ReportView.render_report", "report.py")]
        stack += [app_frame(100 + i, f"layer_{i}", "server.py") for i in range(24)]
        return block(t - 0.06, 0.05 + (n % 4) * 0.02, stack, task=f"Task-{n % 60}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def follow(app: LoopscopeApp, pilot: Any, seconds: float) -> float:
    """CPU share of this process while the app follows the stream for ``seconds``."""
    await pilot.pause(1.0)  # settle after the screen changed
    wall, cpu = time.perf_counter(), cpu_seconds()
    await asyncio.sleep(seconds)
    return (cpu_seconds() - cpu) / (time.perf_counter() - wall)


async def timed(app: LoopscopeApp, key: str, done: Any, timeout: float = 10.0) -> float:
    """Seconds from a key reaching the app to ``done()`` holding, polled every millisecond.

    The key is posted as the terminal driver does (no waiting for the app to be idle first, as
    Pilot's ``press`` does); what ``done()`` checks is the state the next frame paints, and
    Textual paints at most a frame (1/60 s) after a change."""
    start = time.perf_counter()
    app.simulate_key(key)
    while not done():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"key {key!r} had no effect in {timeout:g} s")
        await asyncio.sleep(0.001)
    return time.perf_counter() - start


async def wait_for(pilot: Any, condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the app did not get there in time")
        await pilot.pause(0.01)


async def run(args: argparse.Namespace) -> None:
    for tuned in (True, False) if args.first == "app" else (False, True):
        await run_app(args, tuned)


async def run_app(args: argparse.Namespace, tuned: bool) -> None:
    source = SyntheticSource(args.blocks)
    session = Session(source)
    session.start()
    app = make_app(session)
    assert isinstance(app, LoopscopeApp)
    watch = Collections()
    print(
        f"\n== The garbage collector at {'the app' if tuned else 'Python'}'s settings: "
        f"Python {sys.version.split()[0]}; 160x48; refresh {app._interval} s; "
        f"{TASKS:,} tasks; {args.blocks:g} blocks/s; {args.seconds:g} s per screen"
    )
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            if not tuned:
                gc.unfreeze()
                gc.set_threshold(*(app._thresholds or gc.get_threshold()))
            await wait_for(pilot, lambda: app.shown is not None)
            watch.on = True
            print("\nCPU share of one core while following:")
            for key, screen in (
                ("1", DashboardScreen),
                ("t", TasksScreen),
                ("3", BlocksScreen),
                ("4", AwaitsScreen),
            ):
                await pilot.press(key)
                await wait_for(pilot, lambda screen=screen: isinstance(app.screen, screen))
                share = await follow(app, pilot, args.seconds)
                print(f"  {screen.__name__:<18} {share * 100:5.1f}%")
            await presses(app, pilot, args.presses)
            watch.on = False
    finally:
        session.close()
        gc.callbacks.remove(watch.callback)
    worst = max(watch.long, default=0.0)
    print(
        f"\n{source.events_read:,} events read; {len(watch.long)} garbage collections over "
        f"10 ms, the longest {worst * 1000:.0f} ms"
    )


async def presses(app: LoopscopeApp, pilot: Any, count: int) -> None:
    """Time each key: the cursor, the sort, and switching screens."""
    print(f"\nKey press to screen updated ({count} presses each):")
    await pilot.press("t")
    await wait_for(pilot, lambda: isinstance(app.screen, TasksScreen))
    table = app.screen.query_one(TaskTable)
    await wait_for(pilot, lambda: table.row_count > 0)
    results: dict[str, list[float]] = {
        "down/up (cursor)": [],
        "s (sort)": [],
        "3 (to blocks)": [],
        "t (to tasks)": [],
    }
    for _ in range(count):
        row = table.cursor_row
        key = "down" if row == 0 else "up"
        results["down/up (cursor)"].append(
            await timed(app, key, lambda row=row: table.cursor_row != row)
        )
        await pilot.pause(0.05)
        sort = table.sort_key
        results["s (sort)"].append(await timed(app, "s", lambda sort=sort: table.sort_key != sort))
        await pilot.pause(0.05)
    for i in range(count):
        key, screen = ("3", BlocksScreen) if i % 2 == 0 else ("t", TasksScreen)
        results["3 (to blocks)" if key == "3" else "t (to tasks)"].append(
            await timed(
                app,
                key,
                lambda screen=screen: (
                    isinstance(app.screen, screen)
                    and app.screen.is_mounted
                    and app.screen.view is not None
                ),
            )
        )
        await pilot.pause(0.05)
    for name, times in results.items():
        times.sort()
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        print(f"  {name:<24} p50 {p50 * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms")


class Collections:
    """Garbage collections longer than 10 ms while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.long: list[float] = []
        self._start = 0.0
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.on and (took := time.perf_counter() - self._start) > 0.010:
            self.long.append(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per screen")
    parser.add_argument("--blocks", type=float, default=2.0, help="blocks per second")
    parser.add_argument("--presses", type=int, default=40, help="presses per key")
    parser.add_argument(
        "--first",
        choices=("app", "python"),
        default="app",
        help="whose garbage-collector settings the first of the two apps runs with",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
