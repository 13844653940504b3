"""The events: one set of typed records for every source, and their JSON form.

The JSON form is both the wire format (agent -> client, one JSON object per line) and the
payload of a recording, so there is exactly one writer (`encode`) and one reader (`decode`).

This module is part of the agent, so it is standard library only and imports nothing from its
package: the agent may be loaded under a private module name inside a target process.

Conventions:
- ``t`` is wall-clock time (``time.time()``) in seconds; durations are seconds (float).
- ``loop`` is the agent's id for an event loop (``id(loop)``), unique within one target.
- stacks are innermost frame first.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AWAIT_KINDS",
    "EVENT_TYPES",
    "PROTOCOL_VERSION",
    "TASK_STATES",
    "AwaitFrame",
    "AwaitSite",
    "Block",
    "Census",
    "DecodeError",
    "DuplicateGroup",
    "Duplicates",
    "Event",
    "ExecutorSample",
    "ExternalSamples",
    "ExternalTasks",
    "FinishedTask",
    "Frame",
    "GcPause",
    "GcWindow",
    "Hello",
    "Lag",
    "Lifecycle",
    "LoopStarted",
    "LoopStopped",
    "LostUpdate",
    "NeverAwaited",
    "Notice",
    "RaceSpan",
    "RaceWindow",
    "RaceWindows",
    "Resource",
    "RouteLoad",
    "SourceState",
    "Stack",
    "Submitter",
    "TargetExited",
    "TaskError",
    "TaskErrors",
    "TaskGroup",
    "TaskInfo",
    "TaskList",
    "decode",
    "encode",
    "from_dict",
    "lag_bucket",
    "lag_bucket_upper",
    "to_dict",
]

PROTOCOL_VERSION = 1
AGENT_VERSION = "0.1.0"

# Lag histogram: bucket 0 holds [0, LAG_BASE); bucket i >= 1 holds
# [LAG_BASE * LAG_RATIO**(i-1), LAG_BASE * LAG_RATIO**i). Four buckets per doubling from 100 us.
LAG_BASE = 0.0001
LAG_RATIO = 2**0.25
LAG_BUCKETS = 80  # the last bucket's upper bound is about 100 s; anything above lands in it


def lag_bucket(seconds: float) -> int:
    """The histogram bucket that holds a lag of ``seconds``."""
    if seconds < LAG_BASE:
        return 0
    i = int(math.log(seconds / LAG_BASE, LAG_RATIO)) + 1
    return i if i < LAG_BUCKETS else LAG_BUCKETS - 1


def lag_bucket_upper(index: int) -> float:
    """The upper bound of bucket ``index``, in seconds."""
    return LAG_BASE * LAG_RATIO**index


# ---------------------------------------------------------------------------------------------
# Parts of events


@dataclass(frozen=True, slots=True)
class Frame:
    file: str
    line: int
    function: str  # the qualified name where the interpreter has one (3.11+), else the name


@dataclass(frozen=True, slots=True)
class Stack:
    """A distinct stack seen ``count`` times while sampling."""

    count: int
    frames: tuple[Frame, ...]  # innermost first
    # The time these samples stand for: each sample counts for the time since the one before
    # it. Samples are not evenly spaced (a thread burning CPU hands the GIL to the sampler less
    # often than one that sleeps), so this, not ``count``, says where the time went. 0: unknown.
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AwaitSite:
    """Where pending tasks wait: the innermost frame of their await chain outside asyncio."""

    file: str
    line: int
    function: str
    kind: str  # see AWAIT_KINDS
    count: int  # tasks waiting here (scaled when the census sampled)
    oldest: float  # seconds the longest-waiting of them has waited here (as seen by the census)
    # The route most of them serve, as their web framework names it ("GET /invoices/{cid}"),
    # where it is known.
    route: str | None = None


@dataclass(frozen=True, slots=True)
class RouteLoad:
    """The requests of one route (as their web framework names it, ``GET /invoices/{cid}``)
    pending on the loop: how many, and where most of them wait."""

    route: str
    tasks: int  # pending tasks serving it (scaled when the census sampled)
    site: Frame | None  # the await site most of them wait at
    kind: str  # the kind of that wait (see AWAIT_KINDS)
    oldest: float  # seconds the longest-waiting of them has waited (as seen by the census)
    # The application functions on their await chains, outermost first (a few): what they
    # wait in, the site's callers included.
    functions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    """A synchronisation object (Lock, Semaphore, Event, Condition, Queue...) with waiters."""

    id: int
    type: str  # "Lock", "Semaphore", "Queue", ...
    label: str  # a short, bounded description (e.g. "Queue maxsize=10 qsize=10")
    waiters: int
    oldest: float
    # Where its waiters wait: the await site most of the census' inspected waiters of it are at,
    # and the kind of their wait there ("lock", "queue_put", ...; see AWAIT_KINDS).
    site: Frame | None = None
    kind: str = ""


@dataclass(frozen=True, slots=True)
class TaskError:
    """Failed tasks whose exception nobody retrieved, alike in coroutine, exception and place."""

    coroutine: str  # the task's coroutine, qualified name
    error: str  # the exception's type, "ValueError", "aiohttp.ClientError"...
    message: str  # str() of the latest such exception, bounded
    count: int
    # The exception's traceback, innermost frame first, bounded (the innermost frames kept).
    stack: tuple[Frame, ...] = ()
    # Where the task was created, innermost frame first, when the loop recorded it (debug mode).
    created: tuple[Frame, ...] = ()


@dataclass(frozen=True, slots=True)
class RaceSpan:
    """A race window found in the source: in an ``async def``, a read of ``target``, then an
    ``await``, then a write of ``target`` that uses what was read (see docs/findings.md)."""

    file: str
    function: str  # qualified name, as the source spells it ("Account.withdraw")
    first_line: int  # the function's first line, decorators included (its code's co_firstlineno)
    target: str  # as written: "self.balance", "STOCK[item]", "counter"
    read_line: int
    await_lines: tuple[int, ...]  # the awaits that can run between the read and the write
    write_line: int
    # "value": the written value derives from the read; "condition": the write is under a test of
    # the read (check-then-act)
    via: str = "value"
    guarded: bool = False  # read and write both inside one ``async with <lock-like>:``


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Identical calls of one application coroutine function: the same code and the same
    arguments (a fingerprint), in flight at once or made again and again."""

    id: str  # the fingerprint's id, stable within one target
    parent: str  # id of the fingerprint of the calling coroutine, "" at the top of a task
    file: str
    line: int  # the function's first line
    function: str
    args: str  # a bounded text of the arguments ("symbol='ACME', days=7")
    in_flight: int  # distinct identical calls in flight at this pass (scaled when sampled)
    starts: int  # of which started since the previous pass (scaled when sampled)
    instances: int  # distinct calls seen since the fingerprint was first seen (not scaled)
    ended: int  # of which seen to finish
    tasks: int  # distinct tasks those calls were made in (a loop in one task counts once)
    duration: float | None  # mean duration of those seen in flight over several passes


