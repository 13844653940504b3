"""A 3.14+ target's tasks read from outside, nothing injected: the target's own interpreter runs
as a helper process that reads the target's memory with ``_remote_debugging`` (as ``python -m
asyncio ps`` does) and prints, every interval, each task with its coroutine stack and the tasks
that await it. The target keeps running while it is read: no stop, no GIL taken.

The helper runs inside the target's mount and PID namespaces and root when the target has a root
of its own (a container), since its interpreter needs its own libraries; it ends when loopscope
stops reading it or the target exits. Events: a `Census` (tasks, their await sites and what
they wait on) and an `ExternalTasks` (tasks by coroutine), as a task monitor would give.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from loopscope.attach._proc import ProcessInfo
from loopscope.attach._root import own_interpreter_argv, own_interpreter_unavailable
from loopscope.events import AwaitSite, Census, Event, ExternalTasks, TaskGroup
from loopscope.sources._helper import HELPER_PRELUDE, REMOTE_DEBUGGING, HelperSource

SOURCE_NAME = "remote_debugging"
DEFAULT_INTERVAL = 0.5
_MAX_GROUPS = 30
_MAX_SITES = 30
_MAX_NAMES = 5

# Run by the target's own interpreter (-I -S), after the prelude. Frames come innermost first.
_HELPER = r"""
pid, interval = int(sys.argv[1]), float(sys.argv[2])


def frame(f):
    return [f.filename, line(f), f.funcname]


try:
    unwinder = rd.RemoteUnwinder(pid, all_threads=True)
except Exception as e:
    fail(e)
failures = 0
while True:
    started = time.time()
    try:
        threads = unwinder.get_all_awaited_by()
        failures = 0
    except Exception as e:
        failures += 1
        if failures >= 5:
            fail(e)
        time.sleep(0.01)
        continue
    tasks = []
    for thread in threads:
        for task in thread.awaited_by:
            tasks.append({
                "id": task.task_id,
                "name": str(task.task_name),
                "stack": [frame(f) for coro in task.coroutine_stack for f in coro.call_stack],
                "awaited_by": [c.task_name for c in task.awaited_by],
                "thread": thread.thread_id,
            })
    try:
        print(json.dumps({"t": started, "took": time.time() - started, "tasks": tasks}),
              flush=True)
    except BrokenPipeError:
        break
    # Reading 10,000 tasks takes about 0.5 s: never spend over a fifth of the time reading.
    took = time.time() - started
    # stdin ends when loopscope stops reading (nsenter's child outlives a signal to nsenter)
    if select.select([sys.stdin], [], [], max(interval, 5 * took) - took)[0]:
        break
"""

# What a task waits on, from the qualified name of the innermost asyncio function it is in.
_KINDS = {
    "sleep": "sleep",
    "Lock.acquire": "lock",
    "Semaphore.acquire": "semaphore",
    "BoundedSemaphore.acquire": "semaphore",
    "Event.wait": "event",
    "Condition.wait": "condition",
    "Condition.wait_for": "condition",
    "Queue.get": "queue_get",
    "Queue.put": "queue_put",
    "StreamReader.read": "stream_read",
    "StreamReader.readline": "stream_read",
    "StreamReader.readuntil": "stream_read",
    "StreamReader.readexactly": "stream_read",
    "StreamReader._wait_for_data": "stream_read",
    "StreamWriter.drain": "stream_drain",
    "wait": "wait",
    "_wait": "wait",
    "wait_for": "task",
    "to_thread": "executor",
    "TaskGroup.__aexit__": "wait",
    "TaskGroup._aexit": "wait",
}


def helper_argv(info: ProcessInfo, interval: float) -> list[str] | None:
    """The command that runs the helper with the target's own interpreter, or None when it
    cannot be found."""
    code = REMOTE_DEBUGGING + HELPER_PRELUDE + _HELPER
    return own_interpreter_argv(info.pid, info.other_root, code, str(interval))


def unavailable(info: ProcessInfo) -> str | None:
    """Why this source cannot read ``info``'s process, or None."""
    if info.python is None or info.python < (3, 14):
        return f"needs the target on Python 3.14+ (it runs {info.python_text})"
    return own_interpreter_unavailable(info.pid, info.other_root)


