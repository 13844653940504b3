"""The thread pools the loop waits on: their backlog, their busy threads and what those run, and
how long work waits in them.

Three kinds of pool are watched, each reported as its own `ExecutorSample` (``pool`` names it):
- the loop's default executor (``loop._default_executor``, a ThreadPoolExecutor), which appears
  when the program first calls ``run_in_executor(None, ...)`` or ``asyncio.to_thread``;
- any other ThreadPoolExecutor the program passes to ``loop.run_in_executor`` (seen through a
  wrapper of the loop's ``run_in_executor``, on loops that let it be set: not uvloop's);
- anyio's worker threads (``anyio.to_thread.run_sync``: Starlette and FastAPI run every ``def``
  endpoint and ``run_in_threadpool`` there), limited by anyio's default ``CapacityLimiter`` (40
  threads): seen through a wrapper of anyio's asyncio backend, installed once anyio is imported.

A loop timer looks at them every ``INTERVAL`` seconds. To time the queue, each work item is noted
with the time it was submitted and where from (the innermost application frame, or for anyio the
function it runs: a Starlette ``def`` endpoint is submitted by framework code only), and runs
inside a small function that notes when a thread took it up, what it runs, and how long it ran.
Workers append to deques and set and pop dict keys (single operations, safe across threads
without a lock); the loop timer reads them, and names the application function each busy thread
is running. A work item costs a few
microseconds more, against the tens that a hand-off to a thread itself costs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import os
import sys
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ._codemap import local_map
from ._guard import Guard
from ._periodic import Periodic
from .events import LAG_BUCKETS, ExecutorSample, Submitter, lag_bucket

INTERVAL = 0.5
QUIET_EVERY = 5.0  # an idle pool is reported this often, a working one at every tick
MAX_SUBMITTERS = 5
MAX_SITES = 200  # distinct (site, work) pairs kept per window
MAX_DEPTH = 8  # frames walked up from submit() to find the application's
MAX_POOLS = 8  # executors passed to run_in_executor that are watched, beyond the default
DEFAULT = "default executor"
ANYIO = "anyio worker threads"

_SKIP_DIRS = tuple(
    os.path.dirname(f) + os.sep
    for f in (getattr(asyncio, "__file__", None), getattr(concurrent.futures, "__file__", None))
    if f
)
_SKIP_FILES = frozenset(
    f for f in (getattr(functools, "__file__", None), getattr(contextvars, "__file__", None)) if f
)
_own_file = globals().get("__file__")
_OWN_DIR = os.path.dirname(os.path.abspath(_own_file)) + os.sep if _own_file else None
# The file name this module's code carries, however the agent was loaded (from source sent over
# the bootstrap socket it has no __file__): its wrappers sit in the stacks it walks.
_OWN_CODE_FILE = (lambda: None).__code__.co_filename

_qualname: Callable[[Any], str] = (
    (lambda code: code.co_qualname) if sys.version_info >= (3, 11) else (lambda code: code.co_name)
)


def _skipped(filename: str) -> bool:
    return (
        filename.startswith(_SKIP_DIRS)
        or filename in _SKIP_FILES
        or filename == _OWN_CODE_FILE
        or (_OWN_DIR is not None and filename.startswith(_OWN_DIR))
    )


def _application(filename: str) -> bool:
    # (The agent's own code, however it was loaded, by its file as well.)
    return (
        local_map().is_app(filename)
        and filename != _OWN_CODE_FILE
        and not (_OWN_DIR is not None and filename.startswith(_OWN_DIR))
    )


def _unwrapped(fn: Any) -> Any:
    """The function a work item runs: through ``to_thread``'s ``partial(context.run, f)`` and
    Starlette's ``partial(endpoint, **kwargs)``."""
    for _ in range(3):
        if isinstance(fn, functools.partial):
            inner: Any = fn.func
            if isinstance(getattr(inner, "__self__", None), contextvars.Context):
                fn = fn.args[0] if fn.args else inner
            else:
                fn = inner
        else:
            break
    return fn


def _application_callable(fn: Any) -> Any:
    """The application's function in a work item: the item itself, or one it was handed to
    call (FastAPI runs a ``def`` endpoint as ``partial(_run_sync_endpoint, function=endpoint,
    ...)``); else the item, unwrapped."""
    for _ in range(3):
        inner = _unwrapped(fn)
        inner = getattr(inner, "__wrapped__", inner)
        code = getattr(inner, "__code__", None)
        if code is not None and _application(code.co_filename):
            return inner
        if not isinstance(fn, functools.partial):
            return inner
        handed = [*fn.args, *fn.keywords.values()]
        found = next((a for a in handed if callable(a) and hasattr(a, "__code__")), None)
        if found is None:
            return inner
        fn = found
    return fn


