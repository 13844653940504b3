"""What each panel says, as pure functions of a snapshot: Rich text and table rows, no app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from loopscope.model.location import Location
from loopscope.model.snapshot import (
    AwaitSiteView,
    ExternalView,
    HotFrame,
    LagView,
    MonitorView,
    RouteView,
    Snapshot,
    TaskView,
)
from loopscope.rules.finding import Finding
from loopscope.tui._charts import LAG_BAD, LAG_WARN
from loopscope.tui._format import (
    DASH,
    count,
    duration,
    location,
    loop_class,
    percent,
    rate,
)

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
CAUSE_LABEL = {
    "cpu": "cpu",
    "sleep": "sleep",
    "io": "i/o",
    "gil": "gil",
    "gc": "gc",
    "machine": "no core",
    "unknown": "?",
}
SOURCE_STYLE = {"live": "green", "unavailable": "dim", "lost": "red", "ended": "yellow"}

Row = tuple[str, tuple[Text, ...]]  # (row key, cells in full: the table fits them)


def _lines(lines: Sequence[Text]) -> Text:
    """Lines that are cropped with an ellipsis, never wrapped: panels have fixed heights."""
    out = Text("\n").join(lines)
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out


def cwd_of(snapshot: Snapshot | None) -> str:
    """The target's working directory, which its paths are shown relative to."""
    return snapshot.target.cwd if snapshot is not None and snapshot.target is not None else ""


# ---------------------------------------------------------------------------------------------
# Header


def header(
    snapshot: Snapshot | None,
    *,
    paused: bool,
    how: str,
    log_path: str | None,
    processes: tuple[int, ...] = (),
) -> Text:
    """The lines above the panels, most important first, since a short terminal shows fewer:
    the target's fate once it has exited, who it is, how it is observed, the latest notice.
    ``processes``: the pids of a view of several processes together."""
    lines: list[Text] = []
    if snapshot is not None and snapshot.exited is not None:
        lines.append(_exited(snapshot))

    first = Text()
    if paused:
        first.append(" PAUSED ", style="bold black on yellow")
        first.append(" ")
    if processes:
        first.append(f"all {len(processes)} processes", style="bold")
        first.append(f" · pids {', '.join(map(str, processes))}", style="dim")
    elif snapshot is None or snapshot.target is None:
        first.append("waiting for the target…", style="dim")
    else:
        target = snapshot.target
        first.append(f"pid {target.pid}", style="bold")
        first.append(f" · Python {target.python}")
        if snapshot.loops:
            first.append(" · ")
            first.append_text(_loops(snapshot))
        first.append(f" · {duration(snapshot.duration_s)}", style="dim")
    lines.append(first)

    second = Text()
    for source in snapshot.sources if snapshot is not None else ():
        second.append(source.name)
        if source.state == "live" and source.detail.startswith("on :"):
            second.append(f" {source.detail}", style=SOURCE_STYLE["live"])  # aiomonitor on :PORT
        else:
            second.append(f" {source.state}", style=SOURCE_STYLE.get(source.state, ""))
            if source.detail:
                second.append(f" ({source.detail})", style="dim")
        second.append(" · ")
    if log_path:
        second.append("output ", style="dim")
        second.append(log_path)
        second.append(" · ")
    if how:
        second.append(how, style="dim")
    lines.append(_strip_separator(second))

    if snapshot is not None and snapshot.notices:
        notice = Text("⚠ ", style="yellow")
        notice.append(snapshot.notices[-1])
        more = len(snapshot.notices) - 1
        if more:
            notice.append(f"  (+{more} earlier)", style="dim")
        lines.append(notice)
    return _lines(lines)


def _exited(snapshot: Snapshot) -> Text:
    exited = snapshot.exited
    assert exited is not None
    style = "bold black on green" if exited.exit_code == 0 else "bold white on red"
    line = Text(f" {exited.describe()} ", style=style)
    line.append("  the data stays on screen", style="dim")
    return line


def _strip_separator(text: Text) -> Text:
    return text[: -len(" · ")] if text.plain.endswith(" · ") else text


def _loops(snapshot: Snapshot) -> Text:
    out = Text()
    for i, loop in enumerate(snapshot.loops):
        if i:
            out.append(", ")
        out.append(loop_class(loop.loop_class), style="bold")
        out.append(f" on {loop.thread_name}")
        if not loop.running:
            out.append(" (stopped)", style="dim")
    return out


# ---------------------------------------------------------------------------------------------
# Lag and tasks


def lag_points(lag: LagView) -> list[tuple[float, float]]:
    """What the lag chart draws: the worst lag of each window, which is what a block raises."""
    return [(p.t, p.max) for p in lag.series]


