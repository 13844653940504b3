"""The commands that make and read recordings: ``record``, ``replay``, ``report``, ``export``.

``record -- COMMAND`` is ``run --headless --record FILE`` and ``record PID`` is ``attach --headless
--record FILE``; the others read a recording.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loopscope.commands._common import say
from loopscope.record._format import RecordingError
from loopscope.record.reader import Recording
from loopscope.rules.finding import SEVERITIES, Finding, severity_rank
from loopscope.web import served

COMMANDS = ("record", "replay", "report", "export")


class CommandError(Exception):
    """Bad input: the message is printed and the exit code is 2."""


def add_parsers(commands: Any) -> None:
    """Add the recording commands to the command line's subparsers."""
    record = commands.add_parser(
        "record",
        help="record a running process, or a program loopscope starts, without a UI",
        usage="loopscope record (PID | -- COMMAND...) -o FILE [--duration S] [--json]",
        description=textwrap.fill(
            "Record everything loopscope sees to FILE for 'loopscope replay', 'report' and "
            "'export', without a UI: a summary line a second, then the findings. 'record PID' "
            "attaches to a running process as 'loopscope attach --headless' does and detaches "
            "at the end (the program goes on). 'record -- COMMAND' starts a program as "
            "'loopscope run --headless' does: COMMAND is 'python SCRIPT ARGS', 'python -m "
            "MODULE ARGS' or 'SCRIPT.py ARGS'; the python named runs the program.",
            width=78,
        ),
        epilog="examples:\n"
        "  loopscope record 4242 -o service.lsrec --duration 60\n"
        "  loopscope record -o app.lsrec --duration 60 -- python app.py --port 8080",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    record.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="FILE",
        help="the recording to write (an older recording there is replaced; any other file is "
        "left alone)",
    )
    record.add_argument(
        "--duration",
        metavar="S",
        type=float,
        help="stop after S seconds: detach from PID, or stop COMMAND (default: when the "
        "program exits, or on Ctrl-C)",
    )
    record.add_argument(
        "--json",
        action="store_true",
        help="print only the findings as one JSON object on stdout (the summary lines go to "
        "stderr)",
    )
    record.add_argument(
        "program",
        nargs="*",
        metavar="PID | COMMAND",
        help="the running process to attach to, or the program to run (after --)",
    )

    replay = commands.add_parser(
        "replay",
        help="replay a recording in the dashboard",
        description="Open a recording in the dashboard, with a timeline: play/pause, speed, "
        "step and seek. At each moment it shows what the live dashboard showed then.",
    )
    replay.add_argument("file", type=Path, metavar="FILE")
    replay.add_argument("--pid", type=int, metavar="PID", help=_PID_HELP)

    report = commands.add_parser(
        "report",
        help="print the findings of a recording",
        description="Print the findings of a recording: the same the live session reached.",
    )
    report.add_argument("file", type=Path, metavar="FILE")
    report.add_argument(
        "--pid",
        type=int,
        metavar="PID",
        help=_PID_HELP + " (default: the program, then each of its child processes recorded)",
    )
    output = report.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print one JSON object (target, duration_s, findings)"
    )
    output.add_argument(
        "--html",
        type=Path,
        metavar="OUT",
        help="write one self-contained HTML page to OUT: the findings, the lag over time, the "
        "blocking stacks as a flame graph (opens offline; no script, no external resource)",
    )
    report.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        metavar="SEVERITY",
        help="exit with status 1 when a finding of SEVERITY or worse exists "
        f"({', '.join(SEVERITIES)}), for CI",
    )

    export = commands.add_parser(
        "export",
        help="export a recording to Perfetto or speedscope",
        description="Write a recording as a trace: 'perfetto' (Trace Event JSON for "
        "ui.perfetto.dev or chrome://tracing: blocks as slices on the loop's thread, lag and "
        "task counts as counters) or 'speedscope' (the stacks sampled while the loop was "
        "blocked, for speedscope.app).",
    )
    export.add_argument("file", type=Path, metavar="FILE")
    export.add_argument("--format", required=True, choices=("perfetto", "speedscope"))
    export.add_argument("-o", "--output", required=True, type=Path, metavar="OUT")
    export.add_argument("--pid", type=int, metavar="PID", help=_PID_HELP)


_PID_HELP = (
    "a child process of the program, followed and recorded with it (see 'loopscope report "
    "FILE' for their pids; default: the program's own process, and for export --format "
    "perfetto every process, side by side)"
)


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
            f"{recording.path} holds no child process {pid} (the child processes it holds: "
            f"{have})"
        )
    return recording.of(pid)


