"""What the dashboard's process list shows, apart from how it is gathered: one summary row per
process, and findings merged across processes. (The UI imports this module, never the fleet's
attach machinery.)"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from loopscope.model.location import Location
from loopscope.model.snapshot import (
    AwaitSiteView,
    BlockRecord,
    BlockView,
    HotFrame,
    RouteView,
    Snapshot,
    TaskView,
)
from loopscope.rules.finding import Finding, severity_rank
from loopscope.session import View

# What `Processes.select` takes, and `selected` gives, for every process at once.
ALL = 0


@dataclass(frozen=True, slots=True)
class ProcessRow:
    pid: int
    name: str
    command: str
    state: str  # "live", "gone", "no loop"... (the program itself: "live" or "exited")
    lag_p99: float | None
    busy: float | None
    tasks: int | None
    blocks_per_min: float | None
    findings: int
    main: bool = False


@dataclass(frozen=True, slots=True)
class SharedFinding:
    """A finding, and every process it is found in (the first one's evidence)."""

    finding: Finding
    pids: tuple[int, ...]


@runtime_checkable
class Processes(Protocol):
    """Views of several processes, one of them selected (`loopscope.fleet.views.FleetViews`)."""

    @property
    def selected(self) -> int: ...

    def select(self, pid: int) -> None:
        """Show process ``pid``, or all of them together (`ALL`)."""

    def view(self) -> View: ...

    def processes(self) -> list[ProcessRow]: ...

    def findings(self) -> list[SharedFinding]: ...


def shared(views: list[tuple[int, str, str, str, View | None]]) -> list[SharedFinding]:
    """Findings alike (code and location) in several processes merged into one, with their
    pids; the first process's finding stands for them."""
    seen: dict[tuple[str, str, int, str], tuple[Finding, list[int]]] = {}
    for pid, _name, _command, _state, view in views:
        for finding in () if view is None else view.findings:
            loc = finding.location
            key = (
                finding.code,
                "" if loc is None else loc.file,
                0 if loc is None else loc.line,
                "" if loc is None else loc.function,
            )
            if key in seen:
                seen[key][1].append(pid)
            else:
                seen[key] = (finding, [pid])
    merged = [SharedFinding(f, tuple(pids)) for f, pids in seen.values()]
    merged.sort(key=lambda s: (-severity_rank(s.finding.severity), -len(s.pids), s.finding.code))
    return merged


@dataclass(frozen=True, slots=True)
class MergedView(View):
    """Every process's view as one: tasks and blocks of them all, the findings merged (a
    finding of several processes once, xN, with their pids), the lag of the worst process
    (``lag_pid``), whose snapshot stands in for whatever is not merged."""

    pids: tuple[int, ...] = ()
    lag_pid: int = 0
    hot_pids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # Location.key: pids


def merged(views: list[tuple[int, View]]) -> MergedView:
    """``views`` ((pid, view) of each process with one, at least one) as one view."""
    if not views:
        raise ValueError("no view to merge")
    worst_pid, worst = max(views, key=lambda pv: pv[1].snapshot.lag.p99 or -1.0)
    snaps = [v.snapshot for _, v in views]
    hot, hot_pids = _hot([(pid, v.snapshot) for pid, v in views])
    blocks = BlockView(
        count=sum(s.blocks.count for s in snaps),
        total=sum(s.blocks.total for s in snaps),
        max=max(s.blocks.max for s in snaps),
        recent_count=sum(s.blocks.recent_count for s in snaps),
        recent=_recent(snaps),
        hot=hot,
        durations=_sum_columns([s.blocks.durations for s in snaps]),
    )
    snapshot = replace(
        worst.snapshot,
        tasks=_tasks([s.tasks for s in snaps]),
        await_sites=_await_sites(snaps),
        blocks=blocks,
        routes=_routes(snaps),
        # Ended when every process has; the worst's end stands for them all.
        exited=worst.snapshot.exited if all(s.exited is not None for s in snaps) else None,
    )
    findings = []
    for s in shared([(pid, "", "", "", v) for pid, v in views]):
        f = s.finding
        if len(s.pids) > 1:
            f = replace(f, title=f"\u00d7{len(s.pids)} {f.title}")  # "times N"
        findings.append(replace(f, evidence={**f.evidence, "pids": ", ".join(map(str, s.pids))}))
    return MergedView(
        snapshot=snapshot,
        findings=tuple(findings),
        pids=tuple(pid for pid, _ in views),
        lag_pid=worst_pid,
        hot_pids=hot_pids,
    )


def _recent(snaps: list[Snapshot]) -> tuple[BlockRecord, ...]:
    """The latest blocks of every process, newest first, as many as the most of one. Tables key
    a block by its loop and start, which two forked processes could share: one is kept."""
    newest = sorted((b for s in snaps for b in s.blocks.recent), key=lambda b: -b.t)
    unique = {(b.loop, b.t): b for b in reversed(newest)}
    return tuple(reversed(unique.values()))[: max(len(s.blocks.recent) for s in snaps)]


def _sum_columns(rows: list[tuple[int, ...]]) -> tuple[int, ...]:
    width = max((len(r) for r in rows), default=0)
    return tuple(sum(r[i] for r in rows if i < len(r)) for i in range(width))


def _sum_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, n in c.items():
            out[k] = out.get(k, 0) + n
    return out


def _tasks(views: list[TaskView]) -> TaskView:
    # The trend: at each time any process counted its tasks, the latest count of each.
    times = sorted({t for v in views for t, _ in v.series})
    series = tuple(
        (t, sum(next((n for u, n in reversed(v.series) if u <= t), 0) for v in views))
        for t in times
    )
    created = _sum_counts([dict(v.top_created) for v in views])
    return TaskView(
        total=sum(v.total for v in views),
        by_state=_sum_counts([v.by_state for v in views]),
        by_kind=_sum_counts([v.by_kind for v in views]),
        created_per_s=sum(v.created_per_s for v in views),
        finished_per_s=sum(v.finished_per_s for v in views),
        failed_per_s=sum(v.failed_per_s for v in views),
        series=series,
        top_created=tuple(
            sorted(created.items(), key=lambda kv: -kv[1])[: max(len(v.top_created) for v in views)]
        ),
    )


def _await_sites(snaps: list[Snapshot]) -> tuple[AwaitSiteView, ...]:
    sites: dict[tuple[str, int, str, str], AwaitSiteView] = {}
    for s in snaps:
        for a in s.await_sites:
            key = (a.file, a.line, a.function, a.kind)
            had = sites.get(key)
            sites[key] = (
                a
                if had is None
                else replace(had, count=had.count + a.count, oldest=max(had.oldest, a.oldest))
            )
    return tuple(sorted(sites.values(), key=lambda a: -a.count))


def _routes(snaps: list[Snapshot]) -> tuple[RouteView, ...]:
    """Every process's routes, one per route: requests and blocks summed, the wait of the
    process with most of its requests pending."""
    routes: dict[str, RouteView] = {}
    for s in snaps:
        for r in s.routes:
            had = routes.get(r.route)
            if had is None:
                routes[r.route] = r
                continue
            top = r if r.in_flight > had.in_flight else had
            routes[r.route] = replace(
                top,
                in_flight=had.in_flight + r.in_flight,
                oldest=max(had.oldest, r.oldest),
                blocks=had.blocks + r.blocks,
                blocked=had.blocked + r.blocked,
            )
    return tuple(sorted(routes.values(), key=lambda r: (-r.in_flight, -r.blocked, r.route)))


def _hot(
    snaps: list[tuple[int, Snapshot]],
) -> tuple[tuple[HotFrame, ...], dict[str, tuple[int, ...]]]:
    """The hot frames of every process, one per location (its numbers summed), and the pids
    each was hot in."""
    frames: dict[str, HotFrame] = {}
    pids: dict[str, list[int]] = {}
    for pid, s in snaps:
        for h in s.blocks.hot:
            key = Location.of(h).key
            had = frames.get(key)
            pids.setdefault(key, []).append(pid)
            if had is None:
                frames[key] = h
                continue
            top = had if had.total >= h.total else h  # the stack and cause of the most time
            frames[key] = replace(
                top,
                blocks=had.blocks + h.blocks,
                samples=had.samples + h.samples,
                total=had.total + h.total,
                max=max(had.max, h.max),
                first_t=min(had.first_t, h.first_t),
                last_t=max(had.last_t, h.last_t),
            )
    hot = tuple(sorted(frames.values(), key=lambda h: -h.total))
    return hot, {k: tuple(p) for k, p in pids.items()}
