"""The agent: finds the loops to observe, runs their collectors, the watchdog and the server."""

from __future__ import annotations

import asyncio
import asyncio.events
import atexit
import contextlib
import dataclasses
import os
import runpy
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ._blocks import BusyTracker, SelectorProbe, Watchdog
from ._census import CensusCollector
from ._codemap import local_map
from ._duplicates import DuplicatesCollector
from ._executor import ExecutorCollector
from ._gc import GcCollector, GcMonitor
from ._guard import Guard
from ._lag import LagCollector
from ._lifecycle import LifecycleCollector
from ._pace import Pacer
from ._paths import default_socket_path
from ._periodic import LoopContext
from ._races import RaceCollector, RaceScanner, connect_watch_hub
from ._server import Outbox, Server
from ._tasklist import TaskListCollector
from ._taskpass import TaskPass, TaskVisitor
from ._unawaited import UnawaitedHook
from .events import AGENT_VERSION, PROTOCOL_VERSION, Event, Hello, LoopStarted, LoopStopped

SOCKET_ENV = "LOOPSCOPE_SOCKET"
COLLECTORS_ENV = "LOOPSCOPE_COLLECTORS"
# The collectors that can be turned off, all on by default. ``blocks`` is the watchdog thread
# and the selector wrapper; ``lag`` the heartbeat (utilisation comes from the selector wrapper,
# kept while either of the two is on). ``gc`` is one process-wide gc callback, flushed by a timer
# of each loop; ``executor`` samples each loop's default executor.
COLLECTORS = (
    "lag",
    "blocks",
    "census",
    "lifecycle",
    "tasks",
    "races",
    "duplicates",
    "gc",
    "executor",
)
_AGENT_DIR = os.path.dirname(os.path.abspath(__file__))
_MARK = "__loopscope_agent__"  # attribute of our _set_running_loop that names its agent


