"""LS401, LS402: repeated expensive work - identical calls in flight at once, and the same call
made again and again (see docs/findings.md)."""

from __future__ import annotations

import re

from loopscope.model.snapshot import DuplicateView, Snapshot
from loopscope.rules._timing import file_line, short
from loopscope.rules.finding import Finding, Kind, Location

FAMILY = "duplicate"
IN_FLIGHT = Kind("LS401", FAMILY)
RECURRING = Kind("LS402", FAMILY)

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

# A repeated call made by a repeated caller is the one reported when its repeats take at least
# this share of the caller's.
INNER_SHARE = 0.5

TITLE_ARGS = 60
TOP_ARGS = 5
_NAME = re.compile(r"(?:^|, )([A-Za-z_]\w*)=")


def check(snapshot: Snapshot) -> list[Finding]:
    view = snapshot.duplicates
    kinds = {g.id: _kind(g) for g in view.groups}
    reported = {g.id: g for g in view.groups if kinds[g.id] is not None}
    # The innermost reported call whose repetition costs the time is where the cache goes: a
    # caller is repeated work only through it (``route(tenant=...)`` awaiting the same
    # ``load_tenants("eu-west")``), and its own arguments may differ from call to call. A
    # caller keeps the finding when the calls it makes take little of its time.
    # (Per function: a caller made with several argument sets shares one inner call.)
    by_id = {g.id: g for g in view.groups}
    place_cost: dict[tuple[str, str], float] = {}
    for group in reported.values():
        place_cost[group.file, group.function] = (
            place_cost.get((group.file, group.function), 0.0) + group.wasted_s
        )
    inner_cost: dict[tuple[str, str], float] = {}
    for group in reported.values():
        parent = by_id.get(group.parent)
        if parent is not None and parent.id in reported:
            place = (parent.file, parent.function)
            inner_cost[place] = inner_cost.get(place, 0.0) + group.wasted_s
    # One finding per function and code: the same call with several argument sets (the popular
    # symbols of a quote service) is one place to put a cache.
    by_place: dict[tuple[str, int, str, Kind], list[DuplicateView]] = {}
    for group in view.groups:
        kind = kinds[group.id]
        place = (group.file, group.function)
        if kind is None or inner_cost.get(place, 0.0) >= INNER_SHARE * place_cost[place] > 0:
            continue  # its repeats are those of a call it makes, reported
        parent = reported.get(group.parent)
        if parent is not None and group.wasted_s < INNER_SHARE * parent.wasted_s:
            continue  # a small part of a repeated caller, which is reported
        by_place.setdefault((group.file, group.line, group.function, kind), []).append(group)
    out = []
    for (_, _, _, kind), groups in by_place.items():
        groups.sort(key=lambda g: (-g.wasted_s, -g.peak))
        out.append(_finding(groups, kind, view.observed_s))
    out.sort(key=lambda f: -f.evidence["wasted_call_seconds"])
    return out


def _kind(group: DuplicateView) -> Kind | None:
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


def _finding(groups: list[DuplicateView], kind: Kind, observed: float) -> Finding:
    group = groups[0]  # the most wasteful argument set
    where = file_line(group)
    call = f"{short(group.function)}({_bounded(group.args, TITLE_ARGS)})"
    others = f" (and {len(groups) - 1} other argument sets)" if len(groups) > 1 else ""
    wasted = sum(g.wasted_s for g in groups)
    cost = f"; the repeats took {wasted:.1f} s of calls in flight" if wasted >= 0.05 else ""
    if kind == IN_FLIGHT:
        severity = "error" if group.peak >= ERROR_PEAK else "warning"
        title = f"{group.peak} identical calls `{call}`{others} in flight at once at {where}{cost}"
    else:
        severity = "warning" if group.in_flight_mean >= WARNING_IN_FLIGHT else "info"
        title = (
            f"`{call}`{others} is computed again and again ({group.instances} calls) at "
            f"{where}{cost}"
        )
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
    location = Location.of(group)
    return kind.finding(severity, title, location, evidence, _fix(group, kind, where))


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fix(group: DuplicateView, kind: Kind, where: str) -> str:
    names = [n for n in _NAME.findall(group.args) if n not in ("self", "cls")]
    signature = f"{short(group.function)}({', '.join(names)})"
    if kind == RECURRING:
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
