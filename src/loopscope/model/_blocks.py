"""Blocks: which application code stalled the loop, why, and how much in total.

Each block is attributed to a location (the innermost application frame of its sampled
stacks) and a cause; blocks are then aggregated into hot frames by function.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loopscope.codemap import APP, CodeMap
from loopscope.events import Block, Frame, Stack, lag_bucket
from loopscope.model.snapshot import BlockRecord, BlockView, HotFrame

# The share of a block's runnable time (wall time less the time the thread waited for a core)
# spent on CPU from which it is CPU work (so at 70% and above, the clear case, too), and up to
# which the thread was waiting, for what its code shows (sleep, I/O).
CPU_LEANING = 0.5
OFF_CPU = 0.3
# A block is a garbage collection's (cause "gc") when collections took this share of it.
GC_SHARE = 0.5
# A block is the machine's (cause "machine") when, less the time its thread waited for a core,
# it is shorter than this (the agent's default block threshold): the program's code did not
# stall the loop, a busy machine (or a container's CPU limit) did.
MACHINE_OWN_S = 0.02
# Another application function than the block's location that took at least this much of the
# block (the agent's default block threshold too) blocked the loop itself: under load, blocks
# run into each other (a 30 ms hash right after a 100 ms sleep is one 130 ms stall), and each
# function's part is counted in its own hot frame.
PART_S = 0.02

# A block whose loop thread used this much CPU per stack sample, while the watchdog waited for
# the GIL at least this share of that CPU time, is C code holding the GIL: Python code lets
# the watchdog sample every 5 ms of CPU (the switch interval).
CPU_PER_SAMPLE = 0.02
GIL_WAITED = 0.5
# A block the agent sampled less often than this (seconds per sample; it samples every 2 ms,
# every 5 ms at worst when the loop thread runs Python code, which hands the GIL over every
# 5 ms), or not at all, is one in which its watchdog could not get the GIL, if it waited for it
# there at least STARVED_HELD seconds more than the loop thread waited for a core (a thread
# holding the GIL while it waits for a core keeps it from the watchdog too). Without that wait,
# no look of the watchdog's fell in the block (calm, it looks every 40 ms) or it waited for a
# core itself: how few samples there are says nothing of the code.
STARVED = 0.02
STARVED_HELD = 0.005

# Frames in these modules mean a thread waiting off-CPU is doing I/O.
IO_MODULES = frozenset(
    {
        "socket",
        "ssl",
        "http",
        "urllib",
        "requests",
        "urllib3",
        "httpx",
        "httpcore",
        "subprocess",
        "select",
        "selectors",
        "sqlite3",
        "psycopg",
        "psycopg2",
        "pymysql",
        "MySQLdb",
        "redis",
        "pymongo",
    }
)

# What kind of I/O a library module does, as the remedy depends on it (an async HTTP client,
# asyncio's subprocesses, an async database driver, ...). Sockets are the fallback.
IO_KINDS = {
    "http": "http",
    "urllib": "http",
    "requests": "http",
    "urllib3": "http",
    "httpx": "http",
    "httpcore": "http",
    "subprocess": "subprocess",
    "sqlite3": "database",
    "psycopg": "database",
    "psycopg2": "database",
    "pymysql": "database",
    "MySQLdb": "database",
    "redis": "database",
    "pymongo": "database",
    "socket": "socket",
    "ssl": "socket",
    "select": "socket",
    "selectors": "socket",
}
_DNS_FUNCTIONS = frozenset(
    {"getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getfqdn"}
)
# A line doing file I/O itself (the reads and writes are C calls: no frame of their own).
_FILE_CALL = re.compile(
    r"\bopen\s*\(|\.(?:read|write|readlines|readline|read_text|read_bytes|write_text|"
    r"write_bytes|flush)\s*\(|\bos\.(?:read|write|fsync|stat|listdir|scandir|walk)\s*\(|"
    r"\bshutil\."
)

_SLEEP_CALL = re.compile(r"\bsleep\s*\(")
# An awaited sleep (asyncio's, anyio's, trio's) lets the loop run: it is no blocking call.
_AWAITED_SLEEP = re.compile(r"\bawait\s+[\w.]*\bsleep\s*\(")
# asyncio's modules that make no system call of their own (its sockets, pipes and subprocesses
# are elsewhere: a blocking socket handed to `loop.sock_recv` blocks in selector_events.py)...
_ASYNCIO_PURE = frozenset(
    {"events.py", "futures.py", "base_futures.py", "tasks.py", "base_tasks.py", "locks.py",
     "queues.py", "timeouts.py", "mixins.py", "coroutines.py", "exceptions.py"}
)  # fmt: skip
# ...and their functions that run other code: a callback, a coroutine's step.
_ASYNCIO_RUNNERS = frozenset({"_run", "__step", "_Task__step", "__step_run_and_handle_result"})

MAX_HOT = 50
MAX_RECENT = 100
MAX_TASKS = 5
_MAX_TRACKED = 500  # distinct locations kept; the smallest are forgotten beyond this
_MAX_ENDS = 10_000

SourceLine = Callable[[str, int], str]


@dataclass(frozen=True, slots=True)
class Attribution:
    location: Frame | None
    samples: int  # samples whose stack names the location
    lines: dict[int, int]  # line -> samples, within the location's function
    stack: tuple[Frame, ...]  # the most frequent of those stacks
    cause: str
    io: str | None = None  # for sync I/O, its kind where it shows: see io_kind
    parts: tuple[Part, ...] = ()  # other functions that took PART_S or more of the block


@dataclass(frozen=True, slots=True)
class Part:
    """Another application function's share of a block: see PART_S."""

    attribution: Attribution  # its location, samples, lines, stack, cause and I/O kind
    seconds: float  # its share of the block's time
    cpu: float | None  # the block's CPU time taken to be its (None when unknown)


