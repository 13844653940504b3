"""LS701: live tasks grow steadily (a task leak; see docs/findings.md)."""

from __future__ import annotations

import itertools
import statistics

from loopscope.model.snapshot import SiteGrowth, Snapshot
from loopscope.model.trend import slope
from loopscope.rules._timing import file_line, function_at, short
from loopscope.rules.finding import Finding, Kind, Location

KIND = Kind("LS701", "leak")

# Over the task series (up to the model's last 60 s): at least MIN_SPAN_S of it, MIN_POINTS
# censuses, a least-squares growth (slope x span) of at least MIN_GROWTH tasks and MIN_RELATIVE
# of the level at the start, and growth in each of STEADY_PARTS equal parts of the span: the
# median of each part above the one before by at least STEADY_SHARE of the whole rise. A
# ramp-up that levels off, a sawtooth, or a single step (a service whose load starts a few
# seconds late) fails this: a step can lift at most two of the three differences. The median
# leaves out a census that caught a moment between requests.
MIN_SPAN_S = 3.0
MIN_POINTS = 6
MIN_GROWTH = 20.0
MIN_RELATIVE = 0.10
STEADY_SHARE = 0.15
STEADY_PARTS = 4
# An await site is named as the origin when it accounts for this share of the growth.
SITE_SHARE = 0.3
# An error when the live tasks grew by this many over the span and at least doubled.
ERROR_GROWTH = 1000.0


def check(snapshot: Snapshot) -> list[Finding]:
    trend = growing(snapshot.tasks.series)
    if trend is None:
        return []
    rate, span, start_level = trend
    growth = rate * span
    site = _origin(snapshot.site_growth, rate)
    severity = "error" if growth >= ERROR_GROWTH and growth >= start_level else "warning"
    now = snapshot.tasks.total
    if site is not None:
        title = (
            f"Tasks leak: live tasks grow by {rate:.1f}/s, piling up waiting in "
            f"`{short(site.function)}` at {file_line(site)}"
        )
    else:
        title = f"Tasks leak: live tasks grow by {rate:.1f}/s ({now} now)"
    evidence = {
        "tasks_per_second": round(rate, 2),
        "growth": round(growth, 1),
        "window_s": round(span, 1),
        "tasks_now": now,
        "tasks_at_start": round(start_level, 1),
        "site": None if site is None else function_at(site),
        "site_kind": None if site is None else site.kind,
        "site_waiting": None if site is None else site.count,
        "site_tasks_per_second": None if site is None else round(site.slope, 2),
        "created_most": [f"{name} ({n})" for name, n in snapshot.tasks.top_created[:3]],
    }
    location = Location.of(site) if site is not None else None
    return [KIND.finding(severity, title, location, evidence, _fix(site))]


def growing(series: tuple[tuple[float, int], ...]) -> tuple[float, float, float] | None:
    """(slope in tasks/s, span in s, fitted level at the span's start) when the series grows
    steadily by the thresholds above; None otherwise."""
    if len(series) < MIN_POINTS:
        return None
    span = series[-1][0] - series[0][0]
    if span < MIN_SPAN_S:
        return None
    points = [(t, float(n)) for t, n in series]
    rate = slope(points)
    growth = rate * span
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    start_level = max(0.0, mean_v - rate * (mean_t - series[0][0]))
    if growth < MIN_GROWTH or growth < MIN_RELATIVE * start_level:
        return None
    parts: list[list[float]] = [[] for _ in range(STEADY_PARTS)]
    for t, v in points:
        parts[min(STEADY_PARTS - 1, int((t - series[0][0]) / span * STEADY_PARTS))].append(v)
    if not all(parts):
        return None
    medians = [statistics.median(p) for p in parts]
    rise = medians[-1] - medians[0]
    if rise <= 0 or any(b - a < STEADY_SHARE * rise for a, b in itertools.pairwise(medians)):
        return None
    return rate, span, start_level


def _origin(sites: tuple[SiteGrowth, ...], rate: float) -> SiteGrowth | None:
    for site in sites:  # fastest growing first
        if site.slope >= SITE_SHARE * rate and site.function:
            return site
    return None


def _fix(site: SiteGrowth | None) -> str:
    where = f" waiting in `{short(site.function)}`" if site is not None else ""
    return (
        f"Something creates tasks{where} that never finish. Make every task end: await or "
        "cancel the tasks you create (keep references, e.g. in a set with "
        "`task.add_done_callback(tasks.discard)`, and cancel them on shutdown), run them in an "
        "`asyncio.TaskGroup`, bound how many run at once with a semaphore, and give waits "
        "that may never complete a timeout (`asyncio.wait_for`, `asyncio.timeout`)."
    )
