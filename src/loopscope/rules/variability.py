"""LS901: loop lag is uneven (p99 far above p50), and what the spikes go with (see
docs/findings.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loopscope.model.snapshot import Snapshot, TimeBin
from loopscope.rules import blocking, executor, gc_pauses, saturation
from loopscope.rules._timing import function_named, lag_percentiles, recent, seconds, short
from loopscope.rules.finding import Finding, Kind, Location

KIND = Kind("LS901", "variability")

# Reported when, over at least MIN_SECONDS of lag measured in the window, the lag p99 reached
# MIN_P99_S and was at least RATIO times the p50, with spikes (seconds whose lag reached
# SPIKE_SHARE of the p99, and MIN_P99_S) in at least MIN_SPIKE_SECONDS distinct seconds. The
# other seconds are the calm ones, even when their lag reached MIN_P99_S: on a busy machine
# other processes make small spikes everywhere, and only the large ones tell what goes with
# them.
MIN_SECONDS = 4
MIN_P99_S = 0.01
RATIO = 5.0
MIN_SPIKE_SECONDS = 3
SPIKE_SHARE = 0.5
# A cause goes with the spikes when it is present in at least this share of the spike seconds,
# and in this much larger a share of them than of the calm seconds (a cause present all the
# time, like a steady rate of task creation, tells nothing about the spikes).
WITH_SPIKES = 0.6
LIFT = 0.3
# With fewer than MIN_CALM calm seconds there is nothing to compare with: a cause must then be
# present in ALWAYS of the spike seconds.
MIN_CALM = 2
ALWAYS = 0.8
# Task creation goes with a spike when the second (or the one before) created this many tasks,
# and BURST times the quiet level of the window (the first quartile of its seconds): tasks
# created together queue their first steps together (a burst); a steady rate tells nothing.
MIN_CREATED = 200
BURST = 1.5
# A collection or block goes with a second when it is at least this share of the second's lag
# (and of MIN_P99_S).
EXPLAINS = 0.5
# An error when the lag p99 reached this and no other finding explains it.
ERROR_P99_S = 0.25


@dataclass(frozen=True, slots=True)
class _Cause:
    name: str  # evidence key
    label: str  # for the title
    code: str | None  # the finding that covers it, when that finding is reported
    # The second, the one before, the quiet level of task creation in the window.
    present: Callable[[TimeBin, TimeBin | None, float], bool]


def _gc(b: TimeBin, before: TimeBin | None, _median: float) -> bool:
    near = max(b.gc_max, before.gc_max if before else 0.0)
    return near >= EXPLAINS * max(b.lag_max, MIN_P99_S)


def _blocks(b: TimeBin, before: TimeBin | None, _median: float) -> bool:
    near = max(b.blocked, before.blocked if before else 0.0)
    return near >= EXPLAINS * max(b.lag_max, MIN_P99_S)


def _executor(b: TimeBin, before: TimeBin | None, _median: float) -> bool:
    return bool(b.executor_busy) or bool(before and before.executor_busy)


def _created(b: TimeBin, before: TimeBin | None, quiet: float) -> bool:
    created = max(b.created or 0, (before.created or 0) if before else 0)
    return created >= MIN_CREATED and created >= BURST * quiet


def _busy(b: TimeBin, _before: TimeBin | None, _median: float) -> bool:
    # A second that blocks kept busy is the blocks' (as LS201 leaves those to LS101): a loop
    # that blocks for most of each second is busy in it, and on a busy machine more so.
    return (
        b.busy is not None
        and b.busy >= saturation.BUSY
        and min(1.0, b.blocked) < saturation.BLOCKS_EXPLAIN * b.busy
    )


# In order of preference when several go with the spikes: creating many tasks at once
# allocates, so collections come with the bursts, and both make blocks; the bursts are the cause.
CAUSES = (
    _Cause("saturation", "a saturated loop", saturation.KIND.code, _busy),
    _Cause("task_creation", "many tasks created at once", None, _created),
    _Cause("gc", "garbage collection pauses", gc_pauses.KIND.code, _gc),
    _Cause("blocks", "blocks", blocking.KIND.code, _blocks),
    _Cause("executor", "executor threads at work (the GIL)", executor.KIND.code, _executor),
)
_RULES: dict[str, Callable[[Snapshot], list[Finding]]] = {
    gc_pauses.KIND.code: gc_pauses.check,
    blocking.KIND.code: blocking.check,
    executor.KIND.code: executor.check,
    saturation.KIND.code: saturation.check,
}


# The causes that go with the spikes only when their own finding is reported.
_CONFIRMED = (blocking.KIND.code, gc_pauses.KIND.code)


def _raised(code: str, snapshot: Snapshot) -> bool:
    """Whether the rule ``code`` reports a problem (warning or worse): an info finding (a
    block with no application code on its stack) says where the loop was, not what to fix."""
    return any(f.severity != "info" for f in _RULES[code](snapshot))


def check(snapshot: Snapshot) -> list[Finding]:
    # Every second with heartbeats counts, however few: the heartbeat slows down while the loop
    # is calm, and leaving calm seconds out would leave the spikes nothing to be told from.
    bins = [b for b in recent(snapshot) if b.heartbeats]
    if len(bins) < MIN_SECONDS:
        return []
    p50, p99, top = lag_percentiles(bins)
    if p50 is None or p99 is None or p99 < MIN_P99_S or p99 < RATIO * p50:
        return []
    before = {b.t: b for b in snapshot.timeline}
    level = max(MIN_P99_S, SPIKE_SHARE * p99)
    spikes = [b for b in bins if b.lag_max >= level]
    calm = [b for b in bins if b.lag_max < level]
    if len(spikes) < MIN_SPIKE_SECONDS:
        return []
    created = _quiet_creation(snapshot, bins)
    shares: dict[str, float] = {}
    found: list[_Cause] = []
    for cause in CAUSES:
        with_spikes = _share(spikes, cause, before, created)
        # A calm second is judged on its own: the second before it, if a spike's, would lend
        # it the spike's cause.
        without = _share(calm, cause, {}, created)
        shares[cause.name] = round(with_spikes, 3)
        if len(calm) < MIN_CALM:
            goes = with_spikes >= ALWAYS
        else:
            goes = with_spikes >= WITH_SPIKES and with_spikes - without >= LIFT
        # A block is a spike: blocks explain spikes only as far as LS101 reports them (a few
        # short ones, on a busy machine, are the machine's). So do collections as far as LS301
        # reports them: a program that keeps many objects makes collections of a few ms, and a
        # busy machine's waits for a core stretch its seconds' lag around them.
        if goes and (cause.code not in _CONFIRMED or _raised(cause.code, snapshot)):
            found.append(cause)
    if not found:
        # No cause seen: on a machine short of cores other processes make such spikes, and
        # nothing here tells them from the program's own.
        return []
    # The leading cause is the first in CAUSES's order: a block is a spike, so blocks go with
    # spikes more often than what makes them (bursts of tasks, collections) does.
    main = found[0]
    reported = [c for c in found if c.code is not None and _raised(c.code, snapshot)]
    # When the finding of the leading cause is reported it already says what to do: this one
    # only adds the jitter it makes.
    severity = "info" if main in reported else "error" if p99 >= ERROR_P99_S else "warning"
    location, what = _location(snapshot, main)
    title = (
        f"Loop lag is uneven: p99 {p99 * 1000:.0f} ms against p50 {p50 * 1000:.1f} ms, "
        f"spikes in {len(spikes)} of {len(bins)} s"
    )
    title += f", with {main.label}"
    if what:
        title += f" (`{short(what)}`)"
    evidence = {
        "lag_p50_s": seconds(p50),
        "lag_p99_s": seconds(p99),
        "lag_max_s": seconds(top),
        "ratio": round(p99 / p50, 1) if p50 > 0 else None,
        "seconds": len(bins),
        "spike_seconds": len(spikes),
        "with_spikes": shares,
        "goes_with": [c.name for c in found],
        "see": [c.code for c in reported if c.code is not None],
        "first_t": spikes[0].t,
        "last_t": spikes[-1].t + 1.0,
    }
    return [KIND.finding(severity, title, location, evidence, _fix(main, what))]


def _quiet_creation(snapshot: Snapshot, bins: Sequence[TimeBin]) -> float:
    """The quiet level of task creation: the first quartile of the seconds' counts. The
    timeline's first and last seconds are left out when there are others: the session started
    or the snapshot was taken partway through them, and their low counts would make every full
    second of a steady rate look like a burst."""
    ends = {snapshot.timeline[0].t, snapshot.timeline[-1].t} if snapshot.timeline else set()
    full = [b for b in bins if b.t not in ends] or list(bins)
    rates = sorted(b.created or 0 for b in full)
    return rates[(len(rates) - 1) // 4]


def _share(
    bins: Sequence[TimeBin], cause: _Cause, before: dict[float, TimeBin], created: float
) -> float:
    if not bins:
        return 0.0
    return sum(cause.present(b, before.get(b.t - 1.0), created) for b in bins) / len(bins)


def _location(snapshot: Snapshot, cause: _Cause) -> tuple[Location | None, str | None]:
    """The code behind the cause, where one is known, and the name to show."""
    if cause.name == "gc":
        site = gc_pauses._site(snapshot.gc)
        if site is not None:
            return Location.of(site), site.function
    elif cause.name in ("blocks", "saturation"):
        hot = [h for h in snapshot.blocks.hot if h.file and h.app]
        if hot:
            h = max(hot, key=lambda h: h.total)
            return Location.of(h), h.function
    elif cause.name == "executor":
        loc, work = executor._location(snapshot, executor.busiest(snapshot))
        return loc, work or (loc.function if loc else None)
    elif cause.name == "task_creation" and snapshot.tasks.top_created:
        name = snapshot.tasks.top_created[0][0]
        return function_named(snapshot, name), name
    return None, None


def _fix(cause: _Cause, what: str | None) -> str:
    fn = f"`{short(what)}`" if what else "it"
    if cause.name == "task_creation":
        return (
            f"Tasks are created in bursts ({fn}): each burst queues all of their first steps at "
            "once, and everything else waits behind them. Spread the burst (create them in "
            "batches with `await asyncio.sleep(0)` between, or feed a fixed pool of workers "
            "from an `asyncio.Queue`), and bound how many run at once with a Semaphore."
        )
    if cause.name == "executor":
        return (
            f"The spikes come while executor threads run ({fn}). Python code in a thread holds "
            "the GIL and the loop waits for it (up to the switch interval, 5 ms, at a time): "
            "run CPU-bound Python in a ProcessPoolExecutor, or use code that releases the GIL."
        )
    if cause.name == "gc":
        return "Make collections shorter or rarer: see the gc finding (LS301) for how."
    if cause.name == "blocks":
        return "Move the blocking code off the loop: see the blocking findings (LS101)."
    return "The loop is saturated: see LS201 for how to spread or shed the load."