def _work_name(fn: Any) -> str:
    fn = _unwrapped(fn)
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return str(name)


class _Work:
    """What the submit wrapper and the workers note, for the timer to read."""

    def __init__(self) -> None:
        self.tokens = itertools.count()
        self.waiting: dict[int, float] = {}  # token -> submitted (perf_counter), oldest first
        self.running: dict[int, float] = {}  # token -> started
        self.doing: dict[int, Any] = {}  # token -> the function it runs, while it runs
        self.waits: deque[float] = deque(maxlen=50_000)  # queue waits of items taken up
        self.runs: deque[float] = deque(maxlen=50_000)  # run times of items ended
        self.submitted = 0  # written by submitters (one thread in practice: the loop's)
        self.sites: dict[tuple[Any, int, str], int] = {}


def _run(work: _Work, token: int, fn: Any, args: Any, kwargs: Any) -> Any:
    """A work item, as a worker runs it."""
    clock = time.perf_counter
    started = clock()
    submitted = work.waiting.pop(token, None)
    if submitted is not None:
        work.waits.append(started - submitted)
    work.doing[token] = fn
    work.running[token] = started
    try:
        return fn(*args, **kwargs)
    finally:
        work.running.pop(token, None)
        work.doing.pop(token, None)
        work.runs.append(clock() - started)


class _Pool:
    """One watched pool: its work, and the figures of its last report."""

    def __init__(self, name: str, executor: Any = None) -> None:
        self.name = name
        self.work = _Work()
        self.executor = executor  # a ThreadPoolExecutor, or None for anyio's threads
        self.wrapper: Callable[..., Any] | None = None  # our submit on the executor
        self.window_start = time.perf_counter()
        self.last_sent = float("-inf")
        self.limiter: Any = None  # anyio: the default CapacityLimiter, once seen


# -- run_in_executor -----------------------------------------------------------------------------

# Loop classes whose run_in_executor is wrapped -> [the attribute in the class's own dict before
# (or _MISSING), our wrapper]; and the watched loops -> their collector's hook. The wrapper passes
# the calls of loops not watched straight on; the last loop of a class to stop takes it out.
_MISSING = object()
_run_in_executor_patches: dict[type, list[Any]] = {}
_run_in_executor_hooks: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = (
    weakref.WeakKeyDictionary()
)
_run_in_executor_lock = threading.Lock()


def _hook_run_in_executor(loop: Any, hook: Callable[[Any], None]) -> bool:
    cls = type(loop)
    try:
        hash(loop)  # a loop that cannot be a key is left unwrapped, before anything is patched
    except TypeError:
        return False
    with _run_in_executor_lock:
        if cls not in _run_in_executor_patches:
            original = getattr(cls, "run_in_executor", None)
            if original is None:
                return False
            own = cls.__dict__.get("run_in_executor", _MISSING)
            hooks = _run_in_executor_hooks

            def run_in_executor(self: Any, executor: Any, func: Any, *args: Any) -> Any:
                if executor is not None:
                    found = hooks.get(self)
                    if found is not None:
                        found(executor)
                return original(self, executor, func, *args)

            try:
                cls.run_in_executor = run_in_executor
            except (AttributeError, TypeError):  # a loop class written in C
                return False
            _run_in_executor_patches[cls] = [own, run_in_executor]
        _run_in_executor_hooks[loop] = hook
        return True


def _unhook_run_in_executor(loop: Any, hook: Callable[[Any], None]) -> None:
    cls = type(loop)
    with _run_in_executor_lock:
        if _run_in_executor_hooks.get(loop) is hook:
            del _run_in_executor_hooks[loop]
        if any(type(other) is cls for other in list(_run_in_executor_hooks.keys())):
            return
        patch = _run_in_executor_patches.pop(cls, None)
        if patch is None:
            return
        own, wrapper = patch
        # Something patched the class over ours: leave theirs (ours passes every call on).
        if cls.__dict__.get("run_in_executor") is wrapper:
            if own is _MISSING:
                delattr(cls, "run_in_executor")
            else:
                cls.run_in_executor = own