@dataclass(frozen=True, slots=True)
class Outside:
    """Stacks sampled from outside the process (py-spy, ``remote_stacks``) during a block the
    agent could not sample, or sampled less often, and the cause they show ("gil": on CPU
    holding the GIL), if they show one."""

    stacks: tuple[Stack, ...]
    cause: str | None = None
    samples: int = 0  # how many samples the stacks hold


def attribute(
    block: Block, code: CodeMap, source_line: SourceLine, outside: Outside | None = None
) -> Attribution:
    """Where ``block`` is and why; ``outside`` stacks, when there are any, locate it."""
    stacks = outside.stacks if outside is not None and outside.stacks else block.stacks
    located = _locate_block(stacks, code)
    cause = outside.cause if outside is not None and outside.stacks else None
    if (
        _machine(block)
        or _starts_thread(located.stack, code)
        or _stalled_in_asyncio(block, located.stack, code)
    ):
        cause = "machine"
    elif _collected(block):
        # The collector held the GIL, on CPU as C code does (the outside samples' "gil" is
        # its): the code around it only allocated.
        cause = "gc"
    elif cause is None:
        cause = _cause(block, located, code, source_line)
    io = io_kind(located.location, located.stack, code, source_line) if cause == "io" else None
    parts = () if cause in ("machine", "gc") else _parts(block, located, cause, code, source_line)
    return Attribution(
        located.location, located.samples, located.lines, located.stack, cause, io, parts
    )


def _parts(
    block: Block, located: _Located, cause: str, code: CodeMap, source_line: SourceLine
) -> tuple[Part, ...]:
    """The application functions other than the location (whose cause is ``cause``) that took
    PART_S or more of ``block``, by their share of its located time. Each is judged by what its
    code shows it waits on; else it is CPU work when the CPU time the location did not use
    could have been mostly its."""
    if located.location is None or not math.isfinite(block.duration):
        return ()
    grouped: dict[tuple[str, str], list[_Sampled]] = {}
    for other in located.others:
        if code.kind(other.frame.file) == APP:
            grouped.setdefault((other.frame.file, other.frame.function), []).append(other)
    cpu_left = block.cpu
    if cpu_left is not None and cause == "cpu":
        cpu_left = max(0.0, cpu_left - located.share * block.duration)
    parts = []
    for (file, function), entries in sorted(grouped.items(), key=lambda kv: -_share(kv[1])):
        seconds = _share(entries) * block.duration
        if seconds < PART_S:
            continue
        lines = Counter[int]()
        for e in entries:
            lines[e.frame.line] += e.count
        stack = max(entries, key=lambda e: e.share).stack
        location = Frame(file, max(lines, key=lines.__getitem__), function)
        waits = _waits(location, stack, code, source_line)
        cpu: float | None = 0.0
        if _starts_thread(stack, code):
            part_cause = "machine"
        elif waits is not None:
            part_cause = waits
        elif cpu_left is None:
            part_cause, cpu = "unknown", None
        elif cpu_left >= CPU_LEANING * seconds:
            part_cause, cpu = "cpu", min(cpu_left, seconds)
            cpu_left -= cpu
        else:
            part_cause = "io"
        io = io_kind(location, stack, code, source_line) if part_cause == "io" else None
        found = Attribution(location, sum(lines.values()), dict(lines), stack, part_cause, io)
        parts.append(Part(found, seconds, cpu))
    return tuple(parts)


