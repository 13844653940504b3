"""Immutable snapshots of the model: what rules, the TUI, reports and exporters read.

A snapshot is a plain, frozen value: everything in it is already aggregated, so readers never
compute over raw events. Times are wall-clock seconds like the events'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopscope.events import Frame


@dataclass(frozen=True, slots=True)
class TargetInfo:
    pid: int
    python: str
    executable: str
    argv: tuple[str, ...]
    agent_version: str
    cwd: str = ""  # the target's working directory, to show its paths relative to it


@dataclass(frozen=True, slots=True)
class LoopInfo:
    loop: int
    thread_name: str
    loop_class: str
    features: tuple[str, ...]
    unavailable: tuple[str, ...]
    running: bool


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str  # "agent", "py-spy", "aiomonitor", "replay"
    state: str  # "live" | "unavailable" | "lost" | "ended"
    detail: str


@dataclass(frozen=True, slots=True)
class ExitInfo:
    t: float
    exit_code: int | None
    reason: str  # as `TargetExited.reason`: "exited", "killed by SIGKILL", ...

    def describe(self) -> str:
        """How the program ended, as a phrase: "program exited with code 0", "program was
        killed by SIGKILL", "stopped by loopscope (SIGINT), exit code -2", ..."""
        reason, late = self.reason, ""
        if reason.endswith(_BEFORE_AGENT):
            reason, late = reason[: -len(_BEFORE_AGENT)], _BEFORE_AGENT
        code = "exit code unknown" if self.exit_code is None else f"exit code {self.exit_code}"
        if reason in ("", "exited"):
            if self.exit_code is None:
                text = f"program exited, {code}"
            else:
                text = f"program exited with code {self.exit_code}"
        elif reason.startswith("killed by "):
            text = f"program was {reason}"  # the signal says what the exit code would
        elif reason.startswith(_STOPPED):
            signal = reason[len(_STOPPED) :].removeprefix(" with ").strip()
            text = _STOPPED + (f" ({signal})" if signal else "") + f", {code}"
        else:
            text = f"program ended ({reason}), {code}"
        return text + late


_BEFORE_AGENT = " before its agent started"
_STOPPED = "stopped by loopscope"


@dataclass(frozen=True, slots=True)
class LagPoint:
    """Lag over one agent window (about 250 ms), all loops merged."""

    t: float
    p50: float
    p99: float
    max: float
    busy: float | None


@dataclass(frozen=True, slots=True)
class LagView:
    series: tuple[LagPoint, ...]  # the last LAG_SERIES_SECONDS, oldest first
    # Over the last RECENT_SECONDS:
    p50: float | None
    p99: float | None
    max: float | None
    busy: float | None
    ready: int | None
    # Over the whole session:
    session_max: float | None
    heartbeats: int


@dataclass(frozen=True, slots=True)
class TaskView:
    total: int  # live tasks at the latest census, all loops
    by_state: dict[str, int]
    by_kind: dict[str, int]
    created_per_s: float  # over the last RECENT_SECONDS
    finished_per_s: float
    failed_per_s: float
    series: tuple[tuple[float, int], ...]  # (t, total live tasks), oldest first
    top_created: tuple[tuple[str, int], ...]  # (coroutine, created in session), most first


@dataclass(frozen=True, slots=True)
class AwaitSiteView:
    file: str
    line: int
    function: str
    kind: str
    count: int
    oldest: float


@dataclass(frozen=True, slots=True)
class ResourceView:
    id: int
    type: str
    label: str
    waiters: int
    oldest: float


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """One block, with its stacks and the application frame it is attributed to."""

    t: float
    loop: int
    duration: float
    task: str | None
    cause: str  # "cpu" | "sleep" | "io" | "gil" | "unknown"
    cpu: float | None
    samples: int
    location: Frame | None  # innermost application frame of the dominant stack
    stacks: tuple[tuple[int, tuple[Frame, ...]], ...]  # (count, frames innermost first)
    runq: float | None = None  # seconds the thread waited for a core, where measured


@dataclass(frozen=True, slots=True)
class HotFrame:
    """An application location that blocked the loop, over the session."""

    file: str
    line: int
    function: str
    blocks: int  # blocks attributed to it
    samples: int  # stack samples naming it
    total: float  # seconds blocked
    max: float
    cause: str  # dominant cause of its blocks
    cpu_share: float | None  # CPU time / blocked time less run-queue wait, where measured
    first_t: float
    last_t: float
    stack: tuple[Frame, ...]  # a representative stack, innermost first
    tasks: tuple[str, ...] = ()  # names of tasks that were running in its blocks, a few


@dataclass(frozen=True, slots=True)
class BlockView:
    count: int  # blocks in the session
    total: float  # seconds blocked in the session
    max: float
    recent_count: int  # blocks in the last RECENT_SECONDS
    recent: tuple[BlockRecord, ...]  # the latest blocks, newest first, bounded
    hot: tuple[HotFrame, ...]  # most total time first


@dataclass(frozen=True, slots=True)
class SampledFrame:
    """An application location where samples taken from outside (py-spy) found the loop
    thread busy: the innermost application frame of the running callback."""

    file: str
    line: int  # the line most of its samples are at
    function: str
    samples: int
    share: float  # of the busy samples of the session
    on_cpu: float  # share of its samples in which the thread ran and held the GIL (0: unknown)
    stack: tuple[Frame, ...]  # a representative stack, innermost first


@dataclass(frozen=True, slots=True)
class ExternalView:
    """The loop thread as sampled from outside the process (py-spy)."""

    source: str
    samples: int  # in the session
    native: bool  # the stacks include C frames
    busy: float | None  # share of samples in the last RECENT_SECONDS not waiting for events
    # share of samples in the last RECENT_SECONDS running callbacks on CPU (None: py-spy record,
    # which does not say)
    on_cpu: float | None
    series: tuple[tuple[float, float], ...]  # (t, busy share) per window, oldest first
    hot: tuple[SampledFrame, ...]  # most samples first
    attributed: int  # blocks without samples of their own named from these samples


@dataclass(frozen=True, slots=True)
class TaskGroupView:
    coroutine: str
    count: int
    oldest: float  # seconds; 0 unknown
    created_at: str
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MonitorView:
    """The task list of a task monitor in the target (aiomonitor), as last read."""

    source: str
    endpoint: str
    t: float
    total: int
    live: tuple[TaskGroupView, ...]
    terminated_total: int
    terminated: tuple[TaskGroupView, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    t: float  # the model's clock when the snapshot was taken
    started: float | None  # time of the first event
    duration_s: float
    target: TargetInfo | None
    loops: tuple[LoopInfo, ...]
    sources: tuple[SourceInfo, ...]
    exited: ExitInfo | None
    lag: LagView
    tasks: TaskView
    await_sites: tuple[AwaitSiteView, ...]  # most tasks first
    resources: tuple[ResourceView, ...]  # most waiters first
    blocks: BlockView
    notices: tuple[str, ...] = field(default=())
    external: ExternalView | None = field(default=None)  # py-spy's samples, when it runs
    monitor: MonitorView | None = field(default=None)  # aiomonitor's task list, when read