# -- anyio ---------------------------------------------------------------------------------------

# The loops whose collectors watch anyio's threads -> their pool. One wrapper of the backend serves
# every loop; the last collector to stop takes it out.
_anyio_pools: weakref.WeakKeyDictionary[Any, tuple[_Pool, Guard]] = weakref.WeakKeyDictionary()
_anyio_patch: list[Any] = []  # [backend class, original attribute, our wrapper] while installed


def _anyio_backend() -> Any:
    module = sys.modules.get("anyio._backends._asyncio")
    backend = getattr(module, "AsyncIOBackend", None)
    if backend is None or "run_sync_in_worker_thread" not in vars(backend):
        return None
    return backend


def _install_anyio(backend: Any) -> None:
    original = vars(backend)["run_sync_in_worker_thread"]
    bound = backend.run_sync_in_worker_thread
    get_loop = asyncio.get_running_loop

    async def run_sync_in_worker_thread(
        cls: Any, func: Any, args: Any, abandon_on_cancel: bool = False, limiter: Any = None
    ) -> Any:
        entry = _anyio_pools.get(get_loop())
        if entry is None or "executor" in entry[1].disabled:
            return await bound(func, args, abandon_on_cancel=abandon_on_cancel, limiter=limiter)
        pool, guard = entry
        token = _note_anyio(guard, pool, cls, func, limiter)
        if token is None:
            return await bound(func, args, abandon_on_cancel=abandon_on_cancel, limiter=limiter)
        work = pool.work
        try:
            return await bound(
                functools.partial(_run, work, token, func, args, {}),
                (),
                abandon_on_cancel=abandon_on_cancel,
                limiter=limiter,
            )
        finally:
            work.waiting.pop(token, None)  # cancelled while it waited

    wrapper = classmethod(run_sync_in_worker_thread)
    backend.run_sync_in_worker_thread = wrapper
    _anyio_patch[:] = [backend, original, wrapper]


def _note_anyio(guard: Guard, pool: _Pool, cls: Any, func: Any, limiter: Any) -> int | None:
    try:
        work = pool.work
        token = next(work.tokens)
        work.waiting[token] = time.perf_counter()
        work.submitted += 1
        if limiter is None and pool.limiter is None:
            pool.limiter = cls.current_default_thread_limiter()
        # The site: the function run (a Starlette ``def`` endpoint has no application frame
        # above it, only the framework's), else the first application frame up the stack.
        # Work of the framework's own (FastAPI validating in a thread) with no application frame
        # above it has no site: it is timed with the rest, not named.
        fn = _application_callable(func)
        code = getattr(fn, "__code__", None)
        if code is None or not _application(code.co_filename):
            frame: Any = sys._getframe(2)
            for _ in range(MAX_DEPTH):
                if frame is None or _application(frame.f_code.co_filename):
                    break
                frame = frame.f_back
            code = frame.f_code if frame is not None else None
        if code is not None and _application(code.co_filename):
            sites = work.sites
            key = (code, code.co_firstlineno, _work_name(fn))
            if key in sites or len(sites) < MAX_SITES:
                sites[key] = sites.get(key, 0) + 1
        return token
    except Exception as e:
        guard.failed("executor", e)
        return None


def _uninstall_anyio() -> None:
    if not _anyio_patch:
        return
    backend, original, wrapper = _anyio_patch
    _anyio_patch.clear()
    # Something patched it over ours: leave theirs (ours passes through once no loop is watched).
    if vars(backend).get("run_sync_in_worker_thread") is wrapper:
        backend.run_sync_in_worker_thread = original


# -- the collector -------------------------------------------------------------------------------


