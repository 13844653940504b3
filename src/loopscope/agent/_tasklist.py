"""The task list: a bounded list of a loop's live tasks, the longest waits first, for the task
table of the UI; and the listed tasks that ended, with how.

A pass runs on the loop thread every ``interval`` seconds. It tells the state of a sample of
the loop's tasks (cheap: a few attribute reads each) plus the tasks it listed last time, ages
each wait from when the agent first saw it (a wait is one future: waiting again is a new wait),
keeps the ``MAX_TASKS`` longest waits, and walks only their await chains. The ``DETAILED``
longest also carry their whole chain with each coroutine's arguments.

Listed tasks get a done callback (bounded in number), so the next list says how they ended:
result, exception or cancellation, and how long they lived since first listed.

Arguments are shown only for plain values (numbers, strings, bytes, None, and containers of
them, through ``reprlib``): calling an application object's ``__repr__`` on the loop thread
could be slow or have effects. Anything else reads ``<TypeName>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import reprlib
import time
import types
import weakref
from collections import deque
from typing import Any

from ._census import WaitClassifier
from ._loops import on_loop_thread
from ._taskpass import Level, TaskView, TaskVisitor, pending
from .events import AwaitFrame, FinishedTask, Frame, TaskInfo, TaskList

MAX_TASKS = 30  # tasks per list
DETAILED = 5  # of which carry their await chain and arguments
MAX_CHAIN = 12  # chain levels kept
MAX_ARGS = 6  # arguments shown per frame
MAX_FINISHED = 20  # ended tasks per list
MAX_WATCHED = 1000  # tasks with a done callback at once
SAMPLE = 150  # tasks whose state a pass tells, besides those it listed last time
TEXT_LIMIT = 80
# A list's size on the wire and in recordings, roughly: tasks stop being added past it. At one
# list every 2 s that is at most about 4 KB/s of the recording budget (20 KB/s).
MAX_BYTES = 8000

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_PLAIN = (int, float, str, bytes, bool, type(None), tuple, list, dict, set, frozenset)
_STATE_RANK = {"waiting": 0, "ready": 1, "running": 2}


class _PlainRepr(reprlib.Repr):
    def repr_instance(self, x: Any, level: int) -> str:
        # Inside a container: an application object's own __repr__ is not called either.
        return f"<{type(x).__name__}>"


_repr = _PlainRepr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4
_repr.maxlevel = 2


class TaskListCollector(TaskVisitor[TaskList]):
    """Emits one `TaskList` of the loop every ``interval`` seconds."""

    name = "tasks"

    default_interval = 2.0

    def setup(self) -> None:
        self._ended = self._guard.wrap(self.name, self._on_done)
        # Classifies a wait (kind, site) the way the census does.
        self._classifier = WaitClassifier()
        # id(waiter) -> (weak reference to it, monotonic time first seen)
        self._waits: dict[int, tuple[weakref.ref[Any], float]] = {}
        self._listed: list[weakref.ref[Any]] = []
        # Listed tasks with our done callback: task -> monotonic time first listed
        self._watched: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._finished: deque[FinishedTask] = deque(maxlen=MAX_FINISHED)

    def reset(self) -> None:
        """Take the done callbacks back off (on the loop thread)."""
        watched, self._watched = self._watched, weakref.WeakKeyDictionary()
        if on_loop_thread(self._loop):
            for task in list(watched):
                task.remove_done_callback(self._ended)
        elif watched:
            tasks = list(watched)

            def remove() -> None:
                for task in tasks:
                    task.remove_done_callback(self._ended)

            with contextlib.suppress(RuntimeError):  # a closed loop: its tasks are over
                self._loop.call_soon_threadsafe(remove)
        self._waits = {}
        self._listed = []

    def limit(self) -> int:
        return SAMPLE

    def observe(self, view: TaskView) -> TaskList:
        """The list of the tasks of ``view``."""
        started = time.perf_counter()
        now = time.monotonic()
        loop = self._loop
        candidates, population = view.sample(SAMPLE)
        previous = [ref() for ref in self._listed]
        current = view.current
        waits = self._waits
        seen: set[int] = set()
        found = 0
        ranked: list[tuple[int, float, Any, Any]] = []  # (state rank, -age, task, waiter)
        for task in pending(loop, previous + candidates):
            if id(task) in seen:
                continue
            seen.add(id(task))
            found += 1
            if task is current:
                ranked.append((2, 0.0, task, None))
                continue
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is None or waiter.done():
                ranked.append((1, 0.0, task, None))
                continue
            entry = waits.get(id(waiter))
            age = now - entry[1] if entry is not None and entry[0]() is waiter else 0.0
            ranked.append((0, -age, task, waiter))
        ranked.sort(key=lambda r: (r[0], r[1]))
        chosen = ranked[:MAX_TASKS]
        self._remember(chosen, now)

        tasks: list[TaskInfo] = []
        size = 200  # the list's own fields
        for i, (rank, negative_age, task, waiter) in enumerate(chosen):
            info = self._describe(view, task, waiter, rank, -negative_age, detailed=i < DETAILED)
            size += _size(info)
            if size > MAX_BYTES and tasks:
                chosen = chosen[:i]
                break
            tasks.append(info)
            if task not in self._watched and len(self._watched) < MAX_WATCHED:
                task.add_done_callback(self._ended)
                self._watched[task] = now
        self._listed = [weakref.ref(t) for _, _, t, _ in chosen]
        finished = tuple(reversed(self._finished))
        self._finished.clear()
        if population is None:
            total = found
        else:
            # The previous list's tasks are part of the sample, not drawn from the population.
            drawn = len(candidates)
            total = round(found * population / (drawn + len(previous))) if drawn else found
        return TaskList(
            t=time.time(),
            loop=self._loop_id,
            total=total,
            sampled=population is not None,
            tasks=tuple(tasks),
            finished=finished,
            cost=time.perf_counter() - started,
        )

    def _remember(self, chosen: list[tuple[int, float, Any, Any]], now: float) -> None:
        """Age the waits of the listed tasks from now on (or keep their age); others are
        forgotten, and seen anew if drawn again."""
        old, waits = self._waits, {}
        for _, _, _, waiter in chosen:
            if waiter is None:
                continue
            entry = old.get(id(waiter))
            if entry is None or entry[0]() is not waiter:
                try:
                    entry = (weakref.ref(waiter), now)
                except TypeError:  # a future without weak references: never aged
                    continue
            waits[id(waiter)] = entry
        self._waits = waits

    def _describe(
        self, view: TaskView, task: Any, waiter: Any, rank: int, age: float, *, detailed: bool
    ) -> TaskInfo:
        coro = task.get_coro()
        state = ("waiting", "ready", "running")[rank]
        kind, file, line, function = "", "", 0, ""
        chain: tuple[AwaitFrame, ...] = ()
        resource = 0
        if waiter is not None:
            code, line, kind, obj = self._classifier.classify(view, task, waiter)
            resource = id(obj) if obj is not None else 0
            if code is not None:
                file, function = code.file, code.function
        if detailed:
            chain = _chain(view.chain(task))
        if not file:
            frame = getattr(coro, "cr_frame", None)
            if frame is not None:
                file, line = frame.f_code.co_filename, frame.f_lineno
                function = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
        return TaskInfo(
            id=id(task),
            name=_bounded(str(task.get_name())),
            coro=_bounded(_name_of(coro)),
            state=state,
            kind=kind,
            waited=age,
            file=file,
            line=line,
            function=function,
            chain=chain,
            created=_created(task) if detailed else None,
            resource=resource,
        )

    def _on_done(self, task: Any) -> None:
        first = self._watched.pop(task, None)
        if first is None or self._stopped:
            return
        if task.cancelled():
            result, error = "cancelled", ""
        else:
            # Not task.exception(): that would mark the exception retrieved.
            exception = getattr(task, "_exception", None)
            result = "ok" if exception is None else "exception"
            error = "" if exception is None else _error(exception)
        self._finished.append(
            FinishedTask(
                id=id(task),
                name=_bounded(str(task.get_name())),
                coro=_bounded(_name_of(task.get_coro())),
                result=result,
                error=error,
                lived=time.monotonic() - first,
                ended=time.time(),
            )
        )


def _size(task: TaskInfo) -> int:
    """About how many bytes ``task`` takes as JSON."""
    size = 205 + len(task.name) + len(task.coro) + len(task.file) + len(task.function)
    for frame in task.chain:
        size += 50 + len(frame.file) + len(frame.function) + sum(len(a) + 3 for a in frame.args)
    if task.created is not None:
        size += 45 + len(task.created.file) + len(task.created.function)
    return size


def _chain(levels: list[Level]) -> tuple[AwaitFrame, ...]:
    """The await chain ``levels`` tell, innermost first, with each frame's arguments."""
    out: list[AwaitFrame] = []
    for frame, _ in levels[:MAX_CHAIN]:
        code = frame.f_code
        if (
            out
            and code.co_filename.startswith(_ASYNCIO_DIR)
            and out[-1].file.startswith(_ASYNCIO_DIR)
        ):
            # Of a run of asyncio's own frames only the innermost (the primitive) says
            # something, and each costs the recording budget.
            out.pop()
        out.append(
            AwaitFrame(
                file=code.co_filename,
                line=frame.f_lineno,
                function=getattr(code, "co_qualname", code.co_name),
                args=_args(frame),
            )
        )
    out.reverse()
    return tuple(out)


