"""The commands that read recordings: ``replay``, ``report``, ``export``.

(``record -- COMMAND`` is ``run --headless --record FILE`` and ``record PID`` is ``attach
--headless --record FILE``: the command line builds their requests.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loopscope.commands._common import say
from loopscope.fleet.rows import SharedFinding, shared
from loopscope.record._format import RecordingError
from loopscope.record.reader import Recording
from loopscope.rules.finding import Finding, severity_rank
from loopscope.session import View
from loopscope.web import served


class CommandError(Exception):
    """Bad input: the message is printed and the exit code is 2."""


def _process(recording: Recording, pid: int | None) -> Recording:
    """``recording``, or the part of it of child process ``pid``; CommandError when it has no
    such process."""
    if pid is None:
        return recording
    pids = recording.pids()
    if pid not in pids:
        own = recording.info.meta.get("pid")
        if pid == own:
            return recording
        have = ", ".join(map(str, pids)) or "none"
        recording.close()
        raise CommandError(
            f"{recording.path} holds no child process {pid} (the child processes it holds: {have})"
        )
    return recording.of(pid)


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """``replay FILE``: the recording in the dashboard."""

    file: Path
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """``report FILE``: the findings of a recording, as text, JSON or an HTML page."""

    file: Path
    pid: int | None = None
    json: bool = False
    html: Path | None = None
    fail_on: str | None = None


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """``export FILE``: the recording as a Perfetto or speedscope trace."""

    file: Path
    format: str
    output: Path
    pid: int | None = None


# -- replay, report, export -------------------------------------------------------------------


def run_replay(request: ReplayRequest) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()) and not served():
        raise CommandError("replay: the dashboard needs a terminal; use 'loopscope report'")
    from loopscope.replay import ReplaySession
    from loopscope.tui.replay import make_replay_app

    recording = _process(Recording.open(request.file), request.pid)
    session = ReplaySession(recording)
    try:
        make_replay_app(session).run()
    finally:
        session.close()
    return 0


def run_report(request: ReportRequest) -> int:
    from rich.console import Console

    from loopscope import figures as figures_
    from loopscope import report
    from loopscope.replay import replay_all

    if request.html is not None:
        return _report_html(request, request.html)
    with Recording.open(request.file) as whole:
        recording = _process(whole, request.pid)
        # One pass for the view and the whole recording's loop figures (for `diff`).
        view, totals = figures_.read_recording(recording)
        info = recording.info
        damaged = recording.damaged
        children = [] if request.pid is not None else [(pid, whole.of(pid)) for pid in whole.pids()]
        views = [(pid, replay_all(child)) for pid, child in children]
        damaged = damaged or next((c.damaged for _, c in children if c.damaged), None)
    if damaged is not None:
        say(f"{request.file}: {damaged}; reporting what could be read")
    everything = [view, *(v for _, v in views)]
    merged = _across(view, views)
    if request.json:
        out = report.report_json(view)
        out["figures"] = figures_.figures(view.snapshot, totals.lag, totals.routes)
        if views:
            out["processes"] = [{"pid": pid, **report.report_json(v)} for pid, v in views]
            out["across_processes"] = [
                {"pids": list(m.pids), **m.finding.to_json()} for m in merged
            ]
        print(json.dumps(out, indent=2))
    else:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
        how = info.meta.get("how")
        status = "" if info.complete else " (the recorder stopped before the end)"
        console.print(
            f"{request.file}: {info.count} events over {info.duration:.1f} s"
            + (f" of {how}" if isinstance(how, str) and how else "")
            + status,
            markup=False,
        )
        console.print(report.summary_line(view), markup=False)
        console.print()
        console.print(report.render_findings(view))
        for pid, child in views:
            console.print()
            console.print(f"child process {pid}: {report.summary_line(child)}", markup=False)
            console.print(report.render_findings(child))
        if views:
            console.print()
            console.print(f"across {len(everything)} processes:", markup=False)
            for m in merged:
                times = f"\u00d7{len(m.pids)}" if len(m.pids) > 1 else "1"  # "times N"
                pids = ", ".join(map(str, m.pids))
                line = f"  {times:>3} {m.finding.severity} {m.finding.code} {m.finding.title}"
                console.print(f"{line} (pids {pids})", markup=False)
    return _failed(request, [f for v in everything for f in v.findings])


def _across(view: View, views: list[tuple[int, View]]) -> list[SharedFinding]:
    """The findings of the program and its children, alike ones merged with their pids."""
    main = view.snapshot.target.pid if view.snapshot.target is not None else 0
    rows: list[tuple[int, str, str, str, View | None]] = [
        (pid, "", "", "", v) for pid, v in [(main, view), *views]
    ]
    return shared(rows)


def _failed(request: ReportRequest, findings: Sequence[Finding]) -> int:
    """1 when ``--fail-on`` names a severity some finding reaches, else 0."""
    if request.fail_on is not None:
        worst = max((severity_rank(f.severity) for f in findings), default=-1)
        if worst >= severity_rank(request.fail_on):
            return 1
    return 0


def _report_html(request: ReportRequest, out: Path) -> int:
    from loopscope import figures, report_html

    if out.is_dir():
        raise CommandError(f"report: --html {out} is a directory")
    with Recording.open(request.file) as recording:
        view, totals = figures.read_recording(recording)
        info = recording.info
        damaged = recording.damaged
    notes = []
    if damaged is not None:
        say(f"{request.file}: {damaged}; reporting what could be read")
        notes.append(f"{damaged}; this report shows what could be read")
    if not info.complete:
        notes.append("the recorder stopped before the end")
    page = report_html.render(
        view,
        totals,
        source=request.file.name,
        recorded=f"{info.count} events over {info.duration:.1f} s",
        notes=notes,
    )
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise CommandError(f"report: cannot write {out}: {e.strerror}") from None
    say(f"wrote {out} ({len(view.findings)} findings); open it in a browser")
    return _failed(request, view.findings)


def run_export(request: ExportRequest) -> int:
    from loopscope.record import export

    out = Path(request.output)
    if out.is_dir():
        raise CommandError(f"export: -o {out} is a directory")
    with Recording.open(request.file) as whole:
        recording = _process(whole, request.pid)
        events = list(recording.events())
        damaged = recording.damaged
        # A Perfetto trace shows processes side by side: all of them, unless --pid picks one.
        children = [] if request.pid is not None or request.format != "perfetto" else whole.pids()
        others = [list(whole.of(pid).events()) for pid in children]
    start = min((e.t for evs in (events, *others) for e in evs if e.t == e.t), default=None)
    if damaged is not None:
        say(f"{request.file}: {damaged}; exporting what could be read")
    if request.format == "perfetto":
        data = export.perfetto(events, start=start if others else None)
        for child in others:
            data["traceEvents"].extend(export.perfetto(child, start=start)["traceEvents"])
        what = f"{sum(1 for e in data['traceEvents'] if e['ph'] == 'X')} blocks"
        hint = "open it in https://ui.perfetto.dev"
    else:
        data = export.speedscope(events, name=request.file.name)
        what = f"{sum(len(p['samples']) for p in data['profiles'])} blocking stacks"
        hint = "open it in https://www.speedscope.app"
    try:
        out.write_text(json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n")
    except OSError as e:
        raise CommandError(f"export: cannot write {out}: {e.strerror}") from None
    say(f"wrote {out} ({what}); {hint}")
    return 0


__all__ = [
    "CommandError",
    "ExportRequest",
    "RecordingError",
    "ReplayRequest",
    "ReportRequest",
    "run_export",
    "run_replay",
    "run_report",
]