def _share(entries: Sequence[_Sampled]) -> float:
    return sum(e.share for e in entries)


def io_kind(
    location: Frame | None, stack: Sequence[Frame], code: CodeMap, source_line: SourceLine
) -> str | None:
    """The kind of sync I/O a block at ``location`` does: "http", "subprocess", "database",
    "dns", "socket" or "file"; None when its stack and line do not show it.

    The library the application called (the outermost library frame) names the kind: an HTTP
    client's stack ends in sockets, and its remedy is an async HTTP client, not asyncio's
    streams. A name lookup shows as a socket call to a resolver function."""
    frames = list(stack)
    if location is not None and location in frames:
        frames = frames[: frames.index(location)]  # the frames the application called
    kind = None
    for f in reversed(frames):  # outermost first
        if code.kind(f.file) == APP:
            continue
        found = IO_KINDS.get(code.module(f.file) or "")
        if found is not None:
            kind = found
            break
    if kind in (None, "socket") and any(
        f.function.rsplit(".", 1)[-1] in _DNS_FUNCTIONS for f in frames
    ):
        return "dns"
    if (
        kind is None
        and location is not None
        and _FILE_CALL.search(_safe_line(source_line, location))
    ):
        return "file"
    return kind


def _machine(block: Block) -> bool:
    """Whether the block is the machine's: the loop thread waited for a core for all but
    less than MACHINE_OWN_S of it, and used less CPU than that (the CPU clock is the surer of
    the two), so its code ran too briefly to have stalled the loop."""
    return (
        block.runq is not None
        and block.duration - block.runq < MACHINE_OWN_S
        and (block.cpu is None or block.cpu < MACHINE_OWN_S)
    )


def cpu_share(block: Block) -> float | None:
    """The share of the time the loop thread could run during the block that it spent on CPU:
    ``cpu / (duration - runq)``, the run-queue wait being time a busy machine gave the thread
    no core. None when the CPU time is unknown."""
    if block.cpu is None:
        return None
    runnable = block.duration - (block.runq or 0.0)
    if runnable <= 0:
        # Runnable throughout and never on a core: whatever it was doing needed the CPU.
        return 1.0 if block.duration > 0 else 0.0
    return min(1.0, max(0.0, block.cpu / runnable))


@dataclass(frozen=True, slots=True)
class _Sampled:
    """A stack of a block located elsewhere than the block's location."""

    share: float  # of the block's located time (or samples)
    frame: Frame
    stack: tuple[Frame, ...]
    count: int


@dataclass(frozen=True, slots=True)
class _Located:
    location: Frame | None
    samples: int  # samples at the location's function
    lines: dict[int, int]
    stack: tuple[Frame, ...]  # the location's most frequent stack
    share: float  # the location's share of the located time (or samples)
    others: tuple[_Sampled, ...]


def _locate_block(stacks: Sequence[Stack], code: CodeMap) -> _Located:
    # The location is the function most of the block's time is in (the dominant stack's, when
    # the stacks agree); its line is the one most of those samples are at. A CPU-bound loop
    # spreads its samples over several lines of one function, and it is one culprit, not
    # several. Time comes from the samples' `seconds` where every stack has them, since a thread
    # burning CPU is sampled less often than one that waits; else from the sample counts.
    timed = all(s.seconds > 0 for s in stacks if s.count > 0)
    by_function: Counter[tuple[str, str]] = Counter()
    weight: dict[tuple[str, str], float] = {}
    by_line: Counter[tuple[str, str, int]] = Counter()
    first_stack: dict[tuple[str, str], tuple[Frame, ...]] = {}
    located: list[tuple[float, Frame, tuple[Frame, ...], int]] = []
    for s in stacks:
        f = code.locate(s.frames)
        if f is None or s.count <= 0:
            continue
        w = s.seconds if timed else float(s.count)
        by_function[f.file, f.function] += s.count
        weight[f.file, f.function] = weight.get((f.file, f.function), 0.0) + w
        by_line[f.file, f.function, f.line] += s.count
        first_stack.setdefault((f.file, f.function), s.frames)
        located.append((w, f, s.frames, s.count))
    if not by_function:
        return _Located(None, 0, {}, stacks[0].frames if stacks else (), 1.0, ())
    file, function = max(weight, key=weight.__getitem__)
    lines = {ln: n for (fi, fu, ln), n in by_line.items() if (fi, fu) == (file, function)}
    line = max(lines, key=lines.__getitem__)
    total = sum(weight.values())
    others = tuple(
        _Sampled(w / total, f, st, n)
        for w, f, st, n in located
        if (f.file, f.function) != (file, function)
    )
    return _Located(
        Frame(file, line, function),
        by_function[file, function],
        lines,
        first_stack[file, function],
        weight[file, function] / total,
        others,
    )