def _args(frame: types.FrameType) -> tuple[str, ...]:
    code = frame.f_code
    if code.co_filename.startswith(_ASYNCIO_DIR):
        return ()
    count = code.co_argcount + code.co_kwonlyargcount
    names = code.co_varnames[:count]
    values = frame.f_locals
    out = []
    for name in names[:MAX_ARGS]:
        if name not in values:
            continue
        out.append(f"{name}={_safe_repr(values[name])}")
    return tuple(out)


def _safe_repr(value: Any) -> str:
    if type(value) not in _PLAIN:
        return f"<{type(value).__name__}>"
    try:
        return _bounded(_repr.repr(value))
    except Exception:
        return f"<{type(value).__name__}>"


def _created(task: Any) -> Frame | None:
    """Where the task was created, from the traceback asyncio keeps in debug mode."""
    traceback = getattr(task, "_source_traceback", None)
    if not traceback:
        return None
    for entry in reversed(traceback):
        if not entry.filename.startswith(_ASYNCIO_DIR):
            return Frame(file=entry.filename, line=entry.lineno or 0, function=entry.name)
    return None


def _name_of(coro: Any) -> str:
    return str(getattr(coro, "__qualname__", None) or type(coro).__qualname__)


def _error(exception: BaseException) -> str:
    text = str(exception)
    return _bounded(f"{type(exception).__name__}: {text}" if text else type(exception).__name__)


def _bounded(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"
