"""Task lifecycle: tasks created per coroutine, tasks finished, failed and cancelled, and task
exceptions nobody retrieved.

A task factory, chained to the program's own if it has one, notes every task created. Finding
out how each task ended is the costly part: a done callback on every task adds a ``call_soon``
(a Handle, a turn of the loop) to each task's life, about 1 us, a quarter of the cost of a short
task. Instead the factory only appends the task to a list, and every ``SWEEP_EVERY`` creations
(and at each window's end) a sweep counts, in C-level passes over the list, the tasks that are
done. Pending tasks move to older generations that are swept less and less often; those still
pending in the last one are the long-lived tasks, and only they get a done callback.

Holding a task in these lists keeps it alive until its generation's next sweep: a finished task
(and with it asyncio's "exception was never retrieved" report, which comes when it is freed) is
released at most a few thousand task creations, or one window, later than it would have been.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import compress, repeat
from typing import Any

from ._guard import Guard
from ._loops import on_loop_thread
from .events import Event, Lifecycle, Notice

SWEEP_EVERY = 64  # small: holding many finished tasks costs more (memory reuse) than sweeping
GENERATIONS = 4
GROWTH = 4  # generation i is swept every GROWTH**i sweeps
MAX_NAMES = 100  # coroutine names per window; the rest are counted under OTHER
OTHER = "<other>"
NOTICE_EVERY = 1.0
UNRETRIEVED = "exception was never retrieved"
DESCRIPTION_LIMIT = 200

TaskFactory = Callable[..., "asyncio.Future[Any]"]
ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
_Tasks = list["asyncio.Future[Any]"]


class LifecycleCollector:
    """Counts tasks created and ended on a loop; emits one `Lifecycle` every ``window`` seconds
    and a `Notice` (at most one a second) when task exceptions are never retrieved."""

    name = "lifecycle"

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        loop_id: int,
        emit: Callable[[Event], None],
        guard: Guard,
        window: float = 0.5,
    ) -> None:
        self._loop = loop
        self._loop_id = loop_id
        self._emit = emit
        self._window = window
        self._stopped = False
        self._counting = False  # read by the factory on every task: one attribute, no call
        self._handle: asyncio.TimerHandle | None = None

        # The callables installed, kept so that stop() can tell whether they are still in place.
        self._installed_factory: TaskFactory = self._factory
        self._installed_handler: ExceptionHandler = self._handler
        self._original_factory: TaskFactory | None = None
        self._original_handler: ExceptionHandler | None = None

        # Guarded hooks. A sweep that fails returns False, and the factory then stops counting.
        self._swept = guard.wrap(self.name, self._sweep, fallback=False)
        self._ended = guard.wrap(self.name, self._on_done)
        self._exception = guard.wrap(self.name, self._on_exception)
        self._tick = guard.wrap(self.name, self._end_window)
        self._detach_callbacks = guard.wrap(self.name, self._remove_done_callbacks)

        # Tasks not yet seen done: created since the last sweep (with their coroutines), then
        # pending at one, two... sweeps.
        self._generations: list[_Tasks] = [[] for _ in range(GENERATIONS)]
        self._new = self._generations[0]
        self._coros: list[Any] = []
        self._sweeps = 0
        self._watched: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()  # done callback

        self._by_name: Counter[str] = Counter()
        self._finished = 0
        self._failed = 0
        self._cancelled = 0
        self._window_start = time.perf_counter()

        self._unretrieved = 0
        self._unretrieved_latest = ""
        self._last_notice = float("-inf")

    def start(self) -> None:
        """Install the task factory and exception handler; call on the loop thread."""
        if self._stopped:
            return
        loop = self._loop
        self._original_factory = loop.get_task_factory()
        self._original_handler = loop.get_exception_handler()
        loop.set_task_factory(self._installed_factory)
        loop.set_exception_handler(self._installed_handler)
        self._counting = True
        self._window_start = time.perf_counter()
        self._handle = loop.call_later(self._window, self._tick)

    def stop(self) -> None:
        """Put back the original task factory and exception handler; callable from any thread.

        A factory or handler that the program installed over ours stays; ours then only passes
        calls through.
        """
        if self._stopped:
            return
        self._stopped = True
        self._counting = False
        loop = self._loop
        if loop.get_task_factory() is self._installed_factory:
            loop.set_task_factory(self._original_factory)
        if loop.get_exception_handler() is self._installed_handler:
            loop.set_exception_handler(self._original_handler)
        self._generations = [[] for _ in range(GENERATIONS)]
        self._new = self._generations[0]
        self._coros = []
        handle, self._handle = self._handle, None
        if on_loop_thread(loop):
            if handle is not None:
                handle.cancel()
            self._detach_callbacks()
        elif self._watched:
            # Done callbacks and timer handles belong to the loop thread; the pending window
            # tick, if it fires, does nothing. (A closed loop refuses: its tasks are over.)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._detach_callbacks)

    # -- hooks ----------------------------------------------------------------------------

    def _factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        # Not guarded as a whole: an error from the program's own factory (or from Task(), for a
        # bad argument) is the program's and must reach it unchanged. What runs of ours on every
        # task is two appends; the rest is in the guarded sweep.
        original = self._original_factory
        task: asyncio.Future[Any]
        if original is None:
            # What loop.create_task() does without a factory; kwargs are whatever this
            # Python's create_task passes (context, eager_start...).
            task = asyncio.Task(coro, loop=loop, **kwargs)
        else:
            task = original(loop, coro, **kwargs)
        if self._counting:
            new = self._new
            new.append(task)
            self._coros.append(coro)
            if len(new) >= SWEEP_EVERY and not self._swept():
                self.stop()  # the guard disabled our hooks: take them out of the program's way
        return task

    def _handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not self._stopped:
            self._exception(context)
        # Like the factory, the chained handler's errors are asyncio's to report.
        if self._original_handler is not None:
            self._original_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def _sweep(self, final: bool = False) -> bool:
        """Count the tasks created since the last sweep, and the held tasks that are done, by
        generations: generation ``i`` is swept every ``GROWTH**i`` sweeps (all of them at a
        window's end), its pending tasks move up one, and those still pending in the last get a
        done callback."""
        coros, self._coros = self._coros, []
        self._count_names(coros)
        self._sweeps += 1
        generations = self._generations
        last = len(generations) - 1
        # Oldest first, so that the tasks promoted now wait a whole period in their new one.
        for i in range(last, -1, -1):
            if not final and self._sweeps % (GROWTH**i):
                continue
            tasks, generations[i] = generations[i], []
            pending = self._count_ended(tasks)
            if i < last:
                generations[i + 1].extend(pending)
                continue
            for task in pending:
                task.add_done_callback(self._ended)
                self._watched.add(task)
        self._new = generations[0]
        return True

    def _count_names(self, coros: list[Any]) -> None:
        by_name = self._by_name
        try:
            names: Iterable[str] = list(map(_qualname_of, coros))
        except AttributeError:  # an awaitable that is not a Python coroutine
            names = [getattr(c, "__qualname__", None) or type(c).__qualname__ for c in coros]
        by_name.update(names)  # counts in C
        if len(by_name) > MAX_NAMES:
            # Keep the first names seen; a name created on every request stays visible.
            for name in list(by_name)[MAX_NAMES:]:
                if name != OTHER:
                    by_name[OTHER] += by_name.pop(name)

    def _count_ended(self, tasks: _Tasks) -> Iterable[asyncio.Future[Any]]:
        """Count the tasks that are done; return the others."""
        # All in C (map, compress, count): a Python call per task would cost more than the rest.
        states = list(map(_state_of, tasks))
        pending = states.count(_PENDING)
        if pending == len(states):
            return tasks
        self._finished += len(states) - pending
        self._cancelled += states.count(_CANCELLED)
        # Not task.exception(): that would mark the exception retrieved and silence asyncio's
        # "exception was never retrieved" report. (A cancelled task has no _exception.)
        done = list(compress(tasks, map(operator.ne, states, repeat(_PENDING))))
        self._failed += len(done) - list(map(_exception_of, done)).count(None)
        return compress(tasks, map(operator.eq, states, repeat(_PENDING)))

    def _on_done(self, task: asyncio.Future[Any]) -> None:
        if not self._stopped:
            self._count_ended([task])

    def _on_exception(self, context: dict[str, Any]) -> None:
        message = context.get("message")
        if not isinstance(message, str) or UNRETRIEVED not in message:
            return
        self._unretrieved += 1
        error = context.get("exception")
        what = f"{type(error).__name__}: {error}" if error is not None else message
        get_coro = getattr(context.get("future"), "get_coro", None)
        if get_coro is not None:
            what += f" (task {getattr(get_coro(), '__qualname__', '?')})"
        self._unretrieved_latest = _bounded(what)
        self._notify(time.monotonic())

    def _notify(self, now: float) -> None:
        if not self._unretrieved or now - self._last_notice < NOTICE_EVERY:
            return
        count, self._unretrieved = self._unretrieved, 0
        self._last_notice = now
        noun = "exception was" if count == 1 else "exceptions were"
        self._emit(
            Notice(
                t=time.time(),
                level="warning",
                message=f"{count} task {noun} never retrieved; latest: {self._unretrieved_latest}",
            )
        )

    def _end_window(self) -> None:
        if self._stopped:
            return
        self._sweep(final=True)
        now = time.perf_counter()
        by_name, self._by_name = self._by_name, Counter()
        event = Lifecycle(
            t=time.time(),
            loop=self._loop_id,
            window=now - self._window_start,
            created=sum(by_name.values()),
            finished=self._finished,
            failed=self._failed,
            cancelled=self._cancelled,
            created_by=dict(by_name),
        )
        self._window_start = now
        self._finished = self._failed = self._cancelled = 0
        self._emit(event)
        self._notify(time.monotonic())
        self._handle = self._loop.call_later(self._window, self._tick)

    def _remove_done_callbacks(self) -> None:
        watched, self._watched = self._watched, weakref.WeakSet()
        for task in list(watched):
            task.remove_done_callback(self._ended)


# Futures' states (asyncio.futures) and outcome, read without a method call.
_PENDING = "PENDING"
_CANCELLED = "CANCELLED"
_state_of = operator.attrgetter("_state")
_exception_of = operator.attrgetter("_exception")
_qualname_of = operator.attrgetter("__qualname__")


def _bounded(text: str) -> str:
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"