# The primitive a pending task waits on, as the census classifies it.
AWAIT_KINDS = (
    "sleep",
    "lock",
    "semaphore",
    "event",
    "condition",
    "queue_get",
    "queue_put",
    "stream_read",
    "stream_drain",
    "executor",
    "task",
    "gather",
    "wait",
    "socket",
    "future",
    "other",
)

# Task states in a census: waiting on something, scheduled to run (ready), or running now.
TASK_STATES = ("waiting", "ready", "running")


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Event:
    kind: ClassVar[str] = ""
    t: float


@dataclass(frozen=True, slots=True)
class Hello(Event):
    """First message of every agent connection."""

    kind: ClassVar[str] = "hello"
    protocol: int
    agent_version: str
    pid: int
    python: str  # "3.11.7"
    implementation: str  # "cpython"
    executable: str
    argv: tuple[str, ...]
    cwd: str
    # Where the target's standard library and installed packages live, so the client can tell
    # application frames from library frames.
    stdlib_paths: tuple[str, ...]
    site_paths: tuple[str, ...]
    # The agent's perf_counter() at ``t``, to relate monotonic timings to wall time.
    monotonic: float


@dataclass(frozen=True, slots=True)
class LoopStarted(Event):
    kind: ClassVar[str] = "loop_started"
    loop: int
    thread_id: int
    thread_name: str
    loop_class: str  # "asyncio.unix_events._UnixSelectorEventLoop", "uvloop.Loop", ...
    features: tuple[str, ...]  # collectors running on this loop: "lag", "blocks", "census", ...
    unavailable: tuple[str, ...] = ()  # "utilisation: loop has no Python selector", ...