def _starts_thread(stack: Sequence[Frame], code: CodeMap) -> bool:
    """Whether ``stack`` waits in ``Thread.start`` (an executor adding a worker for ``to_thread``
    or ``run_in_executor``). The starting thread waits until the new one runs: with a core and
    the GIL free, well under a millisecond. A block there is the machine's (cause "machine"):
    the new thread waited for a core, or for the GIL another thread held."""
    return any(
        f.function.rsplit(".", 1)[-1] == "start" and code.module(f.file) == "threading"
        for f in stack
    )


def _stalled_in_asyncio(block: Block, stack: Sequence[Frame], code: CodeMap) -> bool:
    """Whether ``block`` stood, mostly off CPU, in asyncio's own Python code that makes no
    system call: the stack's innermost frame is in one of asyncio's `_ASYNCIO_PURE` modules and
    runs no other code (a callback, a coroutine's step), as when scheduling a timer or resolving
    a future. That code does not wait, so the loop thread waited for the GIL another thread
    held, or for the machine (a virtual CPU or a memory page taken away). Seen on a loaded test
    machine: 120 ms in `TimerHandle.__init__` under `await asyncio.sleep`, with 1 ms of CPU and
    11 samples there."""
    share = cpu_share(block)
    if not stack or share is None or share >= OFF_CPU:
        return False
    innermost = stack[0]
    return (
        code.module(innermost.file) == "asyncio"
        and os.path.basename(innermost.file) in _ASYNCIO_PURE
        and innermost.function.rpartition(".")[2] not in _ASYNCIO_RUNNERS
    )


def sparse(block: Block) -> bool:
    """Whether the agent sampled ``block`` less often than every STARVED seconds, or not at
    all: samples from outside may tell more."""
    return block.samples == 0 or block.duration / block.samples >= STARVED


def starved(block: Block) -> bool:
    """Whether the agent's watchdog could hardly sample ``block``, or not at all, because the
    GIL was held: see STARVED. (Agents that counted no wait for the GIL in a block no look saw
    begin made unsampled blocks that read as starved of nothing.)"""
    return sparse(block) and block.held - (block.runq or 0.0) >= STARVED_HELD


def _collected(block: Block) -> bool:
    """Whether garbage collections took most of ``block``."""
    return block.gc >= GC_SHARE * block.duration > 0


def _cause(block: Block, located: _Located, code: CodeMap, source_line: SourceLine) -> str:
    """The cause of the block at its location.

    The CPU time is known for the whole block only. When the samples name other locations too,
    they may have used the CPU or waited: the location is judged by the CPU share it could have
    had, so that the nature of a minority location never decides the cause. A location that
    shows it waits (an I/O module on its stack, a ``sleep(`` call on its line) waits if the
    other locations can account for the block's CPU time; one that does not show it is CPU work
    if its share of the CPU time is high enough once the other locations that show they wait
    are taken to have used none.
    """
    if block.samples == 0:
        if block.runq is not None and block.runq >= 0.5 * (block.duration - (block.cpu or 0.0)):
            # The thread waited for a core for most of the time it was off CPU, holding the
            # GIL or waiting for it: the watchdog could not sample, and what the code did is
            # not known.
            return "unknown"
        if block.cpu is not None and block.cpu < MACHINE_OWN_S:
            # Hardly on CPU and yet never sampled: not C code at work holding the GIL (that
            # burns CPU), and nothing shows what it was.
            return "unknown"
        if not starved(block):
            return "unknown"  # no look was due in it, or it waited for a core: nothing shows
        return "gil"  # no sample could be taken: the thread held the GIL throughout
    share = cpu_share(block)
    if share is None:
        return "unknown"
    if (
        block.cpu is not None
        and block.cpu >= CPU_PER_SAMPLE * block.samples
        and block.held >= GIL_WAITED * block.cpu
    ):
        # The loop thread ran on CPU, yet the agent's watchdog, ready to sample and not
        # waiting for a core, waited for the GIL and took hardly a sample: C code held the GIL
        # (a regular expression, a C extension). Python code hands it over every switch
        # interval (5 ms) of CPU; a thread the machine makes wait for a core keeps it, but does
        # not run. Its few samples show the call, not I/O.
        return "gil"
    location = located.location
    mine = located.share
    waits = _waits(location, located.stack, code, source_line)
    if waits is not None and share - (1.0 - mine) <= OFF_CPU * mine:
        return waits
    if waits is None and block.held > 0 and block.cpu is not None:
        # Code that shows no wait, off CPU and not waiting for a core, while the watchdog (on
        # a core) waited for the GIL too: the GIL was held by a thread that did not run, one
        # waiting for a core. That time was denied to the loop thread as its run-queue wait
        # was, and is no more the code's I/O.
        denied = min(block.duration - block.cpu, (block.runq or 0.0) + block.held)
        runnable = block.duration - denied
        share = 1.0 if runnable <= 0 else min(1.0, block.cpu / runnable)
    waiting_elsewhere = sum(
        o.share for o in located.others if _waits(o.frame, o.stack, code, source_line) is not None
    )
    busy_part = 1.0 - waiting_elsewhere
    if share / busy_part >= CPU_LEANING:
        return "cpu"
    return "io"


