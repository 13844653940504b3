"""Immutable snapshots of the model: what rules, the TUI, reports and exporters read.

A snapshot is a plain, frozen value: everything in it is already aggregated, so readers never
compute over raw events. Times are wall-clock seconds like the events'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopscope.events import FinishedTask, Frame, RaceSpan, Submitter, TaskInfo


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
    # Over the whole session, for exporters of cumulative histograms (Prometheus, OTLP):
    session_buckets: tuple[int, ...] = ()  # heartbeats per lag_bucket()
    session_total: float = 0.0  # seconds of lag, summed


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
    route: str | None = None  # the route most of its tasks serve, where known


@dataclass(frozen=True, slots=True)
class RouteView:
    """One route of a web service (``GET /invoices/{cid}``, or the endpoint function where the
    framework does not name it): its requests pending now and the blocks while it ran."""

    route: str
    in_flight: int  # requests pending now (the census's tasks serving it)
    site: Frame | None  # where most of them wait now
    kind: str  # what they wait on there ("sleep", "lock"...; see AWAIT_KINDS), "" when none
    oldest: float  # seconds the longest-waiting of them has waited
    blocks: int  # blocks of the loop while it was served, in the session
    blocked: float  # seconds of those blocks


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
    cause: str  # "cpu" | "sleep" | "io" | "gil" | "gc" | "machine" | "unknown"
    cpu: float | None
    samples: int
    location: Frame | None  # innermost application frame of the dominant stack
    stacks: tuple[tuple[int, tuple[Frame, ...]], ...]  # (count, frames innermost first)
    runq: float | None = None  # seconds the thread waited for a core, where measured
    # For sync I/O ("io"), what kind where it shows: "http", "subprocess", "database", "dns",
    # "socket", "file".
    io: str | None = None


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
    io: str | None = None  # the main kind of sync I/O of its "io" blocks, as BlockRecord.io
    routes: tuple[str, ...] = ()  # the web routes its blocks stalled, where named, a few
    # Whether the location is the application's own code (the code map's answer); False for a
    # framework, library or asyncio frame named because no application frame was on the stack.
    app: bool = True


@dataclass(frozen=True, slots=True)
class BlockView:
    count: int  # blocks in the session
    total: float  # seconds blocked in the session
    max: float
    recent_count: int  # blocks in the last RECENT_SECONDS
    recent: tuple[BlockRecord, ...]  # the latest blocks, newest first, bounded
    hot: tuple[HotFrame, ...]  # most total time first
    durations: tuple[int, ...] = ()  # blocks in the session per lag_bucket() of their duration


@dataclass(frozen=True, slots=True)
class ContentionView:
    """A synchronisation object (Lock, Semaphore, Queue...) that had waiters, over the session."""

    id: int
    loop: int
    type: str
    label: str  # as at the latest census that saw it with waiters
    kind: str  # the kind of its waiters' wait ("lock", "semaphore", "queue_put", ...)
    site: Frame | None  # the await site its waiters wait at
    waiters: int  # at its loop's latest census (0 when that census saw none)
    peak: int  # most waiters at one census
    first_t: float  # first census that saw it with waiters
    last_t: float  # latest census that saw it with waiters
    censuses: int  # censuses that saw it with waiters
    # The longest current wait (`Resource.oldest`) at each census that saw waiters: these
    # percentiles are over those censuses, so they describe the longest waits, not every wait.
    wait_p50: float
    wait_p99: float
    wait_max: float
    # (t, waiters, oldest wait) at each census of its loop since it was first seen, the latest
    # ones (bounded), oldest first; waiters 0 when a census saw none.
    samples: tuple[tuple[float, int, float], ...]


@dataclass(frozen=True, slots=True)
class SiteGrowth:
    """How the number of tasks waiting at one await site changed over the task series' span."""

    file: str
    line: int
    function: str
    kind: str
    count: int  # tasks waiting there at the latest census
    slope: float  # least-squares trend, tasks per second
    span: float  # seconds the trend is taken over
    first: int  # tasks waiting there at the start of the span


@dataclass(frozen=True, slots=True)
class TaskErrorView:
    """Unretrieved task exceptions, alike in coroutine, exception type and location."""

    coroutine: str
    error: str
    message: str  # of the latest one
    count: int
    location: Frame | None  # the innermost application frame of the traceback
    stack: tuple[Frame, ...]  # innermost first
    created: Frame | None  # the application frame that created the task, when known
    first_t: float
    last_t: float


