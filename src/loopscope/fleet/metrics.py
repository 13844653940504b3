"""The fleet's figures as metrics, named after OpenTelemetry's event-loop conventions.

| OpenTelemetry name | kind | Prometheus name |
| --- | --- | --- |
| python.asyncio.eventloop.delay | histogram, s | python_asyncio_eventloop_delay_seconds |
| python.asyncio.eventloop.utilization | gauge, 1 | python_asyncio_eventloop_utilization |
| python.asyncio.tasks | gauge, {state} | python_asyncio_tasks |
| python.asyncio.blocks | counter, {function, file, cause} | python_asyncio_blocks_total |
| python.asyncio.block.duration | histogram, s | python_asyncio_block_duration_seconds |
| loopscope.findings | gauge, {code, severity, function} | loopscope_findings |

Every series carries ``pid`` and ``process``. Label sets stay bounded: per process, the first
``top`` functions that block (or have findings) get their own series, the rest are ``other``.
The histograms are cumulative over the session, in the agent's lag buckets merged by two
(bounds 0.2 ms, 0.4 ms, ... 13.1 s, +Inf: each an exact bucket bound, so no count is guessed).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from loopscope.events import lag_bucket_upper
from loopscope.fleet._fleet import LIVE, Member
from loopscope.session import View

TOP_FUNCTIONS = 10
OTHER = "other"
# Every fourth lag bucket's upper bound: 0.2 ms * 2**k up to about 13 s.
_BOUND_INDEXES = tuple(range(4, 72, 4))
BOUNDS = tuple(lag_bucket_upper(i) for i in _BOUND_INDEXES)


@dataclass(frozen=True, slots=True)
class MetricName:
    """One metric, as both exporters name and describe it."""

    name: str  # OpenTelemetry's
    unit: str  # OpenTelemetry's: "s", "1" or "{thing}"
    labels: tuple[str, ...]  # besides pid and process
    help: str

    @property
    def prometheus(self) -> str:
        """Prometheus' name, before the unit suffix (``_seconds``) and ``_total`` that
        `prometheus_client` adds."""
        return self.name.replace(".", "_")

    @property
    def prometheus_unit(self) -> str:
        return "seconds" if self.unit == "s" else ""


DELAY = MetricName(
    "python.asyncio.eventloop.delay", "s", (), "How late the event loop ran its heartbeat callbacks"
)
UTILIZATION = MetricName(
    "python.asyncio.eventloop.utilization",
    "1",
    (),
    "Share of the last 10 s the event loop spent running callbacks, 0 to 1",
)
TASKS = MetricName("python.asyncio.tasks", "{task}", ("state",), "Live asyncio tasks by state")
BLOCKS = MetricName(
    "python.asyncio.blocks",
    "{block}",
    ("function", "file", "cause"),
    "Times code blocked the event loop, by the application function named for it",
)
BLOCK_DURATION = MetricName(
    "python.asyncio.block.duration", "s", (), "How long each block of the event loop lasted"
)
FINDINGS = MetricName(
    "loopscope.findings",
    "{finding}",
    ("code", "severity", "function"),
    "Problems loopscope diagnoses now, by finding code",
)


@dataclass(frozen=True, slots=True)
class Histogram:
    """A cumulative histogram: counts per bound of `BOUNDS` (not cumulative across bounds; the
    last is +Inf), their total and sum."""

    counts: tuple[int, ...]
    count: int
    sum: float

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count up to it) for Prometheus, +Inf last."""
        out, seen = [], 0
        for bound, n in zip((*BOUNDS, math.inf), self.counts, strict=True):
            seen += n
            out.append(("+Inf" if bound == math.inf else f"{bound:.6g}", seen))
        return out


def coarse(buckets: tuple[int, ...], total: float) -> Histogram:
    """The agent's fine lag buckets, merged into `BOUNDS` (plus +Inf)."""
    counts = [0] * (len(BOUNDS) + 1)
    for i, n in enumerate(buckets):
        if n:
            counts[_slot(i)] += n
    return Histogram(tuple(counts), sum(buckets), total)


def _slot(index: int) -> int:
    """Which coarse bucket fine bucket ``index`` (upper bound ``lag_bucket_upper(index)``)
    falls in."""
    for slot, bound_index in enumerate(_BOUND_INDEXES):
        if index <= bound_index:
            return slot
    return len(_BOUND_INDEXES)


def representative(index: int) -> float:
    """A value inside fine bucket ``index`` (its geometric middle), for exporters that must
    record values one by one."""
    return lag_bucket_upper(index) * 2**-0.125 if index > 0 else lag_bucket_upper(0) / 2