class ExecutorCollector(Periodic):
    """Samples the thread pools the loop waits on, on a loop timer; wraps their submission."""

    name = "executor"

    default_interval = INTERVAL

    def setup(self) -> None:
        self._default: _Pool | None = None  # the default executor's, once seen
        self._pools: dict[int, _Pool] = {}  # id(executor) -> executors passed to run_in_executor
        self._anyio: _Pool | None = None
        self._run_in_executor: Callable[[Any], None] | None = None  # our hook, while in place

    def start(self) -> None:
        """Start the timer; call on the loop thread."""
        if self._stopped:
            return
        self._wrap_run_in_executor()
        super().start()

    def reset(self) -> None:
        """Take every wrapper out."""
        if self._default is not None:
            _unwrap(self._default)
        for pool in list(self._pools.values()):
            _unwrap(pool)
        hook, self._run_in_executor = self._run_in_executor, None
        if hook is not None:
            _unhook_run_in_executor(self._loop, hook)
        if self._anyio is not None:
            _anyio_pools.pop(self._loop, None)
            if not _anyio_pools:
                _uninstall_anyio()

    @property
    def wrapped(self) -> Any:
        """The default executor whose ``submit`` is wrapped now, if any."""
        return self._default.executor if self._default is not None else None

    def tick(self) -> None:
        executor = getattr(self._loop, "_default_executor", None)
        default = self._default
        if executor is not None and (default is None or executor is not default.executor):
            if default is not None:
                _unwrap(default)
            self._default = self._wrap(DEFAULT, executor)
        self._watch_anyio()
        pools = [self._default, self._anyio, *self._pools.values()]
        live = [p for p in pools if p is not None]
        for pool in live:
            self._sample(pool)

    # -- the wrappers -----------------------------------------------------------------------

    def _wrap(self, name: str, executor: Any) -> _Pool:
        pool = _Pool(name, executor)
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            return pool  # sampled, not timed
        original = executor.submit
        work = pool.work
        note = self._guard.wrap(self.name, self._note, fallback=None)
        guard = self._guard
        collector = self.name

        def submit(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            if collector in guard.disabled:
                return original(fn, *args, **kwargs)
            token = note(work, fn)
            if token is None:
                return original(fn, *args, **kwargs)
            try:
                return original(_run, work, token, fn, args, kwargs)
            except BaseException:
                work.waiting.pop(token, None)
                raise

        executor.submit = submit  # type: ignore[method-assign]
        pool.wrapper = submit
        return pool

    def _wrap_run_in_executor(self) -> None:
        """See the executors the program passes to ``run_in_executor``: a wrapper on the loop's
        class, calling this collector's hook for this loop (asyncio's loops take one; uvloop's
        class does not, and its executors go unseen). Not an attribute of the loop itself: that
        would give the loop an instance dictionary of its own and slow every attribute read
        the loop and its tasks make (about 2% of a short task's cost)."""
        pools = self._pools
        guard = self._guard
        collector = self.name
        adopt = guard.wrap(self.name, self._adopt, fallback=None)

        def hook(executor: Any) -> None:
            if (
                id(executor) not in pools
                and collector not in guard.disabled
                and len(pools) < MAX_POOLS
            ):
                adopt(executor)

        if _hook_run_in_executor(self._loop, hook):
            self._run_in_executor = hook

    def _adopt(self, executor: Any) -> None:
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            return
        if self._default is not None and executor is self._default.executor:
            return
        prefix = getattr(executor, "_thread_name_prefix", "") or ""
        workers = getattr(executor, "_max_workers", "?")
        label = f" {prefix!r}" if prefix and not prefix.startswith("ThreadPoolExecutor-") else ""
        self._pools[id(executor)] = self._wrap(
            f"ThreadPoolExecutor{label} (max_workers={workers})", executor
        )

    def _watch_anyio(self) -> None:
        if self._anyio is not None:
            return
        backend = _anyio_backend()
        if backend is None:
            return
        if not _anyio_patch:
            _install_anyio(backend)
        self._anyio = _Pool(ANYIO)
        _anyio_pools[self._loop] = (self._anyio, self._guard)

    @staticmethod
    def _note(work: _Work, fn: Any) -> int:
        """Note a work item being submitted; its token."""
        token = next(work.tokens)
        work.waiting[token] = time.perf_counter()
        work.submitted += 1
        frame: Any = sys._getframe(3)  # _note <- guard <- submit <- its caller
        # The submitter is the innermost application frame (not the framework's that runs a
        # sync endpoint in a thread for it); else the innermost frame outside the machinery.
        first = None
        code = local_map()
        for _ in range(MAX_DEPTH):
            if frame is None:
                break
            filename = frame.f_code.co_filename
            if not _skipped(filename):
                if code.is_app(filename):
                    first = frame
                    break
                if first is None:
                    first = frame
            frame = frame.f_back
        frame = first
        if frame is not None:
            sites = work.sites
            key = (frame.f_code, frame.f_lineno, _work_name(fn))
            if key in sites or len(sites) < MAX_SITES:
                sites[key] = sites.get(key, 0) + 1
        return token

    # -- sampling ---------------------------------------------------------------------------

    def _sample(self, pool: _Pool) -> None:
        now = time.perf_counter()
        work = pool.work
        waits = _take(work.waits)
        runs = _take(work.runs)
        submitted, work.submitted = work.submitted, 0
        sites, work.sites = work.sites, {}
        executor = pool.executor
        if executor is not None:
            threads = getattr(executor, "_threads", ())
            workers = len(threads)
            max_workers = int(getattr(executor, "_max_workers", 0) or 0)
            queue = getattr(executor, "_work_queue", None)
            queued = queue.qsize() if queue is not None else 0
            busy = len(work.running)
            idle = getattr(getattr(executor, "_idle_semaphore", None), "_value", None)
            if isinstance(idle, int):
                busy = max(busy, workers - idle)  # items submitted before the wrapper went in
            busy = min(busy, workers)
        else:  # anyio: its limiter says how many threads may run, and how many do
            limiter = pool.limiter
            total = getattr(limiter, "total_tokens", 0)
            max_workers = int(total) if isinstance(total, (int, float)) and total < 1e9 else 0
            busy = len(work.running)
            borrowed = getattr(limiter, "borrowed_tokens", None)
            if isinstance(borrowed, int):
                busy = max(busy, borrowed)
            workers = busy
            queued = len(work.waiting)
        oldest = None
        if queued and work.waiting:
            try:
                oldest = now - next(iter(work.waiting.values()))
            except (RuntimeError, StopIteration):  # a worker took an item meanwhile
                oldest = None
        active = bool(submitted or waits or runs or queued or busy)
        if not active and now - pool.last_sent < QUIET_EVERY:
            return
        if not active and pool.name == ANYIO and pool.last_sent == float("-inf"):
            return  # anyio imported, its threads never used: nothing to show
        pool.last_sent = now
        counts = [0] * LAG_BUCKETS
        for w in waits:
            counts[lag_bucket(w)] += 1
        last = max((i for i, c in enumerate(counts) if c), default=-1)
        elapsed = now - pool.window_start
        pool.window_start = now
        self._emit(
            ExecutorSample(
                t=time.time(),
                loop=self._loop_id,
                window=elapsed,
                max_workers=max_workers,
                workers=workers,
                busy=busy,
                queued=queued,
                oldest=oldest,
                submitted=submitted,
                started=len(waits),
                wait_buckets=tuple(counts[: last + 1]),
                wait_max=max(waits, default=0.0),
                run=sum(runs),
                submitters=_submitters(sites),
                pool=pool.name,
                running=_running(work),
            )
        )


def _unwrap(pool: _Pool) -> None:
    executor, wrapper = pool.executor, pool.wrapper
    pool.wrapper = None
    # Something patched submit over ours: leave theirs (ours passes through once disabled).
    if executor is not None and wrapper is not None and vars(executor).get("submit") is wrapper:
        del executor.submit


def _running(work: _Work) -> tuple[Submitter, ...]:
    """What the busy threads run now: the application function of each work item running,
    counted. (Not read from the threads' stacks: walking another running thread's frames from
    the loop thread crashed CPython 3.11 in ``PyFrame_GetBack``.)"""
    found: Counter[tuple[str, int, str]] = Counter()
    for fn in list(work.doing.values()):
        code = getattr(_application_callable(fn), "__code__", None)
        if code is not None and _application(code.co_filename):
            found[(code.co_filename, code.co_firstlineno, _qualname(code))] += 1
    return tuple(
        Submitter(file=file, line=line, function=function, count=n)
        for (file, line, function), n in found.most_common(MAX_SUBMITTERS)
    )


def _take(queue: deque[float]) -> list[float]:
    out = []
    while queue:
        out.append(queue.popleft())
    return out


def _submitters(sites: dict[tuple[Any, int, str], int]) -> tuple[Submitter, ...]:
    by_site: dict[tuple[Any, int], Counter[str]] = {}
    for (code, line, work), n in list(sites.items()):
        by_site.setdefault((code, line), Counter())[work] += n
    ranked = sorted(by_site.items(), key=lambda item: -sum(item[1].values()))
    return tuple(
        Submitter(
            file=code.co_filename,
            line=line,
            function=_qualname(code),
            count=sum(works.values()),
            work=works.most_common(1)[0][0],
        )
        for (code, line), works in ranked[:MAX_SUBMITTERS]
    )
