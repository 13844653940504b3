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

Even so, a Python task factory costs every task about half a microsecond, which is a tenth of a
very short task's life. So the factory is *duty cycled*: at each window's end the collector
works out what counting every task would cost the loop (the creation rate times the cost per
task: the factory's call, a constant measured here, plus the sweeps, timed as they run). While
that stays within ``BUDGET`` of the loop's time, or has not been over it for ``RATE_SPAN``
seconds, the factory stays in place and the counts are exact. Above it, the factory is in place
only for one slice of each window (at a random point in it, long enough for ``BUDGET`` and for
``MIN_SAMPLE`` tasks), and every task seen in a slice counts for ``1 / duty`` tasks: created by
name, and finished, failed and cancelled when it ends, so created and finished stay comparable
even when the duty changes while tasks live. `Lifecycle.sampled` says what share of the window
was observed.

Taking the factory out between slices never takes out a factory the program set meanwhile: if
the program installed one over ours during a slice, ours stays where it is (the program's calls
it) and from then on only its counting is switched on and off.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import random
import sys
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Any

from ._loops import on_loop_thread
from ._periodic import LoopContext, Periodic
from .events import Frame, Lifecycle, Notice, TaskError, TaskErrors

SWEEP_EVERY = 64  # small: holding many finished tasks costs more (memory reuse) than sweeping
GENERATIONS = 4
GROWTH = 4  # generation i is swept every GROWTH**i sweeps
MAX_NAMES = 100  # coroutine names per window; the rest are counted under OTHER
OTHER = "<other>"
NOTICE_EVERY = 1.0
UNRETRIEVED = "exception was never retrieved"
# aiohttp's report, through the loop's exception handler, of a ClientSession freed unclosed.
UNCLOSED_SESSION = "Unclosed client session"
UNCLOSED_ERROR = "unclosed aiohttp.ClientSession"  # the error kind these reports are kept as
MAX_SESSIONS = 4096  # creation stacks kept of live sessions (the oldest go first)
DESCRIPTION_LIMIT = 200
MAX_ERRORS = 20  # distinct unretrieved exceptions per window; the rest are counted as dropped
STACK_LIMIT = 16  # frames kept of an exception's traceback (the innermost) and of a creation

# Duty cycling (see the module docstring).
BUDGET = 0.005  # share of the loop's time that counting every task may cost
# Loop time that counting adds to each task apart from the sweeps (which are timed as they run):
# the factory's call, its appends, and holding the task until a sweep. Measured here with
# short tasks created back to back: 0.45-0.65 us on CPython 3.10-3.13 (0.1-0.17 us of it the
# call of a pass-through factory). A constant, so on a much slower or faster machine the budget
# is met only approximately.
FACTORY_COST = 0.45e-6
# A sweep costs 0.05-0.2 us a task swept; one that took more than this a task (plus one) was
# interrupted, and is left out of the cost per task.
SWEEP_INTERRUPTED = 5e-6
RATE_SPAN = 1.0  # seconds the cost must stay over budget before sampling starts
MIN_DUTY = 0.02  # the shortest slice, as a share of the window
MIN_SAMPLE = 200  # tasks a slice should see, for the scaled counts to mean something

TaskFactory = Callable[..., "asyncio.Future[Any]"]
ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
_Tasks = list["asyncio.Future[Any]"]
_Held = dict[float, _Tasks]  # a generation: tasks by the weight each counts for


@dataclass(frozen=True)
class SamplingPolicy:
    """How much counting may cost the loop, and how the collector samples when it would cost
    more (see the module docstring)."""

    budget: float = BUDGET  # share of the loop's time that counting every task may cost
    rate_span: float = RATE_SPAN  # seconds the cost must stay over budget before sampling
    min_duty: float = MIN_DUTY  # the shortest slice, as a share of the window
    min_sample: int = MIN_SAMPLE  # tasks a slice should see

    def share(self, rate: float, cost: float, window: float) -> float:
        """The share of a window to count tasks in: 1.0 when counting all of them (``rate``
        tasks a second, ``cost`` seconds each) stays within the budget of the loop's time, else
        the share that does, but never so little that a slice sees fewer than ``min_sample``
        tasks or is shorter than ``min_duty`` of the window."""
        share = rate * cost
        if share <= self.budget:
            return 1.0
        floor = max(self.min_duty, self.min_sample / (rate * window))
        return min(1.0, max(floor, self.budget / share))


class LifecycleCollector(Periodic):
    """Counts tasks created and ended on a loop; emits one `Lifecycle` every ``window`` seconds
    and a `Notice` (at most one a second) when task exceptions are never retrieved."""

    name = "lifecycle"

    def __init__(
        self,
        context: LoopContext,
        window: float = 0.5,
        *,
        policy: SamplingPolicy = SamplingPolicy(),
        idle_clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(context, window)
        self._idle_clock = idle_clock
        self._policy = policy
        self._counting = False  # read by the factory on every task: one attribute, no call
        self._slice_handle: asyncio.TimerHandle | None = None  # a slice's start or end

        # Duty cycling: the share of this window counted, and what each task seen counts for.
        self.duty = 1.0
        self._weight = 1.0
        self._factory_in = False  # ours is the loop's factory because we set it (not buried)
        self._buried = False  # the program set a factory over ours: ours stays, only counts
        self._slice_start = 0.0
        self._observed = 0.0  # seconds of this window spent counting
        self._observed_idle = 0.0  # of which the loop waited in its selector
        self._idle_at_on = 0.0
        self._seen = 0  # tasks counted in this window, not scaled
        self._history: deque[tuple[float, float]] = deque()  # (window seconds, tasks created)
        self._sweep_time = 0.0  # seconds spent sweeping, and the tasks swept in that time
        self._sweep_tasks = 0

        # The callables installed, kept so that stop() can tell whether they are still in place.
        self._installed_factory: TaskFactory = self._make_factory()
        self._installed_handler: ExceptionHandler = self._handler
        self._original_factory: TaskFactory | None = None
        self._original_handler: ExceptionHandler | None = None

        # Guarded hooks. A sweep that fails returns False, and the factory then stops counting.
        self._swept = self._guard.wrap(self.name, self._sweep, fallback=False)
        self._exception = self._guard.wrap(self.name, self._on_exception)
        self._tick = self._guard.wrap(self.name, self._end_window)
        self._slice_on = self._guard.wrap(self.name, self._start_slice)
        self._slice_off = self._guard.wrap(self.name, self._end_slice)
        self._detach_callbacks = self._guard.wrap(self.name, self._remove_done_callbacks)

        # Tasks not yet seen done: created since the last sweep (with their coroutines, all
        # counting for self._weight), then pending at one, two... sweeps, by weight.
        self._new: _Tasks = []
        self._generations: list[_Held] = [{} for _ in range(GENERATIONS - 1)]
        self._coros: list[Any] = []
        self._sweeps = 0
        # Long-lived tasks with a done callback, and the callback (one per weight).
        self._watched: weakref.WeakKeyDictionary[asyncio.Future[Any], Callable[..., Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._ended_by_weight: dict[float, Callable[[asyncio.Future[Any]], None]] = {}

        # Counts of this window, scaled: floats, rounded when emitted.
        self._by_name: Counter[str] = Counter()
        self._finished = 0.0
        self._failed = 0.0
        self._cancelled = 0.0
        self._window_start = time.perf_counter()

        self._unretrieved = 0
        self._unretrieved_latest = ""
        self._last_notice = float("-inf")
        # This window's unretrieved exceptions: (coroutine, type, where raised) -> the report.
        self._errors: dict[tuple[str, str, Frame | None], _Error] = {}
        self._errors_dropped = 0
        # Once a session is reported unclosed, its class's __init__ is wrapped so that later
        # sessions carry where they were created: id(session) -> stack, innermost first.
        self._session_class: Any = None
        self._session_init: Any = None
        self._session_stacks: dict[int, tuple[Frame, ...]] = {}

    def start(self) -> None:
        """Install the task factory and exception handler; call on the loop thread."""
        if self._stopped:
            return
        loop = self._loop
        self._original_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._installed_handler)
        self._window_start = time.perf_counter()
        self._count_on(self._window_start)
        self._handle = loop.call_later(self._interval, self._tick)

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
        if self._factory_in and loop.get_task_factory() is self._installed_factory:
            loop.set_task_factory(self._original_factory)
        self._factory_in = False
        if loop.get_exception_handler() is self._installed_handler:
            loop.set_exception_handler(self._original_handler)
        self._unwrap_sessions()
        self._generations = [{} for _ in range(GENERATIONS - 1)]
        self._new = []
        self._coros = []
        handles = (self._handle, self._slice_handle)
        self._handle = self._slice_handle = None
        if on_loop_thread(loop):
            for handle in handles:
                if handle is not None:
                    handle.cancel()
            self._detach_callbacks()
        elif self._watched:
            # Done callbacks and timer handles belong to the loop thread; the pending window
            # tick and slice timers, if they fire, do nothing. (A closed loop refuses: its
            # tasks are over.)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._detach_callbacks)

    # -- duty cycling -----------------------------------------------------------------------

    def _count_on(self, now: float) -> None:
        """Start counting: put our factory in front of the loop's current one, unless the
        program has buried ours under its own (then ours is reached through theirs)."""
        loop = self._loop
        if not self._buried:
            current = loop.get_task_factory()
            if current is not self._installed_factory:
                self._original_factory = current
                loop.set_task_factory(self._installed_factory)
            self._factory_in = True
        self._slice_start = now
        if self._idle_clock is not None:
            self._idle_at_on = self._idle_clock()
        self._counting = True

    def _count_off(self, now: float) -> None:
        """Stop counting, and take our factory out if it is still the loop's factory."""
        self._counting = False
        self._observed += now - self._slice_start
        if self._idle_clock is not None:
            self._observed_idle += self._idle_clock() - self._idle_at_on
        if self._factory_in:
            self._factory_in = False
            loop = self._loop
            if loop.get_task_factory() is self._installed_factory:
                loop.set_task_factory(self._original_factory)
            else:
                # The program set its factory over ours (and may call ours from it): leave both.
                self._buried = True
        self._sweep()  # the slice's tasks, at the slice's weight

    def _start_slice(self) -> None:
        if self._stopped:
            return
        now = time.perf_counter()
        self._count_on(now)
        self._slice_handle = self._loop.call_later(self.duty * self._interval, self._slice_off)

    def _end_slice(self) -> None:
        self._slice_handle = None
        if self._stopped or not self._counting:
            return
        self._count_off(time.perf_counter())

    def _next_duty(self, elapsed: float, created: float) -> float:
        """The duty of the next window, from this one's (scaled) creations and those of the
        last ``rate_span`` seconds."""
        history = self._history
        history.append((elapsed, created))
        span = sum(e for e, _ in history)
        while len(history) > 1 and span - history[0][0] >= self._policy.rate_span:
            span -= history.popleft()[0]
        if elapsed <= 0 or span <= 0:
            return self.duty
        cost = self._task_cost()
        last = created / elapsed
        sustained = sum(c for _, c in history) / span
        if self.duty == 1.0:
            # Sampling starts on a rate kept up for rate_span seconds, not on a burst.
            rate = min(last, sustained) if span >= self._policy.rate_span else 0.0
        elif sustained * cost <= self._policy.budget:
            rate = sustained  # the load has come down: count everything again
        else:
            rate = max(last, sustained)
        return self._policy.share(rate, cost, self._interval)

    def _correction(self) -> float:
        """How many tasks the loop would have made for each one made while counting.

        Counting costs the loop time: when the loop has no idle time left to absorb it (a loop
        saturated with task creation), it makes fewer tasks while the factory is in, and a
        slice's rate, scaled up, would count too few. The factory's share of the counted time
        beyond the loop's idle share is taken as displaced work. Without an idle clock (a loop
        whose selector cannot be wrapped) nothing is assumed displaced."""
        observed = self._observed
        if self._idle_clock is None or observed <= 0 or not self._seen:
            return 1.0
        share = self._seen / observed * self._task_cost()
        displaced = share - self._observed_idle / observed
        return 1.0 / (1.0 - min(0.5, max(0.0, displaced)))

    def _task_cost(self) -> float:
        """Loop time that counting one task costs: the factory's call and the sweeps."""
        return FACTORY_COST + (self._sweep_time / self._sweep_tasks if self._sweep_tasks else 0.0)

    # -- hooks ----------------------------------------------------------------------------

    def _make_factory(self) -> TaskFactory:
        """The task factory: a closure, since it runs on every task while counting (a bound
        method and an attribute per step would cost each task more)."""
        collector = self

        # Not guarded as a whole: an error from the program's own factory (or from Task(), for a
        # bad argument) is the program's and must reach it unchanged. What runs of ours on every
        # task is two appends; the rest is in the guarded sweep.
        def factory(
            loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
        ) -> asyncio.Future[Any]:
            original = collector._original_factory
            task: asyncio.Future[Any]
            if original is not None:
                task = original(loop, coro, **kwargs)
            elif kwargs:
                # What loop.create_task() does without a factory; kwargs are whatever this
                # Python's create_task passes (context, eager_start...).
                task = asyncio.Task(coro, loop=loop, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop)
            if collector._counting:
                new = collector._new
                new.append(task)
                collector._coros.append(coro)
                if len(new) >= SWEEP_EVERY and not collector._swept():
                    collector.stop()  # the guard disabled our hooks: out of the program's way
            return task

        return factory

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
        done callback. Every task counts for the weight of the slice it was created in."""
        started = time.perf_counter()
        new, self._new = self._new, []
        coros, self._coros = self._coros, []
        weight = self._weight
        self._count_names(coros, weight)
        self._sweeps += 1
        swept = len(new)
        generations = self._generations
        last = len(generations) - 1
        # Oldest first, so that the tasks promoted now wait a whole period in their new one.
        for i in range(last, -1, -1):
            if not final and self._sweeps % (GROWTH ** (i + 1)):
                continue
            held, generations[i] = generations[i], {}
            for w, tasks in held.items():
                swept += len(tasks)
                pending = self._count_ended(tasks, w)
                if i < last:
                    generations[i + 1].setdefault(w, []).extend(pending)
                    continue
                ended = self._ended_for(w)
                for task in pending:
                    task.add_done_callback(ended)
                    self._watched[task] = ended
        if new:
            generations[0].setdefault(weight, []).extend(self._count_ended(new, weight))
        took = time.perf_counter() - started
        # A sweep that took far longer than sweeps do was interrupted (the process waited for a
        # core, or a collection ran): counted, it would make counting look dearer than it is
        # and the correction too large. (The thread's CPU time would tell, but costs a system
        # call, 0.5 us, per sweep.)
        if took <= SWEEP_INTERRUPTED * (swept + 1):
            self._sweep_time += took
            self._sweep_tasks += swept
        return True

    def _ended_for(self, weight: float) -> Callable[[asyncio.Future[Any]], None]:
        ended = self._ended_by_weight.get(weight)
        if ended is None:

            def on_done(task: asyncio.Future[Any]) -> None:
                if not self._stopped:
                    self._count_ended([task], weight)

            ended = self._ended_by_weight[weight] = self._guard.wrap(self.name, on_done)
        return ended

    def _count_names(self, coros: list[Any], weight: float) -> None:
        by_name = self._by_name
        self._seen += len(coros)
        try:
            names: Iterable[str] = list(map(_qualname_of, coros))
        except AttributeError:  # an awaitable that is not a Python coroutine
            names = [getattr(c, "__qualname__", None) or type(c).__qualname__ for c in coros]
        if weight == 1.0:
            by_name.update(names)  # counts in C
        else:
            for name, n in Counter(names).items():
                by_name[name] += n * weight  # type: ignore[assignment]
        if len(by_name) > MAX_NAMES:
            # Keep the first names seen; a name created on every request stays visible.
            for name in list(by_name)[MAX_NAMES:]:
                if name != OTHER:
                    by_name[OTHER] += by_name.pop(name)

    def _count_ended(self, tasks: _Tasks, weight: float) -> Iterable[asyncio.Future[Any]]:
        """Count the tasks that are done, each as ``weight`` tasks; return the others."""
        # All in C (map, compress, count): a Python call per task would cost more than the rest.
        states = list(map(_state_of, tasks))
        pending = states.count(_PENDING)
        if pending == len(states):
            return tasks
        self._finished += (len(states) - pending) * weight
        self._cancelled += states.count(_CANCELLED) * weight
        # Not task.exception(): that would mark the exception retrieved and silence asyncio's
        # "exception was never retrieved" report. (A cancelled task has no _exception.)
        done = list(compress(tasks, map(operator.ne, states, repeat(_PENDING))))
        self._failed += (len(done) - list(map(_exception_of, done)).count(None)) * weight
        return compress(tasks, map(operator.eq, states, repeat(_PENDING)))

    def _on_exception(self, context: dict[str, Any]) -> None:
        message = context.get("message")
        if message == UNCLOSED_SESSION:
            self._on_unclosed(context.get("client_session"))
            return
        if not isinstance(message, str) or UNRETRIEVED not in message:
            return
        self._unretrieved += 1
        error = context.get("exception")
        what = f"{type(error).__name__}: {_message(error)}" if error is not None else message
        task = context.get("future")
        get_coro = getattr(task, "get_coro", None)
        coroutine = "?"
        if get_coro is not None:
            coroutine = str(getattr(get_coro(), "__qualname__", "?"))
            what += f" (task {coroutine})"
        self._unretrieved_latest = _bounded(what)
        self._note_error(coroutine, error, task)
        self._notify(time.monotonic())

    def _on_unclosed(self, session: object) -> None:
        """A ClientSession freed without close(): kept as an error at where it was created
        (known for sessions made after the first report), else where it was dropped."""
        if session is None or not type(session).__module__.startswith("aiohttp"):
            return
        stack = self._session_stacks.pop(id(session), None)
        where = "created"
        if stack is None:
            where = "dropped"
            frame: Any = sys._getframe(1)
            while frame is not None and frame.f_code.co_name != "__del__":
                frame = frame.f_back
            stack = _stack_frames(frame.f_back if frame is not None else sys._getframe(1))
            self._wrap_sessions(type(session))
        self._note_stack(where, UNCLOSED_ERROR, stack, ())

    def _wrap_sessions(self, cls: Any) -> None:
        if self._session_class is not None or self._stopped:
            return
        original = cls.__dict__.get("__init__")
        if original is None:
            return
        stacks = self._session_stacks

        def __init__(session: Any, *args: Any, **kwargs: Any) -> None:
            if len(stacks) >= MAX_SESSIONS:
                del stacks[next(iter(stacks))]
            stacks[id(session)] = _stack_frames(sys._getframe(1))
            original(session, *args, **kwargs)

        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        cls.__init__ = __init__
        self._session_class, self._session_init = cls, __init__

    def _unwrap_sessions(self) -> None:
        cls, self._session_class = self._session_class, None
        if cls is not None and cls.__dict__.get("__init__") is self._session_init:
            with contextlib.suppress(Exception):
                cls.__init__ = self._session_init.__wrapped__
        self._session_init = None
        self._session_stacks.clear()

    def _note_error(self, coroutine: str, error: object, task: object) -> None:
        stack = _traceback_frames(getattr(error, "__traceback__", None))
        kind = type(error).__name__ if error is not None else "?"
        module = type(error).__module__ if error is not None else "builtins"
        if module not in ("builtins", "__main__"):
            kind = f"{module}.{kind}"
        created = _created_frames(getattr(task, "_source_traceback", None))
        message = _message(error) if error is not None else ""
        self._note_stack(coroutine, kind, stack, created, message)

    def _note_stack(
        self,
        coroutine: str,
        kind: str,
        stack: tuple[Frame, ...],
        created: tuple[Frame, ...],
        message: str = "",
    ) -> None:
        key = (coroutine, kind, stack[0] if stack else None)
        entry = self._errors.get(key)
        if entry is None:
            if len(self._errors) >= MAX_ERRORS:
                self._errors_dropped += 1
                return
            entry = self._errors[key] = _Error(coroutine, kind, stack, created)
        entry.count += 1
        entry.message = message

    def _flush_errors(self) -> None:
        if not self._errors and not self._errors_dropped:
            return
        errors, self._errors = self._errors, {}
        dropped, self._errors_dropped = self._errors_dropped, 0
        ranked = sorted(errors.values(), key=lambda e: -e.count)
        self._emit(
            TaskErrors(
                t=time.time(),
                loop=self._loop_id,
                errors=tuple(
                    TaskError(
                        coroutine=e.coroutine,
                        error=e.error,
                        message=e.message,
                        count=e.count,
                        stack=e.stack,
                        created=e.created,
                    )
                    for e in ranked
                ),
                dropped=dropped,
            )
        )

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
        self._keep_handler()  # first: the sweep below may free failed tasks
        now = time.perf_counter()
        if self._counting:
            self._count_off(now)
        self._sweep(final=True)
        elapsed = now - self._window_start
        by_name, self._by_name = self._by_name, Counter()
        created = sum(by_name.values())
        event = Lifecycle(
            t=time.time(),
            loop=self._loop_id,
            window=elapsed,
            created=round(created),
            finished=round(self._finished),
            failed=round(self._failed),
            cancelled=round(self._cancelled),
            created_by={name: round(n) for name, n in by_name.items()},
            sampled=1.0 if self.duty == 1.0 else min(1.0, self._observed / elapsed),
        )
        self._window_start = now
        self._finished = self._failed = self._cancelled = 0.0
        correction = self._correction()
        self._observed = self._observed_idle = 0.0
        self._seen = 0
        self._emit(event)
        self._flush_errors()
        self._notify(time.monotonic())

        loop = self._loop
        self.duty = self._next_duty(elapsed, created)
        # Three significant digits: few distinct weights, each with its done callback.
        self._weight = 1.0 if self.duty == 1.0 else float(f"{correction / self.duty:.3g}")
        window = self.pace(self._interval) if self.duty == 1.0 else self._interval
        self._handle = loop.call_later(window, self._tick)
        if self.duty == 1.0:
            self._count_on(now)
        else:
            # A slice at a random point of the window, so that nothing periodic in the program
            # is always seen, or always missed.
            offset = random.uniform(0.0, (1.0 - self.duty) * self._interval)
            self._slice_handle = loop.call_later(offset, self._slice_on)

    def _keep_handler(self) -> None:
        """Chain to an exception handler the program set after ours (programs often set theirs
        once their loop runs, after the agent started): ours goes back in front of it."""
        current = self._loop.get_exception_handler()
        if current is not self._installed_handler:
            self._original_handler = current
            self._loop.set_exception_handler(self._installed_handler)

    def _remove_done_callbacks(self) -> None:
        watched, self._watched = self._watched, weakref.WeakKeyDictionary()
        for task, ended in list(watched.items()):
            task.remove_done_callback(ended)


# Futures' states (asyncio.futures) and outcome, read without a method call.
_PENDING = "PENDING"
_CANCELLED = "CANCELLED"
_state_of = operator.attrgetter("_state")
_exception_of = operator.attrgetter("_exception")
_qualname_of = operator.attrgetter("__qualname__")


class _Error:
    __slots__ = ("coroutine", "count", "created", "error", "message", "stack")

    def __init__(
        self, coroutine: str, error: str, stack: tuple[Frame, ...], created: tuple[Frame, ...]
    ) -> None:
        self.coroutine = coroutine
        self.error = error
        self.stack = stack
        self.created = created
        self.count = 0
        self.message = ""


def _traceback_frames(tb: Any) -> tuple[Frame, ...]:
    """The frames of a traceback, innermost first, the innermost ``STACK_LIMIT`` of them."""
    frames: deque[Frame] = deque(maxlen=STACK_LIMIT)
    for _ in range(1000):  # a traceback is finite, but a damaged one must not hang us
        if tb is None:
            break
        code = tb.tb_frame.f_code
        function = getattr(code, "co_qualname", code.co_name)
        frames.append(Frame(code.co_filename, tb.tb_lineno or 0, function))
        tb = tb.tb_next
    frames.reverse()
    return tuple(frames)


def _stack_frames(frame: Any) -> tuple[Frame, ...]:
    """The innermost ``STACK_LIMIT`` frames of a live stack, innermost first."""
    frames: list[Frame] = []
    while frame is not None and len(frames) < STACK_LIMIT:
        code = frame.f_code
        function = getattr(code, "co_qualname", code.co_name)
        frames.append(Frame(code.co_filename, frame.f_lineno or 0, function))
        frame = frame.f_back
    return tuple(frames)


def _created_frames(source: Any) -> tuple[Frame, ...]:
    """Where a task was created, innermost first, from the stack asyncio keeps in debug mode
    (``Task._source_traceback``: outermost first)."""
    if not source:
        return ()
    frames = []
    for entry in list(source)[-STACK_LIMIT:]:
        frames.append(
            Frame(str(entry.filename), int(entry.lineno or 0), str(getattr(entry, "name", "")))
        )
    frames.reverse()
    return tuple(frames)


def _message(error: object) -> str:
    try:
        return _bounded(str(error))
    except Exception:  # an exception whose __str__ fails: its type says enough
        return ""


def _bounded(text: str) -> str:
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"