class _Collector(Protocol):
    """What the agent needs of a collector (census and lifecycle follow it too)."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Agent:
    """One agent per process. Made by `install`; `uninstall` undoes everything it did."""

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        block_threshold: float = 0.02,
        lag_interval: float = 0.01,
        lag_window: float = 0.25,
        collectors: Iterable[str] | str | None = None,
    ) -> None:
        self.collectors = parse_collectors(collectors)
        self.block_threshold = block_threshold
        self.lag_interval = lag_interval
        self.lag_window = lag_window
        self._outbox = Outbox()
        self.emit: Callable[[Event], None] = self._outbox.emit
        self.guard = Guard(self.emit)
        self.socket_path = socket_path or default_socket_path(os.getpid())
        self._server = Server(
            self.socket_path,
            self._outbox,
            self.guard,
            self._hello,
            self.uninstall,
            private_dir=socket_path is None,
        )
        self._watchdog = Watchdog(
            self.emit,
            self.guard,
            threshold=block_threshold,
            skip_dirs=(_AGENT_DIR,),
            skip_files=(runpy.__file__,),
        )
        # The watchdog wakes the server for the summaries while it hands the loops' GIL over.
        self._watchdog.relay = self.guard.wrap("relay", self._outbox.relay, fallback=False)
        # Process-wide, so the agent's rather than a loop's; on and off with the lifecycle.
        self._unawaited = UnawaitedHook(self.emit, self.guard)
        self._scanner = RaceScanner(self.emit, self.guard, local_map())
        self._unwatch: Callable[[], None] | None = None
        self.gc_monitor = GcMonitor(self.emit, self.guard)
        self._lock = threading.Lock()
        self._observers: dict[int, _LoopObserver] = {}
        self._hook: _RunningLoopHook | None = None
        self.active = False
        self._pid = os.getpid()
        self._forked = self.guard.wrap("fork", self._after_fork_in_child)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on the socket, start the watchdog and watch for loops starting (pending mode)."""
        self._server.start()
        self.active = True
        if "blocks" in self.collectors:
            if "gc" in self.collectors:
                self._watchdog.gc_time = self.gc_monitor.collected_between
            self._watchdog.start()
        if "lifecycle" in self.collectors:
            self._unawaited.install()
        if "races" in self.collectors:
            self._scanner.start()
            self._unwatch = connect_watch_hub(self.emit, self.guard)
        self._hook = _RunningLoopHook(self)
        self._hook.install()
        atexit.register(self.uninstall)

    def uninstall(self) -> None:
        """Stop observing, restore everything patched, stop the threads, remove the socket.

        Idempotent; callable from any thread, including the server's (a client's detach)."""
        if self._deactivate(report=True):
            self._watchdog.stop()
            self._scanner.stop()
            self._server.stop()

    def _after_fork_in_child(self) -> None:
        """In the child of a fork (once; nothing in the parent): the child has none of our
        threads, so put the program back as it was and leave the parent's socket alone.

        Our at-fork handler may come too late: asyncio's own, registered when asyncio was
        imported (before us), resets the running loop through our `_RunningLoopHook`. So the
        hooks call this first, and nothing of the parent's observing runs in the child: that
        would take locks our threads may have held at the fork, which no thread releases in
        the child (a forked pool worker hung so, in ``Watchdog.remove``)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        # Another thread may have held these at the fork.
        self._lock = threading.Lock()
        self.gc_monitor.after_fork()
        self.guard.after_fork()
        self._outbox.after_fork()
        self._deactivate(report=False)

    def observing(self) -> bool:
        """Whether the agent observes this process's loops (in the child of a fork, never)."""
        if self._pid != os.getpid():
            self._forked()
        return self.active

    def _deactivate(self, *, report: bool) -> bool:
        """Stop observing every loop and restore what was patched; False if already done."""
        with self._lock:
            if not self.active:
                return False
            self.active = False
            observers = list(self._observers.values())
            self._observers.clear()
        atexit.unregister(self.uninstall)
        self._unawaited.remove()
        if self._unwatch is not None:
            self._unwatch()
        if self._hook is not None:
            self._hook.remove()
        for observer in observers:
            observer.stop(self.guard, report=report)
        return True

    # -- loops ----------------------------------------------------------------------------------

    def observe(self, loop: asyncio.AbstractEventLoop) -> None:
        """Observe ``loop`` now if it runs in this thread, soon if it runs in another, or when it
        starts."""
        if _running_loop() is loop:
            self._loop_started(loop)
        elif loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(self.guard.wrap("loops", self._loop_started), loop)
        # else: the _set_running_loop hook sees it start

    def observe_running_loops(self) -> None:
        """Observe the loops already running in other threads (found from their stacks)."""
        for loop in self.running_loops():
            self.observe(loop)

    def running_loops(self) -> list[asyncio.AbstractEventLoop]:
        """The loops running in the threads other than this one, found from their stacks."""
        me = threading.get_ident()
        found: dict[int, asyncio.AbstractEventLoop] = {}
        for thread_id, frame in sys._current_frames().items():
            if thread_id == me:
                continue
            loop = _loop_in_stack(frame)
            if loop is not None:
                found[id(loop)] = loop
        return list(found.values())

    def _loop_started(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop's thread, as the loop starts running (or when install() finds it)."""
        with self._lock:
            if not self.active or id(loop) in self._observers:
                return
            observer = _LoopObserver(self, loop)
            self._observers[id(loop)] = observer
            observer.start()

    def _loop_stopping(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop's thread, as the loop stops running."""
        with self._lock:
            observer = self._observers.pop(id(loop), None)
        if observer is not None:
            observer.stop(self.guard)

    def _hello(self) -> Hello:
        code = local_map()
        return Hello(
            t=time.time(),
            protocol=PROTOCOL_VERSION,
            agent_version=AGENT_VERSION,
            pid=os.getpid(),
            python=sys.version.split()[0],
            implementation=sys.implementation.name,
            executable=sys.executable,
            argv=tuple(sys.argv),
            cwd=_cwd(),
            stdlib_paths=code.stdlib_paths,
            site_paths=code.site_paths,
            monotonic=time.perf_counter(),
        )


class _LoopObserver:
    """The collectors of one loop. Made and started on the loop's thread."""

    def __init__(self, agent: Agent, loop: asyncio.AbstractEventLoop) -> None:
        self.agent = agent
        self.loop = loop
        self.loop_id = id(loop)
        self.probe: SelectorProbe | None = None
        self.collectors: list[_Collector] = []

    def start(self) -> None:
        agent, loop, guard = self.agent, self.loop, self.agent.guard
        enabled = agent.collectors
        features: list[str] = [name for name in ("lag", "blocks") if name in enabled]
        unavailable = []
        why_not = SelectorProbe.usable(loop)
        if why_not is None and ("lag" in enabled or "blocks" in enabled):
            self.probe = SelectorProbe(
                loop._selector,  # type: ignore[attr-defined]
                agent.block_threshold,
                guard,
            )
            features.append("utilisation")
        elif why_not is not None:
            unavailable.append(f"utilisation: {why_not}")
            if "blocks" in enabled:
                unavailable.append(
                    f"exact block durations: {why_not}; estimated from the heartbeat"
                )
        executor_hidden = not hasattr(loop, "_default_executor")  # uvloop keeps it in C
        if "executor" in enabled and executor_hidden:
            # anyio's worker threads are still watched.
            unavailable.append("executor: loop does not expose its default executor")
        probe = self.probe
        idle_clock = (lambda: probe.idle) if probe is not None else None
        blocks = "blocks" in enabled
        # Without a selector to wrap, the watchdog tells a stall from the heartbeat: it beats
        # for blocks even when the lag collector is off (its windows then go nowhere).
        context = LoopContext(loop, self.loop_id, agent.emit, guard)
        lag: LagCollector | None = None
        if "lag" in enabled or (blocks and probe is None):
            lag = LagCollector(
                context if "lag" in enabled else dataclasses.replace(context, emit=_discard),
                interval=agent.lag_interval,
                window=agent.lag_window,
                idle_clock=idle_clock,
                stall_threshold=None if probe is not None else agent.block_threshold,
                longest_busy=probe.take_longest if probe is not None else None,
            )
            self.collectors.append(lag)
        makers: dict[str, Callable[[], _Collector]] = {
            "census": lambda: CensusCollector(context),
            "lifecycle": lambda: LifecycleCollector(context, idle_clock=idle_clock),
            "tasks": lambda: TaskListCollector(context),
            "races": lambda: RaceCollector(context, agent._scanner),
            "duplicates": lambda: DuplicatesCollector(context),
            "gc": lambda: GcCollector(context, agent.gc_monitor),
            "executor": lambda: ExecutorCollector(context),
        }
        visitors: list[TaskVisitor[Any]] = []  # the collectors that look at tasks: one pass for all
        for name, make in makers.items():
            if name not in enabled:
                continue
            try:
                collector = make()
            except Exception as e:
                guard.failed(name, e)
                continue
            if isinstance(collector, TaskVisitor):
                visitors.append(collector)
            else:
                if probe is not None and hasattr(collector, "pace"):
                    collector.pace = Pacer(probe)
                self.collectors.append(collector)
            features.append(collector.name)
        if visitors:
            tasks = TaskPass(visitors)
            if probe is not None:
                tasks.pace = Pacer(probe)
            self.collectors.append(tasks)
        thread = threading.current_thread()
        agent.emit(
            LoopStarted(
                t=time.time(),
                loop=self.loop_id,
                thread_id=thread.ident or 0,
                thread_name=thread.name,
                loop_class=f"{type(loop).__module__}.{type(loop).__qualname__}",
                features=tuple(features),
                unavailable=tuple(unavailable),
            )
        )
        if probe is not None:
            probe.install()
        for collector in self.collectors:
            guard.wrap(collector.name, collector.start)()
        if blocks:
            tracker: BusyTracker | None = probe if probe is not None else lag
            assert tracker is not None
            agent._watchdog.add(
                loop,
                self.loop_id,
                threading.get_ident(),
                tracker,
                precise=probe is not None,
                native_id=threading.get_native_id(),
            )

    def stop(self, guard: Guard, *, report: bool = True) -> None:
        if self.probe is not None:
            self.probe.remove()
        if report:
            self.agent._watchdog.remove(self.loop_id)
        for collector in self.collectors:
            guard.wrap(f"{collector.name} stop", collector.stop)()
        if report:
            self.agent.emit(LoopStopped(t=time.time(), loop=self.loop_id))


class _RunningLoopHook:
    """Wraps ``asyncio.events._set_running_loop``: every loop that starts or stops running, in
    any thread, goes through it (``run_forever`` looks it up on the module at each call)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._original = asyncio.events._set_running_loop
        self._get_running = asyncio.events._get_running_loop
        started = agent.guard.wrap("loops", agent._loop_started)
        stopping = agent.guard.wrap("loops", agent._loop_stopping)
        original, get_running = self._original, self._get_running

        def _set_running_loop(loop: asyncio.AbstractEventLoop | None) -> None:
            if loop is None:
                if agent.observing():
                    previous = get_running()
                    if previous is not None:
                        stopping(previous)
                original(None)
            else:
                original(loop)
                if agent.observing():
                    started(loop)

        setattr(_set_running_loop, _MARK, agent)
        self._wrapper = _set_running_loop
        # uvloop binds asyncio._set_running_loop when it is imported: patch that name too.
        self._modules = [asyncio.events]
        if getattr(asyncio, "_set_running_loop", None) is self._original:
            self._modules.append(asyncio)
        # Imported before us, uvloop holds the original in C and never calls ours: its loops are
        # seen through the ``run_forever`` of its Python class (which its run_until_complete
        # calls by name), as a uvicorn worker's loop when the agent arrives during the worker's
        # imports.
        self._uvloop: Any = _uvloop_class()
        self._run_forever: Any = None
        if self._uvloop is not None:
            self._run_forever = self._uvloop.__dict__.get("run_forever")
            self._run_wrapper = _uvloop_run_forever(agent, self._uvloop.run_forever)

    def install(self) -> None:
        for module in self._modules:
            module._set_running_loop = self._wrapper  # type: ignore[attr-defined]
        if self._uvloop is not None:
            self._uvloop.run_forever = self._run_wrapper

    def remove(self) -> None:
        # If something patched it on top of ours, leave theirs in place: ours, reached through
        # theirs, passes straight through once the agent is inactive.
        for module in self._modules:
            if getattr(module, "_set_running_loop", None) is self._wrapper:
                module._set_running_loop = self._original  # type: ignore[attr-defined]
        uvloop = self._uvloop
        if uvloop is not None and uvloop.__dict__.get("run_forever") is self._run_wrapper:
            if self._run_forever is None:
                del uvloop.run_forever
            else:
                uvloop.run_forever = self._run_forever


def _uvloop_class() -> Any:
    """uvloop's Python loop class if uvloop is imported already, else None."""
    module = sys.modules.get("uvloop")
    cls = getattr(module, "Loop", None)
    return cls if isinstance(cls, type) and callable(getattr(cls, "run_forever", None)) else None


def _uvloop_run_forever(agent: Agent, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    started = agent.guard.wrap("loops", agent._loop_started)
    stopping = agent.guard.wrap("loops", agent._loop_stopping)

    def observe_soon(loop: Any) -> None:
        loop.call_soon(started, loop)

    soon = agent.guard.wrap("loops", observe_soon)

    def run_forever(self: Any) -> Any:
        if agent.observing():
            soon(self)  # runs once the loop runs, on its thread
        try:
            return original(self)
        finally:
            if agent.observing():
                stopping(self)

    setattr(run_forever, _MARK, agent)
    return run_forever


# -- module-level API -----------------------------------------------------------------------------

_install_lock = threading.Lock()


def current() -> Agent | None:
    """The agent installed in this process, whichever copy of the package installed it."""
    agent = getattr(asyncio.events._set_running_loop, _MARK, None)
    return agent if agent is not None and agent.active else None


def install(
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    socket_path: str | None = None,
    collectors: Iterable[str] | str | None = None,
) -> Agent:
    """Start the agent (once per process) and observe ``loop``, or the running loop.

    Without a loop and outside a running one, the agent waits for loops to start. The socket is
    ``socket_path``, else ``$LOOPSCOPE_SOCKET``, else the default path for this pid. The
    collectors are ``collectors`` (see `parse_collectors`), else ``$LOOPSCOPE_COLLECTORS``, else
    all of them. A second call returns the running agent unchanged.
    """
    with _install_lock:
        agent = current()
        if agent is None:
            path = socket_path or os.environ.pop(SOCKET_ENV, None) or None
            if collectors is None:
                collectors = os.environ.get(COLLECTORS_ENV)
            agent = Agent(path, collectors=collectors)
            agent.start()
            agent.observe_running_loops()
        target = loop if loop is not None else _running_loop()
        if target is not None:
            agent.observe(target)
        return agent


def uninstall() -> None:
    """Undo `install`: restore everything, stop the threads, remove the socket."""
    agent = current()
    if agent is not None:
        agent.uninstall()


def _after_fork_in_child() -> None:
    agent = current()
    if agent is not None:
        agent._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- helpers --------------------------------------------------------------------------------------


def parse_collectors(spec: Iterable[str] | str | None) -> frozenset[str]:
    """The collectors to run, from names or a comma-separated string.

    ``None`` (or ``"all"``) is every collector; ``"none"`` or an empty string none; names turn on
    only those (``"lag,blocks"``); names each prefixed with ``-`` turn those off and keep the rest
    (``"-lifecycle,-census"``). Raises ValueError for an unknown name or a mix of the two forms.
    """
    if spec is None:
        return frozenset(COLLECTORS)
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [item.strip() for item in items if item.strip()]
    if names == ["all"]:
        return frozenset(COLLECTORS)
    if names == ["none"] or not names:
        return frozenset()
    off = [n.startswith("-") for n in names]
    if any(off) and not all(off):
        raise ValueError(
            f"collectors {spec!r}: either name the ones to run or the ones to turn off"
        )
    bare = [n[1:] if n.startswith("-") else n for n in names]
    unknown = [n for n in bare if n not in COLLECTORS]
    if unknown:
        raise ValueError(
            f"unknown collector {unknown[0]!r}; the collectors are {', '.join(COLLECTORS)}"
        )
    return frozenset(COLLECTORS) - frozenset(bare) if all(off) else frozenset(bare)


def _discard(event: Event) -> None:
    """An emit that drops its event."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    return asyncio.events._get_running_loop()


def _loop_in_stack(frame: Any) -> asyncio.AbstractEventLoop | None:
    """The running loop whose ``run_forever`` is on this stack, if any. A loop written in C
    (uvloop) has no such frame: then the running loop that a frame of the stack holds, the
    innermost first (``asyncio.Runner.run``'s ``self._loop``, or a local variable)."""
    frames = []
    while frame is not None:
        if frame.f_code.co_name == "run_forever":
            candidate = frame.f_locals.get("self")
            if _is_running_loop(candidate):
                return candidate  # type: ignore[no-any-return]
        frames.append(frame)
        frame = frame.f_back
    runner = getattr(asyncio, "Runner", None)  # 3.11+
    for frame in frames:
        for value in list(frame.f_locals.values()):
            if runner is not None and type(value) is runner:
                value = value._loop
            if _is_running_loop(value):
                return value  # type: ignore[no-any-return]
    return None


def _is_running_loop(value: object) -> bool:
    try:
        return isinstance(value, asyncio.AbstractEventLoop) and value.is_running()
    except Exception:
        return False


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""