@dataclass(frozen=True, slots=True)
class LoopStopped(Event):
    kind: ClassVar[str] = "loop_stopped"
    loop: int


@dataclass(frozen=True, slots=True)
class Lag(Event):
    """The heartbeat's lag over one window (``t`` is the window's end)."""

    kind: ClassVar[str] = "lag"
    loop: int
    window: float  # seconds covered
    interval: float  # heartbeat interval
    count: int  # heartbeats in the window
    buckets: tuple[int, ...]  # counts per lag_bucket(), trailing zero buckets dropped
    max: float
    total: float  # sum of lags
    busy: float | None = None  # loop utilisation in the window, 0..1, where measurable
    ready: int | None = None  # ready-queue length at the window's end, where measurable


@dataclass(frozen=True, slots=True)
class Block(Event):
    """One stall of the loop thread longer than the block threshold (``t`` is its start)."""

    kind: ClassVar[str] = "block"
    loop: int
    duration: float
    task: str | None  # name of the task that was running, if known
    cpu: float | None  # CPU seconds the loop thread used during the block, if measurable
    samples: int  # stack samples taken (0: none could be taken, e.g. a C call holding the GIL)
    stacks: tuple[Stack, ...]  # distinct sampled stacks, most frequent first
    precise: bool = True  # False when the duration is estimated from the heartbeat only
    # Seconds the loop thread spent runnable but not running (waiting in the run queue for a
    # core) during the block, where measurable (Linux). The thread could use the CPU only in
    # ``duration - runq``.
    runq: float | None = None
    # Seconds of garbage collection inside the block (collections of at least 1 ms, from the
    # agent's gc collector; 0 when none, or when the gc collector is off).
    gc: float = 0.0
    # Seconds of the block in which the agent's watchdog, ready to sample and not waiting for a
    # core, waited for the GIL (Linux): C code held it without releasing it.
    held: float = 0.0
    # The route of the request being served, as its web framework names it ("GET
    # /invoices/{cid}"), where the stack shows one.
    route: str | None = None


@dataclass(frozen=True, slots=True)
class Census(Event):
    """What the loop's tasks are doing at ``t``."""

    kind: ClassVar[str] = "census"
    loop: int
    total: int  # live tasks on the loop
    inspected: int  # tasks whose await chain was walked (counts below are scaled to total)
    # What a census from outside the loop (aiomonitor's task list) may leave empty:
    by_state: dict[str, int] = field(default_factory=dict)  # TASK_STATES -> count
    by_kind: dict[str, int] = field(default_factory=dict)  # AWAIT_KINDS -> waiting tasks
    sites: tuple[AwaitSite, ...] = ()  # most populated first, bounded
    resources: tuple[Resource, ...] = ()  # most waiters first, bounded
    cost: float = 0.0  # loop-thread seconds this census took
    # Pending requests by route, where their web framework names it; most tasks first, bounded.
    routes: tuple[RouteLoad, ...] = ()


@dataclass(frozen=True, slots=True)
class Lifecycle(Event):
    """Tasks created and finished over one window (``t`` is the window's end)."""

    kind: ClassVar[str] = "lifecycle"
    loop: int
    window: float
    created: int
    finished: int
    failed: int  # finished with an exception
    cancelled: int
    created_by: dict[str, int] = field(default_factory=dict)  # coroutine qualname -> created
    # Share of the window in which tasks were counted. Below 1 the agent sampled (at high task
    # creation rates) and every count above is already scaled up to the whole window.
    sampled: float = 1.0


@dataclass(frozen=True, slots=True)
class TaskErrors(Event):
    """Task exceptions never retrieved over one window (asyncio reports them when a failed task
    nobody awaited is freed)."""

    kind: ClassVar[str] = "task_errors"
    loop: int
    errors: tuple[TaskError, ...]  # most frequent first, bounded
    dropped: int = 0  # reports not included (beyond the bound)


