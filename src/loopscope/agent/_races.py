"""Race evidence: race windows in the application's source, tasks caught inside them, and the
lost updates `loopscope.watch` reports.

- `RaceScanner` (one per agent, on its own thread) scans the source of the application's modules
  as they are loaded (`_racescan`) and emits `RaceWindows`.
- `RaceCollector` (one per loop, on the loop's thread, a few times a second) looks at the
  suspended tasks: a task whose await chain has a frame of a window's function, suspended at one
  of the window's awaits, is inside the window. Two or more inside the same window on the same
  object (the same ``self``, the same dict and key) make a `RaceWindow` event.
- `connect_watch_hub` takes the lost updates of `loopscope.watch` (which needs no agent) and
  emits them as `LostUpdate` events.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import os
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ._codemap import CodeMap, local_map
from ._guard import Guard
from ._hub import watch_hub
from ._periodic import LoopContext
from ._racescan import MAX_FILE_BYTES, Window, scan_source
from ._taskpass import MAX_SAMPLE, TaskView, TaskVisitor, pending
from .events import Event, Frame, LostUpdate, RaceWindow, RaceWindows

SCAN_INTERVAL = 0.5  # seconds at least between two scans for newly imported modules
SCAN_PAUSE_RATIO = 3.0  # after each file, pause three times as long as its scan took
SCAN_PAUSE_MAX = 0.1
MAX_WINDOWS_PER_EVENT = 500
PASS_INTERVAL = 0.5
PASS_BUDGET = 0.0004  # loop seconds a pass aims to spend
MIN_SAMPLE = 64
MAX_GROUPS = 20  # RaceWindow events per pass
REPORT_INTERVAL = 1.0  # seconds between RaceWindow events for one window
MAX_NAMES = 10  # task names per event
# Tasks found inside a window are looked at again in the next pass, whether sampled or not: with
# many tasks, two inside one window are then caught together even when no single sample holds
# both.
MAX_REMEMBERED = 64
_PLAIN_KEYS = (str, int, bytes, float, bool, type(None))
_MISSING = object()


# -- the scanner ----------------------------------------------------------------------------------


class RaceScanner:
    """Scans the application's modules for race windows on its own thread: those loaded at start,
    then those imported since, when a loop's collector finds that modules were imported (`poke`),
    at most every ``interval``. The thread sleeps otherwise: a thread that wakes up while the loop
    thread runs takes the GIL from it."""

    name = "race scan"

    def __init__(
        self,
        emit: Callable[[Event], None],
        guard: Guard,
        code: CodeMap | None = None,
        *,
        interval: float = SCAN_INTERVAL,
    ) -> None:
        self._emit = emit
        self._guard = guard
        self._code = code if code is not None else local_map()
        self._interval = interval
        self._seen: set[str] = set()
        self._modules: dict[str, int] = {}  # module name -> id of the module looked at
        # (file, function name) -> its windows. Replaced, never changed: readers on other
        # threads take it whole.
        self.index: dict[tuple[str, str], tuple[Window, ...]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stamp: tuple[int, int] = (0, 0)  # sys.modules' size and __main__, when poked
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loopscope-races", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Have the thread scan again if modules were imported (or ``__main__`` replaced) since
        the last poke. Cheap: called by every pass of every loop's collector."""
        modules = sys.modules
        stamp = (len(modules), id(modules.get("__main__")))
        if stamp != self._stamp:
            self._stamp = stamp
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        scan = self._guard.wrap(self.name, self.scan_new, fallback=False)
        while not self._stop.is_set() and scan() is not False:
            self._stop.wait(self._interval)
            self._wake.wait()
            self._wake.clear()

    def scan_new(self) -> bool:
        """Scan the application modules not scanned yet; emit what was found. True."""
        started = time.perf_counter()
        files: list[str] = []
        modules = self._modules
        # Copied in one call: another thread may import meanwhile, and a collection that runs
        # while a list of the items is built can let it in ("dictionary changed size").
        for name, module in sys.modules.copy().items():
            if modules.get(name) == id(module):
                continue
            modules[name] = id(module)
            file = _module_file(module)
            if file is None or file in self._seen:
                continue
            self._seen.add(file)
            if self.application(file):
                files.append(file)
        if not files:
            return True
        found: list[Window] = []
        functions = skipped = 0
        cost = time.perf_counter() - started
        for file in files:
            if self._stop.is_set():
                return True
            began = time.perf_counter()
            source = _read(file)
            if source is None:
                skipped += 1
                continue
            windows, count = scan_source(source, file)
            found += windows
            functions += count
            spent = time.perf_counter() - began
            cost += spent
            # The scan competes with the loop thread for the GIL: keep it to a quarter of the
            # time, so a large application's first scan slows its loop little.
            self._stop.wait(min(SCAN_PAUSE_MAX, spent * SCAN_PAUSE_RATIO))
        if found:
            index = dict(self.index)
            for window in found:
                key = (window.span.file, window.name)
                index[key] = (*index.get(key, ()), window)
            self.index = index
        spans = [w.span for w in found]
        for i in range(0, max(1, len(spans)), MAX_WINDOWS_PER_EVENT):
            self._emit(
                RaceWindows(
                    t=time.time(),
                    windows=tuple(spans[i : i + MAX_WINDOWS_PER_EVENT]),
                    files=len(files) if i == 0 else 0,
                    functions=functions if i == 0 else 0,
                    cost=cost if i == 0 else 0.0,
                    skipped=skipped if i == 0 else 0,
                )
            )
        return True

    def application(self, file: str) -> bool:
        """Whether ``file`` is the application's (see `CodeMap`)."""
        return self._code.is_app(file)