def lag_stats(lag: LagView) -> Text:
    if lag.heartbeats == 0:
        return Text("no lag measured yet", style="dim")
    first = Text()
    first.append("p50 ", style="dim")
    first.append(duration(lag.p50), style=_lag_value_style(lag.p50))
    first.append("  p99 ", style="dim")
    first.append(duration(lag.p99), style=_lag_value_style(lag.p99))
    first.append("  max ", style="dim")
    first.append(duration(lag.max), style=_lag_value_style(lag.max))
    second = Text()
    second.append("session max ", style="dim")
    second.append(duration(lag.session_max), style=_lag_value_style(lag.session_max))
    if lag.busy is not None:
        second.append("  busy ", style="dim")
        second.append(percent(lag.busy), style="red" if lag.busy >= 0.9 else "")
    if lag.ready is not None:
        second.append("  ready ", style="dim")
        second.append(count(lag.ready))
    return _lines([first, second])


def external_stats(external: ExternalView, cwd: str) -> Text:
    """Without the agent's lag: the loop thread's busy share and where it was busy, from the
    samples py-spy took."""
    first = Text()
    first.append("busy ", style="dim")
    busy = external.busy
    first.append(
        percent(busy) if busy is not None else DASH, style="red" if (busy or 0) >= 0.9 else ""
    )
    first.append("  on CPU ", style="dim")
    first.append(percent(external.on_cpu) if external.on_cpu is not None else DASH)
    first.append(f"  ({external.source}, {count(external.samples)} samples)", style="dim")
    lines = [first]
    if external.hot:
        hot = Text("hot: ", style="dim")
        for i, frame in enumerate(external.hot[:3]):
            if i:
                hot.append(" · ", style="dim")
            hot.append(frame.function.rsplit(".", 1)[-1])
            hot.append(f" {location(frame.file, frame.line, cwd)}", style="dim")
            hot.append(f" {percent(frame.share)}", style="bold")
        lines.append(hot)
    return _lines(lines)


def _lag_value_style(seconds: float | None) -> str:
    if seconds is None:
        return "dim"
    if seconds >= LAG_BAD:
        return "bold red"
    if seconds >= LAG_WARN:
        return "yellow"
    return "green"


def task_points(tasks: TaskView) -> list[tuple[float, float]]:
    return [(t, float(n)) for t, n in tasks.series]


def tasks_summary(tasks: TaskView, trend: RenderableType) -> Group:
    """Live tasks and their ``trend``, tasks by state beside the churn rates; the panel crops
    the lines that do not fit, so the most telling come first."""
    head = Table.grid(padding=(0, 1), expand=True)
    _label_columns(head)
    head.add_column(ratio=1)
    head.add_row("live", Text(count(tasks.total), style="bold"), trend)
    states = Table.grid(padding=(0, 1))
    _label_columns(states)
    states.add_column(style="dim", no_wrap=True)
    states.add_column(justify="right", no_wrap=True)
    rates = [
        ("created", rate(tasks.created_per_s), ""),
        ("finished", rate(tasks.finished_per_s), ""),
        ("failed", rate(tasks.failed_per_s), "red" if tasks.failed_per_s else ""),
    ]
    for state, (label, value, style) in zip(("waiting", "ready", "running"), rates, strict=True):
        states.add_row(
            state, count(tasks.by_state.get(state, 0)), f" {label}", Text(value, style=style)
        )
    return Group(head, states)


def _label_columns(grid: Table) -> None:
    # The same widths in both grids keep the numbers of the first rows in one column.
    grid.add_column(style="dim", no_wrap=True, width=7)
    grid.add_column(justify="right", no_wrap=True, width=6)


def tasks_detail(tasks: TaskView, monitor: MonitorView | None = None) -> Text:
    lines: list[Text] = []
    if monitor is not None:
        # aiomonitor tells the coroutines, not the states or what the tasks wait on.
        live = Text("running: ", style="dim")
        live.append_text(_pairs(*((g.coroutine, g.count) for g in monitor.live[:3])))
        lines.append(live)
        ended = Text(f"terminated ({count(monitor.terminated_total)}): ", style="dim")
        ended.append_text(_pairs(*((g.coroutine, g.count) for g in monitor.terminated[:3])))
        lines.append(ended)
    kinds = sorted(((k, n) for k, n in tasks.by_kind.items() if n), key=lambda kn: (-kn[1], kn[0]))
    if kinds:
        waits = Text("waiting on: ", style="dim")
        waits.append_text(_pairs(*kinds))
        lines.append(waits)
    if tasks.top_created:
        top = Text("created by: ", style="dim")
        top.append_text(_pairs(*tasks.top_created[:3]))
        lines.append(top)
    return _lines(lines)


def _pairs(*pairs: tuple[str, int]) -> Text:
    out = Text()
    for i, (name, n) in enumerate(pairs):
        if i:
            out.append(" · ", style="dim")
        out.append(f"{name} ")
        out.append(count(n), style="bold")
    return out


