"""The dashboard scenario plus what the drill-down screens show: task lists with await chains,
ended tasks, and the source of the application's files (primed into linecache)."""

from __future__ import annotations

import linecache
from collections.abc import Iterator
from contextlib import contextmanager

from builders import APP
from loopscope.events import AwaitFrame, Event, FinishedTask, Frame, TaskInfo, TaskList
from tui.dashboard_scenario import T0, exited_events, live_events

ASYNCIO = "/usr/lib/python3.11/asyncio"
REPORT = f"{APP}/report.py"
HANDLERS = f"{APP}/handlers.py"

# The application's source, as the screens' previews read it.
SOURCES = {
    REPORT: [
        "class ReportView:\n",
        "    def render_report(self, rows):\n",
        "        # every row formatted on the loop thread\n",
        "        out = []\n",
        "        for row in rows:\n",
        "            out.append(format_row(row))\n",
        "        return '\\n'.join(out)\n",
    ],
    HANDLERS: [
        "async def fetch_user(user_id):\n",
        "    async with USERS_LOCK:\n",
        "        return await db.get(user_id)\n",
    ],
}
# Where those lines are in the files the events name.
FIRST_LINE = {REPORT: 83, HANDLERS: 41}


@contextmanager
def primed_sources() -> Iterator[None]:
    """linecache answers for the scenario's files (an entry without an mtime is kept as is)."""
    saved = {f: linecache.cache.get(f) for f in SOURCES}
    for file, lines in SOURCES.items():
        padded = ["\n"] * (FIRST_LINE[file] - 1) + lines
        linecache.cache[file] = (sum(map(len, padded)), None, padded, file)
    try:
        yield
    finally:
        for file, entry in saved.items():
            if entry is None:
                linecache.cache.pop(file, None)
            else:
                linecache.cache[file] = entry


def _waiting_lock(i: int, waited: float, *, chain: bool) -> TaskInfo:
    return TaskInfo(
        id=0x7F0000 + i,
        name=f"Task-{100 + i}",
        coro="fetch_user",
        state="waiting",
        kind="lock",
        waited=waited,
        file=HANDLERS,
        line=42,
        function="fetch_user",
        chain=(
            AwaitFrame(file=f"{ASYNCIO}/locks.py", line=114, function="Lock.acquire"),
            AwaitFrame(file=HANDLERS, line=42, function="fetch_user", args=(f"user_id={i}",)),
            AwaitFrame(
                file=f"{APP}/server.py",
                line=120,
                function="handle_request",
                args=("request=<Request>", "retries=3"),
            ),
        )
        if chain
        else (),
        created=Frame(file=f"{APP}/server.py", line=77, function="Server.accept")
        if chain
        else None,
        resource=7,  # the Lock of the dashboard scenario's census
    )


def task_list(t: float) -> TaskList:
    tasks = [_waiting_lock(i, 2.5 - i * 0.1, chain=i < 3) for i in range(8)]
    tasks.append(
        TaskInfo(
            id=0x7F1000,
            name="worker-1",
            coro="Worker.run",
            state="waiting",
            kind="queue_get",
            waited=12.0,
            file=f"{APP}/worker.py",
            line=17,
            function="Worker.run",
            chain=(
                AwaitFrame(file=f"{ASYNCIO}/queues.py", line=158, function="Queue.get"),
                AwaitFrame(
                    file=f"{APP}/worker.py", line=17, function="Worker.run", args=("self=<Worker>",)
                ),
            ),
        )
    )
    tasks.append(
        TaskInfo(
            id=0x7F1001,
            name="poller",
            coro="poll",
            state="ready",
            kind="",
            waited=0.0,
            file=f"{APP}/poller.py",
            line=9,
            function="poll",
        )
    )
    tasks.sort(key=lambda task: (task.state != "waiting", -task.waited))
    finished = (
        FinishedTask(
            id=0x7F2000,
            name="Task-90",
            coro="handle_request",
            result="exception",
            error="KeyError: 'user'",
            lived=1.25,
            ended=t - 0.5,
        ),
        FinishedTask(
            id=0x7F2001,
            name="Task-91",
            coro="handle_request",
            result="ok",
            error="",
            lived=0.4,
            ended=t - 1.0,
        ),
        FinishedTask(
            id=0x7F2002,
            name="Task-92",
            coro="fetch_user",
            result="cancelled",
            error="",
            lived=3.0,
            ended=t - 1.5,
        ),
    )
    return TaskList(
        t=t, loop=1, total=1234, sampled=True, tasks=tuple(tasks), finished=finished, cost=0.0006
    )


def screens_live_events() -> list[Event]:
    return sorted([*live_events(), task_list(T0 + 19.0)], key=lambda e: e.t)


def screens_exited_events() -> list[Event]:
    return sorted([*exited_events(), task_list(T0 + 19.0)], key=lambda e: e.t)