def main(ns: argparse.Namespace) -> int:
    """Run ``replay``, ``report`` or ``export``; RecordingError and CommandError reach the
    caller. (``record`` is ``run`` or ``attach``, recording: `loopscope.cli` builds it.)"""
    if ns.command == "replay":
        return _replay(ns)
    if ns.command == "report":
        return _report(ns)
    return _export(ns)


# -- replay, report, export -------------------------------------------------------------------


def _replay(ns: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()) and not served():
        raise CommandError("replay: the dashboard needs a terminal; use 'loopscope report'")
    from loopscope.replay import ReplaySession
    from loopscope.tui.replay import make_replay_app

    recording = _process(Recording.open(ns.file), ns.pid)
    session = ReplaySession(recording)
    try:
        make_replay_app(session).run()
    finally:
        session.close()
    return 0


def _report(ns: argparse.Namespace) -> int:
    from rich.console import Console

    from loopscope import report
    from loopscope.replay import replay_all

    if ns.html is not None:
        return _report_html(ns)
    with Recording.open(ns.file) as whole:
        recording = _process(whole, ns.pid)
        view = replay_all(recording)
        info = recording.info
        damaged = recording.damaged
        children = [] if ns.pid is not None else [(pid, whole.of(pid)) for pid in whole.pids()]
        views = [(pid, replay_all(child)) for pid, child in children]
        damaged = damaged or next((c.damaged for _, c in children if c.damaged), None)
    if damaged is not None:
        say(f"{ns.file}: {damaged}; reporting what could be read")
    everything = [view, *(v for _, v in views)]
    if ns.json:
        out = report.report_json(view)
        if views:
            out["processes"] = [{"pid": pid, **report.report_json(v)} for pid, v in views]
        print(json.dumps(out, indent=2))
    else:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
        how = info.meta.get("how")
        status = "" if info.complete else " (the recorder stopped before the end)"
        console.print(
            f"{ns.file}: {info.count} events over {info.duration:.1f} s"
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
    return _failed(ns, [f for v in everything for f in v.findings])


def _failed(ns: argparse.Namespace, findings: Sequence[Finding]) -> int:
    """1 when ``--fail-on`` names a severity some finding reaches, else 0."""
    if ns.fail_on is not None:
        worst = max((severity_rank(f.severity) for f in findings), default=-1)
        if worst >= severity_rank(ns.fail_on):
            return 1
    return 0


def _report_html(ns: argparse.Namespace) -> int:
    from loopscope import figures, report_html

    out = Path(ns.html)
    if out.is_dir():
        raise CommandError(f"report: --html {out} is a directory")
    with Recording.open(ns.file) as recording:
        view, totals = figures.read_recording(recording)
        info = recording.info
        damaged = recording.damaged
    notes = []
    if damaged is not None:
        say(f"{ns.file}: {damaged}; reporting what could be read")
        notes.append(f"{damaged}; this report shows what could be read")
    if not info.complete:
        notes.append("the recorder stopped before the end")
    page = report_html.render(
        view,
        totals,
        source=ns.file.name,
        recorded=f"{info.count} events over {info.duration:.1f} s",
        notes=notes,
    )
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise CommandError(f"report: cannot write {out}: {e.strerror}") from None
    say(f"wrote {out} ({len(view.findings)} findings); open it in a browser")
    return _failed(ns, view.findings)


def _export(ns: argparse.Namespace) -> int:
    from loopscope.record import export

    out = Path(ns.output)
    if out.is_dir():
        raise CommandError(f"export: -o {out} is a directory")
    with Recording.open(ns.file) as whole:
        recording = _process(whole, ns.pid)
        events = list(recording.events())
        damaged = recording.damaged
        # A Perfetto trace shows processes side by side: all of them, unless --pid picks one.
        children = [] if ns.pid is not None or ns.format != "perfetto" else whole.pids()
        others = [list(whole.of(pid).events()) for pid in children]
    start = min((e.t for evs in (events, *others) for e in evs if e.t == e.t), default=None)
    if damaged is not None:
        say(f"{ns.file}: {damaged}; exporting what could be read")
    if ns.format == "perfetto":
        data = export.perfetto(events, start=start if others else None)
        for child in others:
            data["traceEvents"].extend(export.perfetto(child, start=start)["traceEvents"])
        what = f"{sum(1 for e in data['traceEvents'] if e['ph'] == 'X')} blocks"
        hint = "open it in https://ui.perfetto.dev"
    else:
        data = export.speedscope(events, name=ns.file.name)
        what = f"{sum(len(p['samples']) for p in data['profiles'])} blocking stacks"
        hint = "open it in https://www.speedscope.app"
    try:
        out.write_text(json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n")
    except OSError as e:
        raise CommandError(f"export: cannot write {out}: {e.strerror}") from None
    say(f"wrote {out} ({what}); {hint}")
    return 0


__all__ = ["COMMANDS", "CommandError", "RecordingError", "add_parsers", "main"]