class RemoteTasksSource(HelperSource):
    """Process ``info.pid``'s tasks read from outside with its own interpreter's
    ``_remote_debugging``, every ``interval`` s."""

    source_name = SOURCE_NAME

    def __init__(
        self,
        info: ProcessInfo,
        *,
        interval: float = DEFAULT_INTERVAL,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(info.pid, alive)
        self.info = info
        self.interval = interval

    def events(self) -> Iterator[Event]:
        why = unavailable(self.info)
        argv = helper_argv(self.info, self.interval) if why is None else None
        process = self._start(argv, why)
        if process is None:
            yield self._state("unavailable", self.reason)
            return
        try:
            for report in self._reports(process):
                if not self.live:
                    self.live = True
                    yield self._state("live", f"process {self.pid}, with its own interpreter")
                yield from to_events(report, self.pid)
        finally:
            self._stop()
        yield self._end("lost")


def to_events(report: dict[str, Any], pid: int) -> list[Event]:
    """The helper's report of one pass as a `Census` and an `ExternalTasks`."""
    t = float(report.get("t") or time.time())
    tasks = [task for task in report.get("tasks") or () if isinstance(task, dict)]
    # the tasks some other task waits for are awaited by these: they wait on tasks
    parents = {parent for task in tasks for parent in task.get("awaited_by") or ()}
    kinds: Counter[str] = Counter()
    sites: Counter[tuple[str, int, str, str]] = Counter()
    coroutines: Counter[str] = Counter()
    names: dict[str, list[str]] = {}
    for task in tasks:
        stack = [f for f in task.get("stack") or () if isinstance(f, list) and len(f) == 3]
        kind, site = _wait(stack, task.get("id") in parents)
        kinds[kind] += 1
        if site is not None:
            sites[(str(site[0]), int(site[1]), str(site[2]), kind)] += 1
        coroutine = str(stack[-1][2]) if stack else "?"
        coroutines[coroutine] += 1
        listed = names.setdefault(coroutine, [])
        if len(listed) < _MAX_NAMES:
            listed.append(str(task.get("name", "")))
    return [
        Census(
            t=t,
            loop=0,
            total=len(tasks),
            inspected=len(tasks),
            by_state={"waiting": len(tasks)} if tasks else {},
            by_kind=dict(kinds),
            sites=tuple(
                AwaitSite(file=f, line=line, function=fn, kind=kind, count=n, oldest=0.0)
                for (f, line, fn, kind), n in sites.most_common(_MAX_SITES)
            ),
        ),
        ExternalTasks(
            t=t,
            source=SOURCE_NAME,
            endpoint=f"pid {pid}",
            total=len(tasks),
            live=tuple(
                TaskGroup(coroutine=c, count=n, oldest=0.0, names=tuple(names[c]))
                for c, n in coroutines.most_common(_MAX_GROUPS)
            ),
            terminated_total=0,
            terminated=(),
        ),
    ]


def _wait(stack: list[list[Any]], awaits_a_task: bool) -> tuple[str, list[Any] | None]:
    """What a task waits on and its await site (the innermost frame outside asyncio)."""
    kind = "other"
    for file, _line, function in stack:
        if "/asyncio/" not in str(file):
            break
        name = str(function)
        if name in _KINDS or name.rpartition(".")[2] in ("sleep",):
            kind = _KINDS.get(name, "sleep")
            break
    site = next((f for f in stack if "/asyncio/" not in str(f[0])), None)
    if kind == "other" and awaits_a_task:
        kind = "task"
    return kind, site
