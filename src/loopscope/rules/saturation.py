"""LS201: the loop is saturated: busy nearly all the time, without long blocks to explain it
(see docs/findings.md)."""

from __future__ import annotations

from loopscope.model.snapshot import HotFrame, Snapshot, TimeBin
from loopscope.rules import blocking
from loopscope.rules._timing import (
    function_named,
    lag_percentiles,
    recent,
    seconds,
    short,
    where,
)
from loopscope.rules.finding import Finding, Kind, Location

KIND = Kind("LS201", "saturation")

# A second counts as saturated when the loop was busy (outside its selector) this share of it.
BUSY = 0.85
# Reported when at least this many seconds of the window were saturated, and they were at least
# this share of the seconds in which utilisation was measured.
MIN_SECONDS = 3
MIN_SHARE = 0.5
# Not reported when long blocks explain it (LS101's business): blocks took this share of the
# busy time of the saturated seconds, and lasted this long on average.
BLOCKS_EXPLAIN = 0.6
LONG_BLOCK_S = 0.05
# An error when the loop was this busy and the lag p99 this high over the saturated seconds.
ERROR_BUSY = 0.95
ERROR_P99_S = 0.1

HOT_FRAMES = 3
TOP_CREATED = 3


def check(snapshot: Snapshot) -> list[Finding]:
    measured = [b for b in recent(snapshot) if b.busy is not None]
    saturated = [b for b in measured if b.busy is not None and b.busy >= BUSY]
    if len(saturated) < MIN_SECONDS or len(saturated) < MIN_SHARE * len(measured):
        return []
    busy_time = sum(b.busy or 0.0 for b in saturated)
    blocked = sum(min(1.0, b.blocked) for b in saturated)
    blocks = sum(b.blocks for b in saturated)
    blocked_share = min(1.0, blocked / busy_time) if busy_time > 0 else 0.0
    if blocks and blocked_share >= BLOCKS_EXPLAIN and blocked / blocks >= LONG_BLOCK_S:
        return []
    return [_finding(snapshot, measured, saturated, blocked_share)]


def _finding(
    snapshot: Snapshot, measured: list[TimeBin], saturated: list[TimeBin], blocked_share: float
) -> Finding:
    busy = sum(b.busy or 0.0 for b in saturated) / len(saturated)
    p50, p99, top = lag_percentiles(saturated)
    severity = "error" if busy >= ERROR_BUSY and (p99 or 0.0) >= ERROR_P99_S else "warning"
    hot = _hot_frames(snapshot, saturated)
    created = [b.created for b in saturated if b.created is not None]
    top_created = [[name, n] for name, n in snapshot.tasks.top_created[:TOP_CREATED]]
    ready = [b.ready for b in saturated if b.ready is not None]
    location = Location.of(hot[0]) if hot else None
    what = f"; most of its time in `{short(hot[0].function)}`" if hot else ""
    if not hot and top_created:
        name = str(top_created[0][0])
        location = function_named(snapshot, name)
        what = f"; it runs mostly `{short(name)}` tasks"
    evidence = {
        "busy_share": round(busy, 3),
        "seconds": len(saturated),
        "share_of_window": round(len(saturated) / len(measured), 3),
        "lag_p50_s": seconds(p50),
        "lag_p99_s": seconds(p99),
        "lag_max_s": seconds(top),
        "ready_max": max(ready) if ready else None,
        "blocked_share": round(blocked_share, 3),
        "created_per_second": round(sum(created) / len(created), 1) if created else None,
        "top_created": top_created,
        "hot_frames": [where(h) for h in hot],
        "first_t": saturated[0].t,
        "last_t": saturated[-1].t + 1.0,
    }
    return KIND.finding(
        severity=severity,
        title=f"The loop is saturated: busy {busy * 100:.0f}% of the time for "
        f"{len(saturated)}s{what}",
        location=location,
        evidence=evidence,
        fix=(
            "The loop has no idle time left, so every callback waits behind all the others and "
            "latency grows with load. Do less per callback (cache or batch repeated work, avoid "
            "needless `create_task` per item), move CPU-heavy steps to a ProcessPoolExecutor "
            "with `loop.run_in_executor`, or spread the load over more processes (e.g. "
            "`uvicorn --workers N`, one loop per core). Bound the work accepted (an "
            "`asyncio.Semaphore` or a bounded queue) so overload is shed instead of queued."
        ),
    )


def _hot_frames(snapshot: Snapshot, saturated: list[TimeBin]) -> list[HotFrame]:
    """The blocking frames seen during the saturated seconds, most samples first; only the
    code's own work (`blocking.code_work`): the code that allocated when a collection came is
    not what keeps the loop busy."""
    start, end = saturated[0].t, saturated[-1].t + 1.0
    hot = [
        h
        for h in snapshot.blocks.hot
        if h.file
        and h.app
        and blocking.code_work(h)
        and h.last_t >= start - 1.0
        and h.first_t <= end + 1.0
    ]
    hot.sort(key=lambda h: (-h.samples, -h.total))
    return hot[:HOT_FRAMES]