@dataclass(frozen=True, slots=True)
class NeverAwaited(Event):
    """A coroutine object was freed without ever being awaited (CPython's "coroutine ... was
    never awaited" RuntimeWarning)."""

    kind: ClassVar[str] = "never_awaited"
    coroutine: str  # qualified name, as the warning gives it
    # Where the coroutine object was dropped (the warning's location): for a call whose result is
    # thrown away, the call itself. None when the warning carried no usable location.
    frame: Frame | None
    # Such warnings since the previous event that were not reported (rate limit).
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class AwaitFrame:
    """One level of a task's await chain: a coroutine's frame and its arguments."""

    file: str
    line: int
    function: str
    args: tuple[str, ...] = ()  # "name=repr", each repr bounded; only plain values are shown


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One live task, as a `TaskList` shows it."""

    id: int  # id() of the task in the target
    name: str
    coro: str  # qualified name of its coroutine
    state: str  # see TASK_STATES
    kind: str  # what it waits on (AWAIT_KINDS), "" when not waiting
    waited: float  # seconds it has waited where it waits now, as seen by the agent (0: new)
    file: str  # the await site (the innermost frame of its chain outside asyncio)
    line: int
    function: str
    # The await chain, innermost (the primitive) first; only for the longest waits.
    chain: tuple[AwaitFrame, ...] = ()
    created: Frame | None = None  # where the task was created, when the loop records it
    resource: int = 0  # id of the Lock, Queue... it waits on (as `Resource.id`), 0: none


@dataclass(frozen=True, slots=True)
class FinishedTask:
    """A task that ended after it was seen in a `TaskList`."""

    id: int
    name: str
    coro: str
    result: str  # "ok" | "exception" | "cancelled"
    error: str  # "ValueError: ..." (bounded) for an exception, else ""
    lived: float  # seconds from when the agent first listed it to its end (a lower bound)
    ended: float  # wall time it ended


@dataclass(frozen=True, slots=True)
class TaskList(Event):
    """A bounded list of a loop's live tasks, the longest waits first, and the listed tasks that
    ended since the last list."""

    kind: ClassVar[str] = "task_list"
    loop: int
    total: int  # live tasks on the loop (estimated when ``sampled``)
    sampled: bool  # the tasks were chosen from a sample of the loop's tasks
    tasks: tuple[TaskInfo, ...]
    finished: tuple[FinishedTask, ...]  # newest first
    cost: float  # loop-thread seconds the list took


@dataclass(frozen=True, slots=True)
class RaceWindows(Event):
    """Race windows found by scanning application modules' source; sent for each batch of
    newly scanned files."""

    kind: ClassVar[str] = "race_windows"
    windows: tuple[RaceSpan, ...]
    files: int  # files scanned in this batch
    functions: int  # async functions analysed in them
    cost: float  # seconds the scan worked (on the agent's own thread, pauses not counted)
    skipped: int = 0  # files not scanned: too big, unreadable, or not Python source


@dataclass(frozen=True, slots=True)
class RaceWindow(Event):
    """Two or more tasks seen suspended inside the same race window, on the same object."""

    kind: ClassVar[str] = "race_window"
    loop: int
    window: RaceSpan
    tasks: tuple[str, ...]  # names of the tasks inside (bounded)
    count: int  # tasks inside the window at once (of those inspected)
    lines: tuple[int, ...]  # the await lines they are suspended at, one per task listed
    inspected: int  # tasks inspected in the pass (fewer than the loop's when it sampled)


@dataclass(frozen=True, slots=True)
class LostUpdate(Event):
    """A watched value (`loopscope.watch`) written by a task from a stale read: another task
    wrote it after this task read it."""

    kind: ClassVar[str] = "lost_update"
    target: str  # "Account.balance", "stock['apples']"
    task: str  # the task whose write loses the other's update
    read: Frame  # where it read the value
    version_read: int
    other_task: str  # the task that wrote in between
    other_write: Frame
    write: Frame  # where the stale write happened
    version_now: int  # the value's version the stale write replaced
    repeats: int = 0  # more lost updates at the same place, folded into this one


@dataclass(frozen=True, slots=True)
class Duplicates(Event):
    """Fingerprints of the application coroutines in flight on a loop at ``t``: the groups of
    identical calls, and those that recur."""

    kind: ClassVar[str] = "duplicates"
    loop: int
    window: float  # seconds since the previous pass
    total: int  # live tasks on the loop
    inspected: int  # tasks whose await chain was walked (counts are scaled to total)
    groups: tuple[DuplicateGroup, ...]  # most wasteful first, bounded
    tracked: int  # fingerprints remembered
    cost: float  # loop-thread seconds this pass took


@dataclass(frozen=True, slots=True)
class ExternalSamples(Event):
    """One thread's stacks sampled from outside the process (py-spy, or the target's own
    interpreter) over one window; ``t`` is the window's end. Made by the client, not by the
    agent.

    Samples are in time order: the i-th was taken ``offsets_ms[i]`` ms after the window's start
    (``t - window``), showed ``stacks[which[i]]`` (``-1``: no application callback running) and
    was in state ``states[i]``: ``"i"`` idle (the loop waits for events), ``"l"`` the loop's own
    work, ``"c"`` a callback on CPU holding the GIL, ``"w"`` a callback off CPU (sleep, I/O),
    ``"b"`` a callback, on CPU or not unknown (``py-spy record`` does not say).
    """

    kind: ClassVar[str] = "external_samples"
    source: str  # "py-spy", "remote_stacks" (the target's own interpreter)
    # the sampled thread's Python ident (threading.get_ident(); py-spy thread_id); 0 for the
    # main thread when the sampler cannot read it (remote_stacks)
    thread_id: int
    native_id: int  # its OS thread id (threading.get_native_id(); py-spy os_thread_id)
    window: float
    stacks: tuple[Stack, ...]  # distinct callback stacks (above the loop's dispatch), with counts
    offsets_ms: tuple[int, ...]
    which: tuple[int, ...]
    states: str
    native: bool = False  # the stacks include native (C) frames


@dataclass(frozen=True, slots=True)
class TaskGroup:
    """Tasks running one coroutine function, as a task monitor lists them."""

    coroutine: str
    count: int
    oldest: float  # seconds the oldest of them has run; 0 when unknown
    created_at: str = ""  # "file.py:12" where the monitor recorded it, else ""
    names: tuple[str, ...] = ()  # a few of their task names


@dataclass(frozen=True, slots=True)
class ExternalTasks(Event):
    """The task list of a task monitor inside the target (aiomonitor's HTTP API) at ``t``. Made
    by the client, not by the agent."""

    kind: ClassVar[str] = "external_tasks"
    source: str  # "aiomonitor"
    endpoint: str  # "127.0.0.1:20102"
    total: int  # live tasks of the monitored loop
    live: tuple[TaskGroup, ...]  # by coroutine, most tasks first, bounded
    terminated_total: int  # terminated tasks the monitor remembers (needs its task factory)
    terminated: tuple[TaskGroup, ...]  # the most recently terminated, by coroutine, bounded


@dataclass(frozen=True, slots=True)
class GcPause:
    """One garbage collection long enough to be listed."""

    t: float  # start (wall clock)
    duration: float
    generation: int
    collected: int = 0
    # The stack that triggered it (an allocation there), innermost first, a few frames: where
    # the program allocates, statistically.
    stack: tuple[Frame, ...] = ()
    # CPU seconds the collecting thread used, for full (generation 2) collections: on a busy
    # machine a collection's wall time includes time the thread waited for a core.
    cpu: float | None = None


@dataclass(frozen=True, slots=True)
class GcWindow(Event):
    """Garbage collections over one window (``t`` is its end); sent only for windows with at
    least one collection. Process-wide: a collection runs on whichever thread triggered it."""

    kind: ClassVar[str] = "gc"
    window: float  # seconds covered
    collections: tuple[int, ...]  # per generation (0, 1, 2)
    pause: float  # seconds spent collecting, in total
    max: float  # the longest collection
    collected: int  # unreachable objects found
    uncollectable: int
    pauses: tuple[GcPause, ...]  # the longest collections (at least 1 ms), longest first, bounded
    threshold: tuple[int, ...] = ()  # gc.get_threshold() at the window's end
    frozen: int = 0  # gc.get_freeze_count(): objects moved out of the collector's reach


@dataclass(frozen=True, slots=True)
class Submitter:
    """Application code that submitted work to an executor, and the work it submitted most."""

    file: str
    line: int
    function: str
    count: int  # work items submitted from here in the window
    work: str = ""  # qualified name of the function most submitted from here


@dataclass(frozen=True, slots=True)
class ExecutorSample(Event):
    """A thread pool the loop waits on (its default executor, another ThreadPoolExecutor,
    anyio's worker threads) at ``t``, and its work over the window before."""

    kind: ClassVar[str] = "executor"
    loop: int
    window: float
    max_workers: int
    workers: int  # worker threads alive
    busy: int  # workers running a work item
    queued: int  # work items waiting for a worker
    oldest: float | None  # seconds the oldest waiting item has waited, where known
    submitted: int  # work items submitted in the window (seen through the agent's wrapper)
    started: int  # work items a worker took up in the window
    wait_buckets: tuple[int, ...]  # their queue waits, per lag_bucket(), trailing zeros dropped
    wait_max: float
    run: float  # seconds workers spent running work items that ended in the window
    submitters: tuple[Submitter, ...] = ()  # most items first, bounded
    # Which pool: "default executor", "anyio worker threads", "ThreadPoolExecutor ..."
    pool: str = "default executor"
    running: tuple[Submitter, ...] = ()  # what busy threads run now: application frames, counted


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """Something the agent or a source wants the user to know (a hook disabled, ...)."""

    kind: ClassVar[str] = "notice"
    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True, slots=True)
class SourceState(Event):
    """A source of events changed state. Made by the client's sources, not by the agent."""

    kind: ClassVar[str] = "source_state"
    source: str  # "agent", "py-spy", "aiomonitor", "replay"
    state: str  # "live" | "unavailable" | "lost" | "ended"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TargetExited(Event):
    """The observed program ended. Made by the client, not by the agent."""

    kind: ClassVar[str] = "target_exited"
    exit_code: int | None  # None when unknown (attached process; only its disappearance is seen)
    # "exited", "killed by SIGKILL", "stopped by loopscope" (+ " with SIGINT" when a signal
    # ended it), each possibly followed by " before its agent started"; "" when unknown.
    reason: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        Hello,
        LoopStarted,
        LoopStopped,
        Lag,
        Block,
        Census,
        Lifecycle,
        TaskErrors,
        NeverAwaited,
        TaskList,
        RaceWindows,
        RaceWindow,
        LostUpdate,
        Duplicates,
        ExternalSamples,
        ExternalTasks,
        GcWindow,
        ExecutorSample,
        Notice,
        SourceState,
        TargetExited,
    )
}


