"""A fixed session for the dashboard tests: one target whose loop blocks in `render_report`."""

from __future__ import annotations

import dataclasses
import queue
from collections.abc import Iterator

from builders import app, await_site, block, census, hello, lag, lifecycle
from loopscope.events import (
    Block,
    Census,
    Event,
    LoopStarted,
    Notice,
    Resource,
    RouteLoad,
    SourceState,
    TargetExited,
)

T0 = 1_700_000_000.0
FIXED_T = T0 + 20.0  # the frozen clock: every view is taken at this instant
LOG_PATH = "/tmp/loopscope-4242.log"
HOW = "started by loopscope run"

RENDER = [app(88, "ReportView.render_report", "report.py"), app(120, "handle_request", "server.py")]
EXPORT = [app(31, "export_csv", "export.py")]
FETCH_USER = app(42, "fetch_user")


def live_events() -> list[Event]:
    out: list[Event] = [
        hello(T0),
        SourceState(t=T0, source="agent", state="live"),
        LoopStarted(
            t=T0,
            loop=1,
            thread_id=1,
            thread_name="MainThread",
            loop_class="asyncio.unix_events._UnixSelectorEventLoop",
            features=("lag", "blocks", "census", "lifecycle"),
        ),
    ]
    # Lag: a healthy loop for 15 s, then the windows climb as `render_report` starts blocking.
    rising = [0.004, 0.012, 0.030, 0.060, 0.090, 0.120, 0.180, 0.250]
    for i in range(1, 81):
        t = T0 + i * 0.25
        worst = rising[i - 73] if i >= 73 else 0.0008
        heartbeats = [0.0003] * 20 + [worst] if i < 73 else [0.0003] * 12 + [worst] * 3
        out.append(lag(t, heartbeats, busy=0.42 if i < 73 else 0.93, ready=3))
    # Four blocks in render_report (CPU), the longest 250 ms.
    for i, duration in enumerate((0.090, 0.120, 0.180, 0.250)):
        out.append(block(T0 + 16.0 + i, duration, RENDER, task=f"Task-{40 + i}"))
    # Tasks: growing a little, waiting mostly on a lock and a queue.
    for i, total in enumerate((900, 1010, 1120, 1234)):
        out.append(
            census(
                T0 + 5.0 * (i + 1) - 0.5,
                total=total,
                by_state={"waiting": total - 34, "ready": 30, "running": 4},
                by_kind={"lock": 800, "queue_get": 300, "sleep": total - 1134},
                sites=[
                    await_site(42, "fetch_user", "lock", 800, 2.5),
                    await_site(17, "Worker.run", "queue_get", 300, 12.0, file="worker.py"),
                    await_site(9, "poll", "sleep", total - 1134, 0.8, file="poller.py"),
                ],
                resources=[Resource(id=7, type="Lock", label="Lock", waiters=800, oldest=2.5)],
            )
        )
    for i in range(1, 21):
        out.append(
            lifecycle(
                T0 + i,
                created=52,
                finished=47,
                failed=1 if i % 5 == 0 else 0,
                created_by={"handle_request": 50, "poll": 2},
            )
        )
    out.append(
        Notice(t=T0 + 2, level="warning", message="hook census.walk disabled after an error")
    )
    out.sort(key=lambda e: e.t)
    return out


def web_events() -> list[Event]:
    """The live session of a web service: its blocks and censuses name the routes served."""
    out: list[Event] = []
    for event in live_events():
        if isinstance(event, Block):
            event = dataclasses.replace(event, route="GET /reports/{rid}")
        elif isinstance(event, Census):
            event = dataclasses.replace(
                event,
                routes=(
                    RouteLoad("POST /users/{uid}/login", 640, FETCH_USER, "lock", 2.5),
                    RouteLoad("GET /reports/{rid}", 12, RENDER[1], "task", 0.4),
                    RouteLoad("GET /health", 1, None, "", 0.0),
                ),
            )
        out.append(event)
    return out


def exited_events() -> list[Event]:
    return [
        *live_events(),
        SourceState(t=T0 + 19.9, source="agent", state="ended"),
        TargetExited(t=T0 + 19.9, exit_code=3, reason="exited"),
    ]


def later_blocks() -> list[Event]:
    """What arrives while the dashboard is paused: a new blocker."""
    return [block(T0 + 19.0 + i * 0.1, 0.4, EXPORT, task="Task-90") for i in range(3)]


class QueueSource:
    """A source fed by the test while the session reads it on its thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Event | None] = queue.Queue()

    def put(self, events: list[Event]) -> None:
        for event in events:
            self._queue.put(event)

    def events(self) -> Iterator[Event]:
        while (event := self._queue.get()) is not None:
            yield event

    def close(self) -> None:
        self._queue.put(None)