@dataclass(frozen=True, slots=True)
class NeverAwaitedView:
    """Coroutines of one name dropped at one place without being awaited."""

    coroutine: str
    location: Frame | None  # where it was dropped, when that is application code
    count: int  # warnings seen (the warnings filter shows one line's warning once by default)
    first_t: float
    last_t: float
    frame: Frame | None = None  # where it was dropped, whatever code that is


@dataclass(frozen=True, slots=True)
class TaskListView:
    """The live tasks the agent listed (a bounded list, the longest waits first) and the listed
    tasks seen to end, newest first."""

    t: float | None = None  # when the newest list was taken; None: no list yet
    total: int = 0  # live tasks, all loops (the list shows at most a few dozen of them)
    sampled: bool = False  # chosen from a sample of the tasks
    tasks: tuple[TaskInfo, ...] = ()
    finished: tuple[FinishedTask, ...] = ()


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
    contention: tuple[ContentionView, ...] = field(default=())  # most waiters at a time first
    site_growth: tuple[SiteGrowth, ...] = field(default=())  # fastest growing first
    task_errors: tuple[TaskErrorView, ...] = field(default=())  # most frequent first
    never_awaited: tuple[NeverAwaitedView, ...] = field(default=())  # most frequent first
    never_awaited_dropped: int = 0  # "never awaited" warnings the agent did not report
    task_list: TaskListView = field(default=TaskListView())
    races: RaceView = field(default_factory=lambda: RaceView(windows=(), lost_updates=()))
    duplicates: DuplicatesView = field(default_factory=lambda: DuplicatesView())
    external: ExternalView | None = field(default=None)  # py-spy's samples, when it runs
    monitor: MonitorView | None = field(default=None)  # aiomonitor's task list, when read
    gc: GcView = field(default_factory=lambda: GcView())
    executor: ExecutorView = field(default_factory=lambda: ExecutorView())
    executors: tuple[ExecutorView, ...] = ()  # every pool seen, the default executor included
    timeline: tuple[TimeBin, ...] = field(default=())  # the last TIMELINE_SECONDS, oldest first
    # Every await site seen in the session, once per function (the first seen): where the code
    # of a coroutine named elsewhere (by `TaskView.top_created`) is.
    functions_seen: tuple[Frame, ...] = field(default=())
    routes: tuple[RouteView, ...] = ()  # a web service's routes, most requests pending first
    # Every route a census saw requests of in the session, with the application functions they
    # waited in (a few each), routes first seen first: what the findings at those functions
    # name as the routes they slow.
    route_waits: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class RaceWindowView:
    """A race window found in the source, with what the runtime saw of it."""

    span: RaceSpan
    observations: int  # passes that caught 2+ tasks inside it on one object
    max_tasks: int  # most tasks caught inside it at once
    tasks: tuple[str, ...]  # names of some of the tasks caught inside, latest first
    first_t: float | None
    last_t: float | None


@dataclass(frozen=True, slots=True)
class LostUpdateView:
    """Lost updates of one watched value at one place (read line, write line)."""

    target: str
    read: Frame
    write: Frame
    other_write: Frame  # where the update that was lost was written (the latest seen)
    count: int
    tasks: tuple[str, ...]  # tasks whose writes were stale, a few
    other_tasks: tuple[str, ...]  # tasks whose updates were lost, a few
    version_read: int  # of the latest report
    version_now: int
    first_t: float
    last_t: float


@dataclass(frozen=True, slots=True)
class DuplicateView:
    """One fingerprint (an application coroutine function and its arguments) over the session:
    identical calls in flight at once, and the same call made again and again."""

    id: str
    parent: str  # id of the calling coroutine's fingerprint ("" at the top of a task)
    file: str
    line: int  # the function's first line
    function: str
    args: str  # bounded text of the arguments
    peak: int  # most identical calls in flight at once
    concurrent_passes: int  # passes that saw two or more in flight at once
    passes: int  # passes that saw one or more in flight
    instances: int  # distinct calls seen
    ended: int  # of which seen to finish
    tasks: int  # distinct tasks the calls were made in
    duration: float | None  # mean duration of calls, where seen over several passes
    busy_s: float  # seconds of calls in flight, summed over calls (estimated from the passes)
    wasted_s: float  # of which repeated: busy_s * (1 - 1/instances)
    starts_per_s: float  # new calls seen per second of observation (a lower bound)
    in_flight_mean: float  # calls in flight on average (busy_s / observed_s)
    first_t: float
    last_t: float