@dataclass(frozen=True, slots=True)
class BlockSeries:
    function: str
    file: str
    cause: str
    count: int


@dataclass(frozen=True, slots=True)
class FindingSeries:
    code: str
    severity: str
    function: str
    count: int


@dataclass(frozen=True, slots=True)
class ProcessMetrics:
    """One process's metrics at one moment."""

    pid: int
    process: str
    delay: Histogram
    utilization: float | None
    tasks: dict[str, int]
    blocks: tuple[BlockSeries, ...]
    block_duration: Histogram
    findings: tuple[FindingSeries, ...]

    @property
    def labels(self) -> dict[str, str]:
        return {"pid": str(self.pid), "process": self.process}


class Metrics:
    """Turns members' views into `ProcessMetrics`, keeping each process's label sets bounded
    and its counters monotonic (a function that once had its own series keeps it)."""

    def __init__(self, top: int = TOP_FUNCTIONS) -> None:
        self._top = top
        self._lock = threading.Lock()
        # pid -> the (function, file) pairs with a series of their own, in order of arrival
        self._named: dict[int, dict[tuple[str, str], None]] = {}
        # pid -> the highest count sent per block series: a hot frame the model forgets (it
        # keeps a bounded number) must not make a counter go down
        self._high: dict[int, dict[tuple[str, str, str], int]] = {}

    def of(self, member: Member) -> ProcessMetrics | None:
        """``member``'s metrics from its newest view; None when it has none, has no loop, or is
        gone (its series end)."""
        view = member.view
        if member.state != LIVE or view is None:
            return None
        if view.snapshot.lag.heartbeats == 0 and not view.snapshot.loops:
            return None
        with self._lock:
            return self._metrics(member.pid, member.name, view)

    def forget(self, live: set[int]) -> None:
        """Drop the label memory of processes not in ``live``."""
        with self._lock:
            for pid in set(self._named) - live:
                self._named.pop(pid, None)
                self._high.pop(pid, None)

    def _metrics(self, pid: int, name: str, view: View) -> ProcessMetrics:
        snap = view.snapshot
        lag = snap.lag
        blocks = snap.blocks
        return ProcessMetrics(
            pid=pid,
            process=name,
            delay=coarse(lag.session_buckets, lag.session_total),
            utilization=lag.busy,
            tasks=dict(snap.tasks.by_state),
            blocks=self._blocks(pid, view),
            block_duration=coarse(blocks.durations, blocks.total),
            findings=self._findings(pid, view),
        )

    def _label(self, pid: int, function: str, file: str) -> tuple[str, str]:
        named = self._named.setdefault(pid, {})
        key = (function, file)
        if key in named:
            return key
        if len(named) < self._top:
            named[key] = None
            return key
        return (OTHER, OTHER)

    def _blocks(self, pid: int, view: View) -> tuple[BlockSeries, ...]:
        blocks = view.snapshot.blocks
        counts: dict[tuple[str, str, str], int] = {}
        attributed = 0
        for hot in blocks.hot:
            function, file = (
                self._label(pid, hot.function, _short(hot.file)) if hot.app else (OTHER, OTHER)
            )
            key = (function, file, hot.cause)
            counts[key] = counts.get(key, 0) + hot.blocks
            attributed += hot.blocks
        rest = blocks.count - attributed
        if rest > 0:
            key = (OTHER, OTHER, "unknown")
            counts[key] = counts.get(key, 0) + rest
        high = self._high.setdefault(pid, {})
        for key, n in counts.items():
            high[key] = max(high.get(key, 0), n)
        return tuple(BlockSeries(*key, n) for key, n in sorted(high.items()))

    def _findings(self, pid: int, view: View) -> tuple[FindingSeries, ...]:
        counts: dict[tuple[str, str, str], int] = {}
        for finding in view.findings:
            location = finding.location
            function = OTHER
            if location is not None:
                function = self._label(pid, location.function, _short(location.file))[0]
            key = (finding.code, finding.severity, function)
            counts[key] = counts.get(key, 0) + 1
        return tuple(FindingSeries(*key, n) for key, n in sorted(counts.items()))

    def collect(self, members: list[Member]) -> Iterator[ProcessMetrics]:
        """The metrics of every member that has some; a member that fails is left out."""
        self.forget({m.pid for m in members})
        for member in members:
            try:
                metrics = self.of(member)
            except Exception:  # a process that died mid-read: the others still answer
                continue
            if metrics is not None:
                yield metrics


def _short(path: str) -> str:
    """The file's last two path components: enough to tell it, short as a label."""
    parts = path.replace(os.sep, "/").rsplit("/", 2)
    return "/".join(parts[-2:]) if len(parts) > 1 else path