# ---------------------------------------------------------------------------------------------
# JSON


class DecodeError(ValueError):
    """A message or payload that is not a valid event."""


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict, with its ``kind``."""
    out: dict[str, Any] = {"kind": event.kind}
    for f in dataclasses.fields(event):
        out[f.name] = _plain(getattr(event, f.name))
    return out


def encode(event: Event) -> str:
    """One line of JSON, without the newline."""
    return json.dumps(to_dict(event), separators=(",", ":"), allow_nan=False)


def from_dict(data: Any) -> Event:
    """The event a dict describes; raises DecodeError for anything else."""
    if not isinstance(data, dict):
        raise DecodeError("an event must be a JSON object")
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise DecodeError(f"unknown event kind {kind!r}")
    event: Event = _build(cls, data)
    return event


def decode(line: str | bytes) -> Event:
    """The event one line of JSON describes; raises DecodeError for anything else."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise DecodeError(f"not JSON: {e}") from None
    return from_dict(data)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls, vars(sys.modules[__name__]))
        _HINTS[cls] = hints
    return hints


def _build(cls: type, data: dict[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DecodeError(f"{cls.__name__}: missing field {f.name!r}")
    return cls(**kwargs)


_UnionTypes: tuple[Any, ...] = (typing.Union, types.UnionType)


def _convert(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in _UnionTypes:
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise DecodeError(f"{name}: null not allowed")
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, name)
    if origin is tuple:
        if not isinstance(value, list):
            raise DecodeError(f"{name}: expected a list")
        (inner, _) = typing.get_args(hint)
        return tuple(_convert(inner, v, name) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise DecodeError(f"{name}: expected an object")
        _, inner = typing.get_args(hint)
        return {str(k): _convert(inner, v, name) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise DecodeError(f"{name}: expected an object")
        return _build(hint, value)
    if hint is float:
        if value is None:
            return math.inf  # non-finite floats travel as null
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DecodeError(f"{name}: expected a number")
        try:
            return float(value)
        except OverflowError:
            raise DecodeError(f"{name}: number out of range") from None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError(f"{name}: expected an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise DecodeError(f"{name}: expected true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise DecodeError(f"{name}: expected a string")
        return value
    raise DecodeError(f"{name}: unsupported type {hint!r}")  # pragma: no cover