# ---------------------------------------------------------------------------------------------
# Tables: (key, cells) rows, most important first


def await_rows(sites: Sequence[AwaitSiteView], cwd: str, limit: int) -> list[Row]:
    return [
        (
            f"{Location.of(s).key}:{s.kind}",
            (
                Text(s.function),
                Text(location(s.file, s.line, cwd)),
                Text(s.kind),
                _num(count(s.count)),
                _wait(s.oldest),
            ),
        )
        for s in sites[:limit]
    ]


def hot_rows(hot: Sequence[HotFrame], cwd: str, limit: int) -> list[Row]:
    return [
        (
            Location.of(h).key,
            (
                Text(h.function or "(no stack sampled)"),
                Text(location(h.file, h.line, cwd) if h.file else DASH),
                _num(count(h.blocks)),
                _num(duration(h.total), "bold"),
                _num(duration(h.max), "red" if h.max >= 0.1 else ""),
                Text(CAUSE_LABEL.get(h.cause, h.cause)),
            ),
        )
        for h in hot[:limit]
    ]


def route_rows(routes: Sequence[RouteView], limit: int) -> list[Row]:
    return [
        (
            r.route,
            (
                Text(r.route),
                _num(count(r.in_flight)) if r.in_flight else _num(DASH, "dim"),
                Text(r.site.function) if r.site is not None else Text(DASH, style="dim"),
                Text(r.kind),
                _num(count(r.blocks)) if r.blocks else _num(DASH, "dim"),
                _num(duration(r.blocked), "bold") if r.blocks else _num(DASH, "dim"),
            ),
        )
        for r in routes[:limit]
    ]


def finding_key(finding: Finding) -> str:
    loc = finding.location
    where = "" if loc is None else loc.key
    return f"{finding.code}:{where}:{finding.title if loc is None else ''}"


def finding_rows(findings: Sequence[Finding], limit: int) -> list[Row]:
    return [
        (
            finding_key(f),
            (
                Text(f.severity, style=SEVERITY_STYLE.get(f.severity, "")),
                Text(f.code),
                Text(f.title),
            ),
        )
        for f in findings[:limit]
    ]


def _wait(seconds: float) -> Text:
    # The census sees a wait only at its passes: one first seen at the latest pass has no age yet.
    return _num(duration(seconds)) if seconds > 0 else _num("new", style="dim")


def _num(text: str, style: str = "") -> Text:
    return Text(text, style=style, justify="right")


# ---------------------------------------------------------------------------------------------
# A finding in full


def finding_detail(finding: Finding | None, snapshot: Snapshot | None) -> RenderableType:
    if finding is None:
        return Text(
            "Nothing found yet. Findings appear here as the rules detect problems; "
            "select one to see its evidence and fix.",
            style="dim",
        )
    cwd = cwd_of(snapshot)
    started = snapshot.started if snapshot is not None else None
    title = Text()
    title.append(f"{finding.severity.upper()} ", style=SEVERITY_STYLE.get(finding.severity, ""))
    title.append(f"{finding.code} ", style="bold")
    title.append(f"({finding.family})  ", style="dim")
    title.append(finding.title, style="bold")
    parts: list[RenderableType] = [title]
    if finding.location is not None:
        loc = finding.location
        where = Text("at ", style="dim")
        where.append(location(loc.file, loc.line, cwd))
        where.append(" in ", style="dim")
        where.append(loc.function)
        parts.append(where)
    if finding.evidence:
        parts.append(Text("\nEvidence", style="bold underline"))
        parts.append(_evidence(finding.evidence, started))
    if finding.fix:
        parts.append(Text("\nFix", style="bold underline"))
        parts.append(Text(finding.fix))
    return Group(*parts)


def _evidence(evidence: dict[str, Any], started: float | None) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    for key, value in evidence.items():
        grid.add_row(_evidence_label(key), _evidence_value(key, value, started))
    return grid


def _evidence_label(key: str) -> str:
    """``total_s`` -> ``total``: the unit shows in the value."""
    for suffix in ("_s", "_t"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key.replace("_", " ")


def _evidence_value(key: str, value: Any, started: float | None) -> Text:
    if value is None:
        return Text(DASH)
    if isinstance(value, (list, tuple)):
        return Text("\n".join(str(v) for v in value) or DASH)
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (int, float)):
        if key.endswith("_t") and started is not None:
            # A wall-clock time reads best relative to the start of the session.
            return Text(f"{duration(value - started)} into the session")
        if key.endswith("_s"):
            return Text(duration(float(value)))
        if "share" in key:
            return Text(percent(float(value)))
        return Text(f"{value:,}" if isinstance(value, int) else f"{value:g}")
    return Text(str(value))