def _module_file(module: Any) -> str | None:
    try:
        file = vars(module).get("__file__")
    except TypeError:  # not a module: something put in sys.modules
        return None
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    return os.path.abspath(file)


def _read(file: str) -> str | None:
    try:
        if os.path.getsize(file) > MAX_FILE_BYTES:
            return None
        with open(file, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# -- the runtime detector -------------------------------------------------------------------------


class _CodeWindows:
    __slots__ = ("code", "windows")

    def __init__(self, code: types.CodeType, windows: tuple[Window, ...]) -> None:
        self.code = code  # keeps id(code) from being reused while cached
        self.windows = windows


class RaceCollector(TaskVisitor[list[RaceWindow]]):
    """Looks for tasks suspended inside the same race window, every ``interval`` seconds."""

    name = "races"
    jitter = 0.3

    def __init__(
        self, context: LoopContext, scanner: RaceScanner, interval: float = PASS_INTERVAL
    ) -> None:
        super().__init__(context, interval)
        self._scanner = scanner
        self._index: dict[tuple[str, str], tuple[Window, ...]] = {}
        self._codes: dict[int, _CodeWindows] = {}
        self._sample = MIN_SAMPLE
        self._remembered: list[weakref.ref[Any]] = []
        self._reported: dict[Any, float] = {}  # window -> when its last event was sent
        self.last_cost = 0.0
        self.last_inspected = 0
        self.last_crowded = 0  # windows with 2+ tasks inside in the last pass

    def reset(self) -> None:
        self._codes = {}
        self._remembered = []

    def limit(self) -> int:
        # Nothing to look for before the scanner found windows.
        return self._sample if self._scanner.index else 0

    def visit(self, view: TaskView) -> Sequence[Event]:
        return self.observe(view)

    def observe(self, view: TaskView) -> list[RaceWindow]:
        """The race windows two or more of the tasks of ``view`` are suspended inside."""
        scanner = self._scanner
        scanner.poke()
        index = scanner.index
        if not index:
            return []
        started = time.perf_counter()
        if index is not self._index:
            self._index, self._codes = index, {}
        loop = self._loop
        candidates, _ = view.sample(self._sample)
        remembered = [ref() for ref in self._remembered]
        current = view.current
        groups: dict[tuple[Any, ...], list[tuple[Window, Any, int]]] = {}
        looked: set[int] = set()
        for task in pending(loop, (*remembered, *candidates)):
            if task is current or id(task) in looked:
                continue
            looked.add(id(task))
            self._look(view, task, groups)
        inspected = len(looked)
        inside = {id(t): t for members in groups.values() for _, t, _ in members}
        self._remembered = [
            ref for ref in map(_weak, list(inside.values())[:MAX_REMEMBERED]) if ref is not None
        ]
        events: list[RaceWindow] = []
        ranked = sorted(groups.values(), key=len, reverse=True)
        now = time.time()
        if len(self._reported) > 10 * MAX_GROUPS:
            self._reported.clear()
        reported = self._reported
        for members in ranked:
            if len(members) < 2 or len(events) >= MAX_GROUPS:
                break
            span = members[0][0].span
            if now - reported.get(span, -REPORT_INTERVAL) < REPORT_INTERVAL:
                continue
            reported[span] = now
            shown = members[:MAX_NAMES]
            events.append(
                RaceWindow(
                    t=now,
                    loop=self._loop_id,
                    window=span,
                    tasks=tuple(_name(task) for _, task, _ in shown),
                    count=len(members),
                    lines=tuple(line for _, _, line in shown),
                    inspected=inspected,
                )
            )
        cost = time.perf_counter() - started
        if inspected:
            budget = PASS_BUDGET / (cost / inspected) - len(self._remembered)
            # Grow slowly: one cheap pass (tasks with short await chains) says little.
            budget = min(budget, 1.5 * self._sample)
            self._sample = int(max(MIN_SAMPLE, min(MAX_SAMPLE, budget)))
        self.last_cost, self.last_inspected = cost, inspected
        self.last_crowded = sum(1 for members in ranked if len(members) >= 2)
        return events

    def _look(
        self,
        view: TaskView,
        task: Any,
        groups: dict[tuple[Any, ...], list[tuple[Window, str, int]]],
    ) -> None:
        """Add ``task`` to the groups of the windows it is suspended inside."""
        codes = self._codes
        for frame, _ in view.chain(task):
            code = frame.f_code
            entry = codes.get(id(code))
            if entry is None or entry.code is not code:
                entry = codes[id(code)] = _CodeWindows(code, self._of_code(code))
            if entry.windows:
                line = frame.f_lineno
                for window in entry.windows:
                    if line in window.awaits:
                        identity = _identity(frame, window)
                        if identity is not None:
                            key = (window.span, identity)
                            groups.setdefault(key, []).append((window, task, line))

    def _of_code(self, code: types.CodeType) -> tuple[Window, ...]:
        windows = self._index.get((os.path.abspath(code.co_filename), code.co_name), ())
        return tuple(w for w in windows if w.span.first_line == code.co_firstlineno)


def _weak(task: Any) -> weakref.ref[Any] | None:
    try:
        return weakref.ref(task)
    except TypeError:
        return None


def _name(task: Any) -> str:
    try:
        return str(task.get_name())
    except Exception:
        return "?"


def _identity(frame: types.FrameType, window: Window) -> tuple[Any, ...] | None:
    """What the window's target is in this frame: (id of the object, attribute) or (id of the
    container, key); None when that cannot be told without running the program's code."""
    try:
        local = frame.f_locals
        obj = (
            local[window.root]
            if window.root in local
            else frame.f_globals.get(window.root, _MISSING)
        )
    except Exception:
        return None
    if obj is _MISSING:
        return None
    if window.key is None and not window.attrs:
        return (id(frame.f_globals), window.root)  # a global name
    steps = window.attrs if window.key is not None else window.attrs[:-1]
    for attr in steps:
        try:
            namespace = object.__getattribute__(obj, "__dict__")
        except Exception:  # no __dict__ (slots): reading it could run the program's code
            return None
        obj = namespace.get(attr, _MISSING) if isinstance(namespace, dict) else _MISSING
        if obj is _MISSING:
            return None
    if window.key is None:
        return (id(obj), window.attrs[-1])
    if window.key_is_name:
        key = local.get(window.key, _MISSING)
        if key is _MISSING:
            return None
    else:
        try:
            key = ast.literal_eval(window.key)
        except (ValueError, SyntaxError):
            return None
    if type(key) not in _PLAIN_KEYS:
        key = ("id", id(key))  # equality of other objects would run the program's code
    return (id(obj), key)


# -- lost updates from loopscope.watch ----------------------------------------------------------


def connect_watch_hub(emit: Callable[[Event], None], guard: Guard) -> Callable[[], None]:
    """Send the lost updates `loopscope.watch` reports (those buffered, and from now on) to
    ``emit``; returns the function that disconnects."""
    hub = watch_hub()

    def sink(record: dict[str, Any]) -> None:
        event = _lost_update(record)
        if event is not None:
            emit(event)

    guarded = guard.wrap("watch", sink)
    hub.sink = guarded  # type: ignore[attr-defined]
    pending: collections.deque[dict[str, Any]] = hub.pending
    while pending:
        with contextlib.suppress(IndexError):
            guarded(pending.popleft())

    def disconnect() -> None:
        if getattr(hub, "sink", None) is guarded:
            hub.sink = None  # type: ignore[attr-defined]

    return disconnect


def _frame(value: Any) -> Frame:
    file, line, function = value
    return Frame(file=str(file), line=int(line), function=str(function))


def _lost_update(record: dict[str, Any]) -> LostUpdate | None:
    """The event a report of loopscope.watch describes; None for one this agent cannot read (another
    version's)."""
    try:
        return _decode_report(record)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _decode_report(record: dict[str, Any]) -> LostUpdate | None:
    if record.get("v") != 1:
        return None
    return LostUpdate(
        t=float(record["t"]),
        target=str(record["target"]),
        task=str(record["task"]),
        read=_frame(record["read"]),
        version_read=int(record["version_read"]),
        other_task=str(record["other_task"]),
        other_write=_frame(record["other_write"]),
        write=_frame(record["write"]),
        version_now=int(record["version_now"]),
        repeats=int(record.get("repeats", 0)),
    )
