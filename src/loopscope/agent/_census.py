"""The task census: what every task of a loop is waiting on, where, and for how long.

A pass runs on the loop thread. It takes the tasks of the loop, sorts them into running, ready
and waiting, and for each waiting task walks the await chain from its coroutine down to the
primitive it is suspended on: that gives the *kind* of wait (a Lock, a Queue, a sleep, ...), the
*await site* (the innermost frame that is not asyncio's nor loopscope's own code) and, for
synchronisation primitives, the *resource* (the Lock or Queue object itself).

A pass must stay within about a millisecond of loop time. Telling a task's state costs well under
a microsecond, walking its await chain a few: with many tasks, a pass takes the state of a random
sample of them and walks the chains of a smaller sample of the waiting ones, scaling the counts
up; both sample sizes follow the cost per task measured in the previous pass.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
import types
import weakref
from collections.abc import Iterable
from typing import Any

from ._codemap import local_map
from ._routes import route_of
from ._taskpass import MAX_SAMPLE, Level, TaskView, TaskVisitor, pending
from .events import AwaitSite, Census, Frame, Resource, RouteLoad

MAX_SITES = 50
MAX_RESOURCES = 50
MAX_ROUTES = 10  # routes per census, most pending first: at most about 1.5 KB on the wire
MAX_ROUTE_FUNCTIONS = 8  # application functions named per route
# The chains of this many of a route's tasks, per pass, are read for those functions: requests
# of one route mostly wait in the same ones, and the census's walk must stay within its budget.
ROUTE_TASKS_READ = 8
LABEL_LIMIT = 80

# A pass aims to spend about this much loop time telling tasks' states, and this much walking
# await chains; the sample sizes follow from the cost per task measured in the last pass.
STATE_BUDGET = 0.0002
WALK_BUDGET = 0.0004
MIN_STATE_SAMPLE = 256
MIN_WALK_SAMPLE = 16

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
# The agent may run under a private package name: its own frames are known by module name, and
# by file where it has one.
_OWN_PACKAGE = __name__.rpartition(".")[0]
_own_file = globals().get("__file__")
_OWN_DIR = os.path.dirname(os.path.abspath(_own_file)) + os.sep if _own_file else None

# (asyncio module, function name) -> kind. Functions of locks.py are told apart by the type of
# their ``self`` (3.10 has no co_qualname, and Condition.acquire is Lock.acquire).
_FUNCTION_KINDS: dict[tuple[str, str], str] = {
    ("tasks", "sleep"): "sleep",
    ("tasks", "wait"): "wait",
    ("tasks", "_wait"): "wait",
    ("tasks", "_wait_for_one"): "wait",
    ("tasks", "wait_for"): "task",
    ("taskgroups", "__aexit__"): "wait",
    ("taskgroups", "_aexit"): "wait",
    ("queues", "get"): "queue_get",
    ("queues", "put"): "queue_put",
    ("streams", "read"): "stream_read",
    ("streams", "readline"): "stream_read",
    ("streams", "readuntil"): "stream_read",
    ("streams", "readexactly"): "stream_read",
    ("streams", "_wait_for_data"): "stream_read",
    ("streams", "drain"): "stream_drain",
    ("streams", "_drain_helper"): "stream_drain",
    ("threads", "to_thread"): "executor",
    ("locks", "acquire"): "locks",
    ("locks", "wait"): "locks",
    ("locks", "wait_for"): "locks",
}
for _module in ("base_events", "selector_events", "proactor_events"):
    for _function in (
        "sock_recv",
        "sock_recv_into",
        "sock_recvfrom",
        "sock_recvfrom_into",
        "sock_sendall",
        "sock_sendto",
        "sock_connect",
        "sock_accept",
        "sock_sendfile",
    ):
        _FUNCTION_KINDS[(_module, _function)] = "socket"

# The primitives whose waiting methods live in locks.py (a Barrier is none of them: it waits on a
# Condition).
_LOCK_KINDS: tuple[tuple[type, str], ...] = (
    (asyncio.Lock, "lock"),
    (asyncio.Semaphore, "semaphore"),
    (asyncio.Event, "event"),
    (asyncio.Condition, "condition"),
)
_RESOURCE_KINDS = frozenset(("lock", "semaphore", "event", "condition", "queue_get", "queue_put"))


class _Code:
    """What the census needs to know about a code object, computed once per code object."""

    __slots__ = ("app", "code", "file", "function", "handoff", "internal", "kind")

    def __init__(self, code: types.CodeType, module: str) -> None:
        self.code = code  # keeps id(code) from being reused while cached
        self.file = code.co_filename
        self.function: str = getattr(code, "co_qualname", code.co_name)
        in_asyncio = self.file.startswith(_ASYNCIO_DIR)
        own = module == _OWN_PACKAGE or module.startswith(_OWN_PACKAGE + ".")
        if _OWN_DIR is not None and self.file.startswith(_OWN_DIR):
            own = True
        self.internal = in_asyncio or own
        # The site is the innermost application frame: a wait inside framework plumbing
        # (anyio's worker threads, starlette's middleware) is the wait of the handler above it.
        self.app = not own and local_map().is_app(self.file)
        # anyio's hand-off to a worker thread (or the executor collector's wrapper of it): the
        # waits below it (its CapacityLimiter, the thread's answer) are the function it runs.
        self.handoff = code.co_name in _HANDOFFS and (own or f"{os.sep}anyio{os.sep}" in self.file)
        self.kind: str | None = None
        if in_asyncio:
            stem = os.path.splitext(os.path.basename(self.file))[0]
            self.kind = _FUNCTION_KINDS.get((stem, code.co_name))


_HANDOFFS = frozenset(("run_sync_in_worker_thread",))


class _Site:
    __slots__ = ("code", "count", "kind", "line", "oldest", "routes")

    def __init__(self, code: _Code | None, line: int, kind: str) -> None:
        self.code = code
        self.line = line
        self.kind = kind
        self.count = 0
        self.oldest = 0.0
        self.routes: dict[str, int] = {}  # the routes its inspected waiters serve, and how many


class _Route:
    __slots__ = ("count", "functions", "oldest", "sites")

    def __init__(self) -> None:
        self.count = 0
        self.oldest = 0.0
        self.sites: dict[_Site, int] = {}  # where its inspected tasks wait, and how many
        self.functions: dict[str, None] = {}  # application functions on their chains


class _Resource:
    __slots__ = ("obj", "oldest", "seen", "sites")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.seen = 0
        self.oldest = 0.0
        self.sites: dict[_Site, int] = {}  # where its inspected waiters wait, and how many

    def site(self) -> _Site | None:
        """The await site most of its inspected waiters are at."""
        sites = self.sites
        return max(sites, key=sites.__getitem__) if sites else None


class CensusCollector(TaskVisitor[Census]):
    """Emits one `Census` of the loop every ``interval`` seconds."""

    name = "census"

    default_interval = 0.5

    def setup(self) -> None:
        self._classifier = WaitClassifier()
        # id(future a task waits on) -> (weak reference to it, monotonic time first seen). One
        # wait is one future: a task that waits again at the same place waits on a new one.
        self._waits: dict[int, tuple[weakref.ref[Any], float]] = {}
        self._unpruned: list[int] = []
        # Small at first: the first pass also fills the caches.
        self._state_sample = MIN_STATE_SAMPLE
        self._walk_sample = 32

    def reset(self) -> None:
        self._waits = {}
        self._unpruned = []
        self._classifier = WaitClassifier()

    def limit(self) -> int:
        return self._state_sample

    def observe(self, view: TaskView) -> Census:
        """The census of the tasks of ``view``."""
        started = time.perf_counter()
        now = time.monotonic()
        loop = self._loop

        # 1. The state of (a sample of) the loop's tasks: cheap, a few attribute reads each.
        candidates, population = view.sample(self._state_sample)
        current = view.current
        states = {"waiting": 0, "ready": 0, "running": 0}
        waiting: list[tuple[asyncio.Task[Any], Any]] = []
        for task in pending(loop, candidates):
            if task is current:
                states["running"] += 1
                continue
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is None or waiter.done():
                states["ready"] += 1
            else:
                waiting.append((task, waiter))
        states["waiting"] = len(waiting)
        found = sum(states.values())
        walked = (
            waiting
            if len(waiting) <= self._walk_sample
            else view.rng.sample(waiting, self._walk_sample)
        )
        states_done = time.perf_counter()

        # 2. The await chains of (a sample of) the waiting ones: a few microseconds each.
        kinds: dict[str, int] = {}
        sites: dict[Any, _Site] = {}
        resources: dict[int, _Resource] = {}
        routes: dict[str, _Route] = {}
        waits = self._waits
        classify = self._classifier.classify
        for task, waiter in walked:
            code, line, kind, resource = classify(view, task, waiter)
            route = _route(view.chain(task))
            kinds[kind] = kinds.get(kind, 0) + 1
            seen = waits.get(id(waiter))
            if seen is not None and seen[0]() is waiter:
                since = seen[1]
            else:
                since = now
                ref = _weak(waiter)
                if ref is not None:
                    waits[id(waiter)] = (ref, now)
            age = now - since

            key = (id(code), line, kind)
            site = sites.get(key)
            if site is None:
                site = sites[key] = _Site(code, line, kind)
            site.count += 1
            if age > site.oldest:
                site.oldest = age
            if route is not None:
                site.routes[route] = site.routes.get(route, 0) + 1
                load = routes.get(route)
                if load is None:
                    load = routes[route] = _Route()
                load.count += 1
                load.sites[site] = load.sites.get(site, 0) + 1
                if load.count <= ROUTE_TASKS_READ and len(load.functions) < MAX_ROUTE_FUNCTIONS:
                    self._classifier.app_functions(view.chain(task), load.functions)
                if age > load.oldest:
                    load.oldest = age
            if resource is not None:
                entry = resources.get(id(resource))
                if entry is None:
                    entry = resources[id(resource)] = _Resource(resource)
                entry.seen += 1
                entry.sites[site] = entry.sites.get(site, 0) + 1
                if age > entry.oldest:
                    entry.oldest = age
        self._prune(len(walked))

        # Scale the samples' counts up to the whole loop.
        if population is None:
            total, scale = found, 1.0
        else:
            total = round(found * population / len(candidates))
            scale = total / found if found else 1.0
        by_state = {state: round(n * scale) for state, n in states.items()}
        walk_scale = by_state["waiting"] / len(walked) if walked else 1.0
        by_kind = {kind: round(n * walk_scale) for kind, n in kinds.items()}
        top_sites = _top_sites(sites.values(), walk_scale)
        top_resources = _top_resources(resources.values(), walk_scale)
        finished = time.perf_counter()
        cost = finished - started
        self._adapt(states_done - started, len(candidates), finished - states_done, len(walked))
        return Census(
            t=time.time(),
            loop=self._loop_id,
            total=total,
            inspected=found - len(waiting) + len(walked),
            by_state=by_state,
            by_kind=by_kind,
            sites=top_sites,
            resources=top_resources,
            cost=cost,
            routes=_top_routes(routes, walk_scale),
        )

    def _adapt(self, state_cost: float, states: int, walk_cost: float, walks: int) -> None:
        """Size the next pass's samples from this pass's cost per task."""
        if states:
            budget = STATE_BUDGET / (state_cost / states)
            self._state_sample = int(max(MIN_STATE_SAMPLE, min(MAX_SAMPLE, budget)))
        if walks:
            budget = WALK_BUDGET / (walk_cost / walks)
            self._walk_sample = int(max(MIN_WALK_SAMPLE, min(MAX_SAMPLE, budget)))

    def _prune(self, budget: int) -> None:
        """Forget the ended waits among ``budget`` of those remembered: a few each pass, so that no
        pass pays for them all."""
        waits = self._waits
        keys = self._unpruned
        if not keys:
            keys.extend(waits)
        for _ in range(max(budget, 64)):
            if not keys:
                break
            key = keys.pop()
            seen = waits.get(key)
            if seen is not None and seen[0]() is None:
                del waits[key]


class WaitClassifier:
    """Tells what a waiting task waits on: the census's and the task list's."""

    def __init__(self) -> None:
        self._codes: dict[int, _Code] = {}

    def classify(
        self, view: TaskView, task: asyncio.Task[Any], waiter: Any
    ) -> tuple[_Code | None, int, str, Any]:
        """(site code, site line, kind, resource or None) of a waiting task, once per view."""
        known = view.waits.get(id(task))
        if known is None:
            known = view.waits[id(task)] = self._classify(view.chain(task), waiter)
        return known

    def app_functions(self, chain: list[Level], into: dict[str, None]) -> None:
        """Add the application functions of ``chain`` (classified already) to ``into``, up to
        ``MAX_ROUTE_FUNCTIONS``, outermost first."""
        codes = self._codes
        for frame, _ in chain:
            info = codes.get(id(frame.f_code))
            if info is not None and info.app and info.code is frame.f_code:
                if len(into) >= MAX_ROUTE_FUNCTIONS:
                    return
                into[info.function] = None

    def _classify(self, chain: list[Level], waiter: Any) -> tuple[_Code | None, int, str, Any]:
        """(site code, site line, kind, resource or None) of a task waiting on ``waiter`` with
        await chain ``chain``."""
        codes = self._codes
        site_frame: types.FrameType | None = None
        site: _Code | None = None
        app: tuple[types.FrameType, _Code] | None = None
        first: tuple[types.FrameType, _Code] | None = None
        # asyncio frames below the site that tell a kind of wait, outermost first
        below: list[tuple[types.FrameType, _Code]] = []
        for frame, _ in chain:
            code = frame.f_code
            info = codes.get(id(code))
            if info is None or info.code is not code:
                info = codes[id(code)] = _Code(code, frame.f_globals.get("__name__") or "")
            if first is None:
                first = (frame, info)
            if info.handoff:
                handed = _handed_site(frame, codes)
                if handed is not None:
                    return handed[0], handed[1], "executor", None
            if not info.internal:
                site_frame, site = frame, info
                below.clear()
                if info.app:
                    app = (frame, info)
            elif info.kind is not None:
                below.append((frame, info))
        if app is not None:
            site_frame, site = app
        if site_frame is None and first is not None:
            # The task runs asyncio's own code (create_task(asyncio.sleep(10))): its outermost
            # frame is the best site there is.
            site_frame, site = first

        # The outermost asyncio function below the site says what the program called.
        kind = None
        resource = None
        for frame, info in below:
            kind = info.kind
            if kind == "locks":
                resource = frame.f_locals.get("self")
                kind = _lock_kind(resource)
                if kind is None:  # a Barrier: look further down, at the Condition it uses
                    resource = None
                    continue
            elif kind in _RESOURCE_KINDS:
                resource = frame.f_locals.get("self")
            break
        if kind is None:
            kind = _future_kind(waiter)
        if site_frame is None:
            return None, 0, kind, resource
        return site, site_frame.f_lineno, kind, resource


def _handed_site(frame: types.FrameType, codes: dict[int, _Code]) -> tuple[_Code, int] | None:
    """The application function an anyio hand-off runs in a thread, as the site of its wait."""
    from ._executor import _application, _application_callable  # it imports this module

    fn = _application_callable(frame.f_locals.get("func"))
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType) or not _application(code.co_filename):
        return None
    info = codes.get(id(code))
    if info is None or info.code is not code:
        info = codes[id(code)] = _Code(code, getattr(fn, "__module__", None) or "")
    return info, code.co_firstlineno


def _weak(obj: Any) -> weakref.ref[Any] | None:
    try:
        return weakref.ref(obj)
    except TypeError:  # a future type without weak references: its waits are not aged
        return None


def _lock_kind(obj: Any) -> str | None:
    for cls, kind in _LOCK_KINDS:
        if isinstance(obj, cls):
            return kind
    return None


def _future_kind(waiter: Any) -> str:
    """The kind of a wait the asyncio frames did not tell: from the future waited on."""
    if isinstance(waiter, asyncio.Task) or hasattr(waiter, "get_coro"):
        return "task"
    name = type(waiter).__name__
    if name == "_GatheringFuture":
        return "gather"
    if _wraps_concurrent_future(waiter):
        return "executor"
    return "future"


def _wraps_concurrent_future(waiter: Any) -> bool:
    # loop.run_in_executor() and asyncio.wrap_future() chain the asyncio future to a
    # concurrent.futures.Future with a done callback that closes over it.
    for entry in getattr(waiter, "_callbacks", None) or ():
        callback = entry[0] if isinstance(entry, tuple) else entry
        for cell in getattr(callback, "__closure__", None) or ():
            try:
                if isinstance(cell.cell_contents, concurrent.futures.Future):
                    return True
            except ValueError:  # an empty cell
                continue
    return False


def _top_sites(sites: Iterable[_Site], scale: float) -> tuple[AwaitSite, ...]:
    ranked = sorted(sites, key=lambda s: (-s.count, -s.oldest))[:MAX_SITES]
    out = []
    for site in ranked:
        code = site.code
        out.append(
            AwaitSite(
                file=code.file if code is not None else "",
                line=site.line,
                function=code.function if code is not None else "",
                kind=site.kind,
                count=max(1, round(site.count * scale)),
                oldest=site.oldest,
                route=max(site.routes, key=site.routes.__getitem__) if site.routes else None,
            )
        )
    return tuple(out)


def _route(chain: list[Level]) -> str | None:
    """The route of the request a task serves, from the framework frames of its await chain."""
    try:
        return route_of(frame for frame, _ in reversed(chain))
    except Exception:  # a framework's object that cannot be read: no route
        return None


def _top_routes(routes: dict[str, _Route], scale: float) -> tuple[RouteLoad, ...]:
    ranked = sorted(routes.items(), key=lambda r: (-r[1].count, -r[1].oldest))[:MAX_ROUTES]
    out = []
    for name, load in ranked:
        site = max(load.sites, key=load.sites.__getitem__) if load.sites else None
        code = site.code if site is not None else None
        out.append(
            RouteLoad(
                route=name,
                tasks=max(1, round(load.count * scale)),
                site=(
                    Frame(code.file, site.line, code.function)
                    if site is not None and code is not None
                    else None
                ),
                kind=site.kind if site is not None else "",
                oldest=load.oldest,
                functions=tuple(load.functions),
            )
        )
    return tuple(out)


def _top_resources(resources: Iterable[_Resource], scale: float) -> tuple[Resource, ...]:
    described = []
    for entry in resources:
        waiters, label = _describe(entry.obj)
        if waiters is None:
            waiters = max(1, round(entry.seen * scale))
        described.append((waiters, entry, label))
    described.sort(key=lambda d: (-d[0], -d[1].oldest))
    out = []
    for waiters, entry, label in described[:MAX_RESOURCES]:
        site = entry.site()
        code = site.code if site is not None else None
        out.append(
            Resource(
                id=id(entry.obj),
                type=_bounded(type(entry.obj).__name__),
                label=label,
                waiters=waiters,
                oldest=entry.oldest,
                site=Frame(code.file, site.line, code.function)
                if site is not None and code is not None
                else None,
                kind=site.kind if site is not None else "",
            )
        )
    return tuple(out)


def _describe(obj: Any) -> tuple[int | None, str]:
    """(waiters as the object counts them, or None; a short label) of a resource."""
    name = type(obj).__name__
    waiters: int | None = None
    try:
        if isinstance(obj, asyncio.Queue):
            getters = len(obj._getters)  # type: ignore[attr-defined]
            putters = len(obj._putters)  # type: ignore[attr-defined]
            waiters = getters + putters
            size = obj.maxsize if obj.maxsize > 0 else "inf"
            label = f"{name} maxsize={size} qsize={obj.qsize()}"
            if getters and putters:
                label += f" getters={getters} putters={putters}"
        else:
            queue = getattr(obj, "_waiters", None)
            if queue is not None or isinstance(obj, (asyncio.Lock, asyncio.Semaphore)):
                waiters = len(queue) if queue is not None else 0
            if isinstance(obj, asyncio.Semaphore):
                bound = getattr(obj, "_bound_value", None)
                value = obj._value
                label = f"{name} value={value}" + (f"/{bound}" if bound is not None else "")
            elif isinstance(obj, asyncio.Event):
                label = f"{name} {'set' if obj.is_set() else 'unset'}"
            elif isinstance(obj, (asyncio.Lock, asyncio.Condition)):
                label = f"{name} {'locked' if obj.locked() else 'unlocked'}"
            else:
                label = name
    except Exception:  # a subclass with other internals: its name will do
        return None, _bounded(name)
    return waiters, _bounded(label)


def _bounded(text: str) -> str:
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"