@dataclass(frozen=True, slots=True)
class RaceView:
    windows: tuple[RaceWindowView, ...]  # observed ones first (most observations), then the rest
    lost_updates: tuple[LostUpdateView, ...]  # most first
    files_scanned: int = 0
    functions_scanned: int = 0


@dataclass(frozen=True, slots=True)
class DuplicatesView:
    groups: tuple[DuplicateView, ...] = ()  # most wasted time first, bounded
    observed_s: float = 0.0  # seconds the duplicates collector observed (longest of the loops)
    passes: int = 0
    cost_max: float = 0.0  # loop-thread seconds of the costliest pass
    cost_mean: float = 0.0


# -- timing: gc pauses, the default executor, a per-second timeline ----------------------------


@dataclass(frozen=True, slots=True)
class GcPauseView:
    t: float  # start
    duration: float
    generation: int
    location: Frame | None  # the application frame that triggered it, where known
    cpu: float | None = None  # CPU seconds it took, where measured (full collections)


@dataclass(frozen=True, slots=True)
class GcSiteView:
    """Application code that was running when listed collections (at least 1 ms) started:
    where the program allocates, statistically."""

    file: str
    line: int
    function: str
    pauses: int
    seconds: float


@dataclass(frozen=True, slots=True)
class GcView:
    """Garbage collections over the session (from the agent's gc collector)."""

    windows: int = 0  # gc windows received; 0: no gc data
    seconds: float = 0.0  # time the windows cover (those with no collection are not sent)
    collections: tuple[int, ...] = (0, 0, 0)  # per generation
    pause: float = 0.0  # seconds collecting, in total
    max: float = 0.0
    collected: int = 0
    uncollectable: int = 0
    longest: tuple[GcPauseView, ...] = ()  # the longest collections, longest first, bounded
    listed: float = 0.0  # seconds of the collections the agent listed (at least 1 ms each)
    sites: tuple[GcSiteView, ...] = ()  # most time first
    threshold: tuple[int, ...] = ()  # latest gc.get_threshold()
    frozen: int = 0  # latest gc.get_freeze_count()


@dataclass(frozen=True, slots=True)
class ExecutorView:
    """One thread pool the loops wait on (by default their default executors), merged across
    loops, over the session."""

    samples: int = 0  # 0: no default executor seen
    # At the latest sample:
    max_workers: int = 0
    workers: int = 0
    busy: int = 0
    queued: int = 0
    oldest: float | None = None
    # Over the session:
    backlog_samples: int = 0  # samples with work queued while every possible worker was busy
    queued_max: int = 0
    queued_mean: float = 0.0
    submitted: int = 0
    started: int = 0
    wait_p50: float | None = None  # queue wait of the items taken up
    wait_p99: float | None = None
    wait_max: float | None = None
    run: float = 0.0  # seconds of work run
    submitters: tuple[Submitter, ...] = ()  # over the session, most items first
    pool: str = "default executor"  # or "anyio worker threads", "ThreadPoolExecutor ..."
    # What the busy threads were seen running (their innermost application frames), most first
    running: tuple[Submitter, ...] = ()


@dataclass(frozen=True, slots=True)
class TimeBin:
    """One second of the session (``t`` its start): what the loops and the process did in it,
    so that rules can tell what happens at the same time as what."""

    t: float
    heartbeats: int = 0
    lag_buckets: tuple[int, ...] = ()  # heartbeats per lag_bucket(), all loops
    lag_max: float = 0.0
    busy: float | None = None  # loop utilisation, where measured
    ready: int | None = None  # the longest ready queue seen
    blocks: int = 0  # blocks that started in it
    blocked: float = 0.0  # their seconds
    gc_pause: float = 0.0  # seconds collecting
    gc_max: float = 0.0  # the longest collection
    gc_full: int = 0  # oldest-generation collections
    executor_queued: int | None = None  # the most work items seen queued
    executor_busy: int | None = None  # the most workers seen busy
    executor_workers: int | None = None  # max_workers
    created: int | None = None  # tasks created
