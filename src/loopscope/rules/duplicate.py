"""LS401, LS402: repeated expensive work - identical calls in flight at once, and the same call
made again and again (see docs/findings.md)."""

from __future__ import annotations

import os
import re

from loopscope.model.snapshot import DuplicateView, Snapshot
from loopscope.rules.finding import Finding, Location

FAMILY = "duplicate"
IN_FLIGHT = "LS401"
RECURRING = "LS402"

# LS401: identical calls in flight at once.
MIN_PEAK = 3  # identical calls in flight at one pass
MIN_CONCURRENT_PASSES = 2  # passes that saw two or more at once (not a one-off coincidence)
ERROR_PEAK = 10
# LS402: the same call made again and again.
MIN_INSTANCES = 8  # distinct calls seen
MIN_TASKS = 3  # made in this many tasks: one task redoing a call in a loop is polling
MIN_IN_FLIGHT = 0.2  # calls in flight on average: the call is running a fifth of the time
WARNING_IN_FLIGHT = 0.5
# Both: calls seen to finish. Long-lived calls that never end (workers, connection loops) do
# not compute a value that could be shared.
MIN_ENDED = 1
MIN_ENDED_RECURRING = 4

TITLE_ARGS = 60
TOP_ARGS = 5
_NAME = re.compile(r"(?:^|, )([A-Za-z_]\w*)=")


def check(snapshot: Snapshot) -> list[Finding]:
    view = snapshot.duplicates
    codes = {g.id: _code(g) for g in view.groups}
    reported = {i for i, c in codes.items() if c is not None}
    # One finding per function and code: the same call with several argument sets (the popular
    # symbols of a quote service) is one place to put a cache.
    by_place: dict[tuple[str, int, str, str], list[DuplicateView]] = {}
    for group in view.groups:
        code = codes[group.id]
        # The outermost reported call is where the cache goes: the calls it makes are repeated
        # because it is.
        if code is None or group.parent in reported:
            continue
        by_place.setdefault((group.file, group.line, group.function, code), []).append(group)
    out = []
    for (_, _, _, code), groups in by_place.items():
        groups.sort(key=lambda g: (-g.wasted_s, -g.peak))
        out.append(_finding(groups, code, view.observed_s))
    out.sort(key=lambda f: -f.evidence["wasted_call_seconds"])
    return out


def _code(group: DuplicateView) -> str | None:
    if (
        group.peak >= MIN_PEAK
        and group.concurrent_passes >= MIN_CONCURRENT_PASSES
        and group.ended >= MIN_ENDED
    ):
        return IN_FLIGHT
    if (
        group.instances >= MIN_INSTANCES
        and group.tasks >= MIN_TASKS
        and group.ended >= MIN_ENDED_RECURRING
        and group.in_flight_mean >= MIN_IN_FLIGHT
    ):
        return RECURRING
    return None


def _finding(groups: list[DuplicateView], code: str, observed: float) -> Finding:
    group = groups[0]  # the most wasteful argument set
    where = f"{os.path.basename(group.file)}:{group.line}"
    call = f"{_short(group.function)}({_bounded(group.args, TITLE_ARGS)})"
    others = f" (and {len(groups) - 1} other argument sets)" if len(groups) > 1 else ""
    if code == IN_FLIGHT:
        severity = "error" if group.peak >= ERROR_PEAK else "warning"
        title = f"{group.peak} identical calls `{call}`{others} in flight at once at {where}"
    else:
        severity = "warning" if group.in_flight_mean >= WARNING_IN_FLIGHT else "info"
        title = f"`{call}`{others} is computed again and again ({group.instances} calls) at {where}"
    evidence = {
        "args": group.args,
        "peak_in_flight": group.peak,
        "concurrent_passes": group.concurrent_passes,
        "passes": group.passes,
        "calls": group.instances,
        "ended": group.ended,
        "tasks": group.tasks,
        "starts_per_second": round(group.starts_per_s, 2),
        "in_flight_mean": round(group.in_flight_mean, 3),
        "duration_s": None if group.duration is None else round(group.duration, 4),
        "call_seconds": round(sum(g.busy_s for g in groups), 2),
        "wasted_call_seconds": round(sum(g.wasted_s for g in groups), 2),
        "argument_sets": len(groups),
        "top_args": [g.args for g in groups[:TOP_ARGS]],
        "observed_s": round(observed, 2),
        "first_t": min(g.first_t for g in groups),
        "last_t": max(g.last_t for g in groups),
    }
    return Finding(
        code=code,
        family=FAMILY,
        severity=severity,
        title=title,
        location=Location.of(group),
        evidence=evidence,
        fix=_fix(group, code, where),
    )


def _short(function: str) -> str:
    """``PriceService.fetch_price`` -> ``fetch_price``: what the code at the call site names."""
    return function.rsplit(".", 1)[-1]


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fix(group: DuplicateView, code: str, where: str) -> str:
    names = [n for n in _NAME.findall(group.args) if n not in ("self", "cls")]
    signature = f"{_short(group.function)}({', '.join(names)})"
    if code == RECURRING:
        return (
            f"Cache `{signature}` at {where}: keep its result for as long as it stays valid (a "
            f"TTL cache, or `async_lru`'s `@alru_cache(ttl=...)`, which also makes concurrent "
            f"callers share one call) instead of computing it again for every caller."
        )
    return (
        f"Cache or single-flight `{signature}` at {where}: keep one `asyncio.Future` per key in "
        f"a dict so that concurrent callers await the call already in flight instead of "
        f"starting their own, and keep its result for a while (a TTL cache, or `async_lru`'s "
        f"`@alru_cache(ttl=...)`) so that later callers reuse it."
    )
