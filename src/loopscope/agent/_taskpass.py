"""One pass over a loop's tasks per tick, shared by the collectors that look at tasks.

The census, the task list, the duplicates and the race detector all look at (a sample of) the
loop's tasks and walk their await chains. A `TaskPass` does that once per tick for those of them
that are due: it draws the tasks once (`TaskView`), walks each task's await chain at most once
(`await_chain`), and hands the view to each due collector (a `TaskVisitor`), which takes what it
needs of it and emits its event. Each collector stays usable on its own (`TaskVisitor.take`,
its own timer), as the tests use them.

Drawing the tasks: ``asyncio.all_tasks`` costs about 2 ms for 10,000 tasks, so where asyncio
keeps its task registry in a WeakSet (3.10-3.13) its weak references are copied (fast, in C) and
only the sample is dereferenced; the population then includes other loops' and finished tasks,
which the visitors filter out and scale for.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from ._periodic import Periodic
from .events import Event

MAX_DEPTH = 64  # await chain levels followed; deeper chains are cut
MAX_SAMPLE = 20_000

# How to go one level down an await chain: (frame attribute, awaited attribute).
_LINKS = (("cr_frame", "cr_await"), ("gi_frame", "gi_yieldfrom"), ("ag_frame", "ag_await"))
_OPAQUE = frozenset(("async_generator_asend", "async_generator_athrow", "coroutine_wrapper"))
_CHAINABLE = (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)

# One level of an await chain: a frame and the object running it (a coroutine, a generator, an
# async generator, or another implementation's coroutine).
Level = tuple[types.FrameType, Any]


def await_chain(coro: Any) -> list[Level]:
    """The frames on the await chain from ``coro`` down, outermost first, each with the object
    that runs it. Levels without a frame (an ``__anext__`` awaitable) are stepped through."""
    out: list[Level] = []
    obj = coro
    for _ in range(MAX_DEPTH):
        cls = type(obj)
        holder = obj
        if cls is types.CoroutineType:
            frame, obj = obj.cr_frame, obj.cr_await
        elif cls is types.GeneratorType:
            frame, obj = obj.gi_frame, obj.gi_yieldfrom
        elif cls is types.AsyncGeneratorType:
            frame, obj = obj.ag_frame, obj.ag_await
        else:
            frame, obj = _step(obj)
        if frame is not None:
            out.append((frame, holder))
        if obj is None:
            break
    return out


class TaskView:
    """The tasks of a loop at one tick: drawn once, each await chain walked at most once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, rng: random.Random, limit: int) -> None:
        self.loop = loop
        self.rng = rng
        self.current = asyncio.current_task(loop)
        self._limit = limit
        self._drawn: list[Any] | None = None  # drawn at the first `sample`
        self._population: int | None = None
        self._sampled: list[Any] = []
        self._chains: dict[int, list[Level]] = {}
        # id(task) -> what the census's classifier said of its wait (the task list asks too)
        self.waits: dict[int, Any] = {}

    def sample(self, limit: int) -> tuple[list[Any], int | None]:
        """Up to ``limit`` of the tasks that may belong to the loop (None for vanished ones), and
        the size of the population they were drawn from (None when they are all of them)."""
        drawn, population = self._drawn, self._population
        if drawn is None:
            drawn, population = self._drawn, self._population = candidates(
                self.loop, max(limit, self._limit), self.rng
            )
        n = len(drawn)
        if n <= limit:
            return drawn, population
        if population is not None:  # drawn at random already: a prefix is a random sample
            return drawn[:limit], population
        # Every task was drawn: a random sample of them, shared by the visitors as far as it goes.
        if len(self._sampled) < limit:
            self._sampled = self.rng.sample(drawn, limit)
        return self._sampled[:limit], n

    def chain(self, task: Any) -> list[Level]:
        """The await chain of ``task``, walked once per view."""
        chains = self._chains
        chain = chains.get(id(task))
        if chain is None:
            chain = chains[id(task)] = await_chain(task.get_coro())
        return chain


R = TypeVar("R")


class TaskVisitor(Periodic, Generic[R]):
    """A collector that looks at the loop's tasks: alone on its own timer, or as one of a
    `TaskPass`'s visitors."""

    def limit(self) -> int:
        """How many tasks the next look wants drawn."""
        raise NotImplementedError

    def observe(self, view: TaskView) -> R:
        """What the collector makes of the tasks of ``view``."""
        raise NotImplementedError

    def take(self) -> R:
        """One look at the loop's tasks, now; call on the loop thread."""
        return self.observe(self.view())

    def view(self) -> TaskView:
        """A view of the loop's tasks for this collector alone."""
        return TaskView(self._loop, self._random, self.limit())

    def visit(self, view: TaskView) -> Sequence[Event]:
        """Look at the tasks of ``view``; the events to emit."""
        return (self.observe(view),)  # type: ignore[return-value]

    def tick(self) -> None:
        self._visit(self.view())

    def _visit(self, view: TaskView) -> None:
        if self._stopped:
            return
        events = self.visit(view)
        if not self._stopped:
            for event in events:
                self._emit(event)