def _waits(
    location: Frame | None, stack: Sequence[Frame], code: CodeMap, source_line: SourceLine
) -> str | None:
    """What the code shows it waits on at ``location``: "io", "sleep", or None."""
    if any(code.kind(f.file) != APP and code.module(f.file) in IO_MODULES for f in stack):
        return "io"
    line = "" if location is None else _safe_line(source_line, location)
    if _SLEEP_CALL.search(line) and not _AWAITED_SLEEP.search(line):
        return "sleep"
    return None


def _safe_line(source_line: SourceLine, frame: Frame) -> str:
    try:
        return source_line(frame.file, frame.line)
    except Exception:  # a source we cannot read just gives no hint
        return ""


@dataclass
class _Hot:
    file: str
    function: str
    lines: Counter[int] = field(default_factory=Counter)
    blocks: int = 0
    samples: int = 0
    total: float = 0.0
    max: float = 0.0
    by_cause: dict[str, float] = field(default_factory=dict)  # cause -> seconds
    by_io: dict[str, float] = field(default_factory=dict)  # I/O kind -> seconds
    cpu: float = 0.0
    # Seconds the thread could run (not waiting for a core) in blocks whose CPU time is known.
    cpu_measured: float = 0.0
    first_t: float = 0.0
    last_t: float = 0.0
    stack: tuple[Frame, ...] = ()
    tasks: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)

    def add(self, block: Block, a: Attribution) -> None:
        self.lines.update(a.lines)
        if self.blocks == 0 or block.duration > self.max:
            self.stack = a.stack
        self.first_t = block.t if self.blocks == 0 else min(self.first_t, block.t)
        self.last_t = max(self.last_t, block.t)
        self.blocks += 1
        self.samples += a.samples
        self.total += block.duration
        self.max = max(self.max, block.duration)
        self.by_cause[a.cause] = self.by_cause.get(a.cause, 0.0) + block.duration
        if a.io is not None:
            self.by_io[a.io] = self.by_io.get(a.io, 0.0) + block.duration
        if block.cpu is not None:
            self.cpu += block.cpu
            self.cpu_measured += max(0.0, block.duration - (block.runq or 0.0))
        if block.task and block.task not in self.tasks and len(self.tasks) < MAX_TASKS:
            self.tasks.append(block.task)
        if block.route and block.route not in self.routes and len(self.routes) < MAX_TASKS:
            self.routes.append(block.route)

    def freeze(self, code: CodeMap) -> HotFrame:
        # The same code's blocks whose cause could be told tell it for those that could not
        # (a block no look of the watchdog's fell in has no CPU time).
        judged = {c: s for c, s in self.by_cause.items() if c != "unknown"} or self.by_cause
        return HotFrame(
            file=self.file,
            line=self.lines.most_common(1)[0][0] if self.lines else 0,
            function=self.function,
            blocks=self.blocks,
            samples=self.samples,
            total=self.total,
            max=self.max,
            cause=max(judged, key=judged.__getitem__),
            cpu_share=min(1.0, self.cpu / self.cpu_measured) if self.cpu_measured > 0 else None,
            first_t=self.first_t,
            last_t=self.last_t,
            stack=self.stack,
            tasks=tuple(self.tasks),
            routes=tuple(self.routes),
            io=max(self.by_io, key=self.by_io.__getitem__) if self.by_io else None,
            app=bool(self.file) and code.kind(self.file) == APP,
        )


# Blocks without a location (nothing could be sampled) are gathered under this pseudo-frame:
# file "" and line 0 say that there is no code location.
UNSAMPLED_FUNCTION = "<no stack: C code holding the GIL>"
# Blocks the machine made (cause "machine") are gathered under this one, wherever they were.
MACHINE_FUNCTION = "<waiting for a core>"


class BlockState:
    def __init__(self, recent_seconds: float, source_line: SourceLine) -> None:
        self._recent_seconds = recent_seconds
        self._source_line = source_line
        self.code = CodeMap()
        self._count = 0
        self._total = 0.0
        self._max = 0.0
        self._recent: deque[BlockRecord] = deque(maxlen=MAX_RECENT)
        self._ends: deque[float] = deque(maxlen=_MAX_ENDS)
        self._hot: dict[tuple[str, str], _Hot] = {}
        self._durations: list[int] = []

    def apply(self, block: Block, outside: Outside | None = None) -> None:
        """Add ``block``; ``outside`` as for `attribute`."""
        a = attribute(block, self.code, self._source_line, outside)
        seen = outside is not None and bool(outside.stacks)
        stacks = outside.stacks if outside is not None and seen else block.stacks
        self._count += 1
        self._total += block.duration
        self._max = max(self._max, block.duration)
        if math.isfinite(block.duration):
            bucket = lag_bucket(max(0.0, block.duration))
            if bucket >= len(self._durations):
                self._durations.extend([0] * (bucket + 1 - len(self._durations)))
            self._durations[bucket] += 1
        self._recent.append(
            BlockRecord(
                t=block.t,
                loop=block.loop,
                duration=block.duration,
                task=block.task,
                cause=a.cause,
                cpu=block.cpu,
                samples=outside.samples if outside is not None and seen else block.samples,
                location=a.location,
                stacks=tuple((s.count, s.frames) for s in stacks),
                runq=block.runq,
                io=a.io,
            )
        )
        end = block.t + block.duration
        self._ends.append(end)
        while self._ends and self._ends[0] < end - self._recent_seconds:
            self._ends.popleft()

        key = (
            ("", MACHINE_FUNCTION)
            if a.cause == "machine"
            else ("", UNSAMPLED_FUNCTION)
            if a.location is None
            else (
                a.location.file,
                a.location.function,
            )
        )
        if not a.parts:
            self._hot_frame(key).add(block, a)
            return
        # The location keeps the time its parts did not take.
        taken = sum(p.seconds for p in a.parts)
        used = sum(p.cpu or 0.0 for p in a.parts)
        cpu = None if block.cpu is None else max(0.0, block.cpu - used)
        self._hot_frame(key).add(_portion(block, block.duration - taken, cpu), a)
        for p in a.parts:
            where = p.attribution.location
            assert where is not None  # a part is always somewhere
            machine = p.attribution.cause == "machine"
            self._hot_frame(
                ("", MACHINE_FUNCTION) if machine else (where.file, where.function)
            ).add(_portion(block, p.seconds, p.cpu), p.attribution)

    def _hot_frame(self, key: tuple[str, str]) -> _Hot:
        hot = self._hot.get(key)
        if hot is None:
            if len(self._hot) >= _MAX_TRACKED:
                smallest = min(self._hot, key=lambda k: self._hot[k].total)
                del self._hot[smallest]
            hot = self._hot[key] = _Hot(file=key[0], function=key[1])
        return hot

    def view(self, now: float) -> BlockView:
        recent_from = now - self._recent_seconds
        hot = sorted(self._hot.values(), key=lambda h: (-h.total, h.file, h.function))
        return BlockView(
            count=self._count,
            total=self._total,
            max=self._max,
            recent_count=sum(1 for end in self._ends if recent_from < end),
            recent=tuple(reversed(self._recent)),
            hot=tuple(h.freeze(self.code) for h in hot[:MAX_HOT]),
            durations=tuple(self._durations),
        )


def _portion(block: Block, seconds: float, cpu: float | None) -> Block:
    """The part of ``block`` that one function took: ``seconds`` of it, with ``cpu`` of its
    CPU time and its share of the run-queue wait."""
    runq = None if block.runq is None else block.runq * seconds / block.duration
    return dataclasses.replace(block, duration=seconds, cpu=cpu, runq=runq)