class TaskPass(Periodic):
    """Ticks at the shortest interval of its visitors, jittered; each visitor looks at every
    ``n``-th tick (``n`` a power of two, so that the visitors due at once share their walks), at
    about its own interval."""

    name = "task pass"
    jitter = 0.3

    def __init__(self, visitors: Sequence[TaskVisitor[Any]]) -> None:
        """``visitors``: collectors of one loop, with one emitter and one guard (the pass's)."""
        base = min(v.interval for v in visitors)
        super().__init__(visitors[0].context, base)
        self.visitors = tuple(visitors)
        self._visits = tuple(self._guard.wrap(v.name, v._visit) for v in visitors)
        self._every = tuple(2 ** max(0, round(math.log2(v.interval / base))) for v in self.visitors)
        self._ticks = 0

    def tick(self) -> None:
        n = self._ticks
        self._ticks += 1
        plan = zip(self.visitors, self._visits, self._every, strict=True)
        enabled = self._guard.enabled
        due = [(v, visit) for v, visit, every in plan if n % every == 0 and enabled(v.name)]
        if not due:
            return
        # A pass allocates a few objects per task it meets; with many tasks alive, a full
        # collection they happen to trigger would take several milliseconds inside the pass. It
        # is put off until the pass ends (the program's next allocation).
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            view = TaskView(self._loop, self._random, max(v.limit() for v, _ in due))
            for _, visit in due:
                visit(view)
        finally:
            if collecting:
                gc.enable()

    def reset(self) -> None:
        for visitor in self.visitors:
            self._guard.wrap(f"{visitor.name} stop", visitor.stop)()


def candidates(
    loop: asyncio.AbstractEventLoop, limit: int, rng: random.Random
) -> tuple[list[Any], int | None]:
    """Up to ``limit`` of the tasks that may belong to ``loop`` (None for vanished ones), and the
    size of the population they were drawn from (None when they are all of the loop's tasks)."""
    registry = _registry()
    if registry is None:
        tasks = list(asyncio.all_tasks(loop))
        if len(tasks) <= limit:
            return tasks, None
        return rng.sample(tasks, limit), len(tasks)
    refs, eager = registry
    population = len(refs) + len(eager)
    if population <= limit:
        return [ref() for ref in refs] + eager, None
    chosen = rng.sample(range(population), limit)
    n = len(refs)
    return [refs[i]() if i < n else eager[i - n] for i in chosen], population


def pending(loop: asyncio.AbstractEventLoop, tasks: Iterable[Any]) -> Iterator[Any]:
    """The tasks of ``tasks`` that are ``loop``'s and not done: drawn candidates may be None (a
    task that vanished), another loop's, done since, or not a Task at all."""
    for task in tasks:
        if task is None:
            continue
        try:
            if task.get_loop() is not loop or task.done():
                continue
        except AttributeError:  # not a Task; nothing to say about it
            continue
        yield task


def _registry() -> tuple[list[Any], list[Any]] | None:
    if sys.version_info >= (3, 14):
        # Tasks of the C implementation live in per-thread lists there, not in these sets.
        return None
    tasks_module = asyncio.tasks
    scheduled = getattr(tasks_module, "_scheduled_tasks", None)  # 3.12, 3.13
    if scheduled is None:
        scheduled = getattr(tasks_module, "_all_tasks", None)  # 3.10, 3.11
    data = getattr(scheduled, "data", None)
    if not isinstance(data, set):
        return None
    eager = getattr(tasks_module, "_eager_tasks", None)
    for _ in range(10):
        try:
            return list(data), list(eager) if isinstance(eager, set) else []
        except RuntimeError:  # the set changed size while copied (a task freed on another thread)
            continue
    return None


def _step(obj: Any) -> tuple[types.FrameType | None, Any]:
    """(frame, awaited object) one level down an await chain from something that is not a
    Python coroutine, generator or async generator."""
    cls = type(obj)
    link: Any = _TYPE_LINKS.get(cls, _UNSEEN)
    if link is _UNSEEN:
        link = _TYPE_LINKS[cls] = _link_of(cls)
    if link is None:  # the end of the chain: a future's iterator, ...
        return None, None
    if link == _THROUGH_GC:
        # ``agen.__anext__()`` and ``coro.__await__()`` hide what they drive from Python; the
        # garbage collector sees it.
        return None, next((r for r in gc.get_referents(obj) if isinstance(r, _CHAINABLE)), None)
    frame = getattr(obj, link[0], None)
    return frame if isinstance(frame, types.FrameType) else None, getattr(obj, link[1], None)


_THROUGH_GC = "gc"
_UNSEEN = object()
_TYPE_LINKS: dict[type, tuple[str, str] | str | None] = {}  # type -> how to step through it


def _link_of(cls: type) -> tuple[str, str] | str | None:
    if cls.__name__ in _OPAQUE:
        return _THROUGH_GC
    # Coroutines of other implementations (Cython) follow the same protocol, where they can.
    for frame_attr, await_attr in _LINKS:
        if hasattr(cls, await_attr):
            return frame_attr, await_attr
    return None
