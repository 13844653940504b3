"""``loopscope record``, ``replay``, ``report`` and ``export``: their options, and the request
each builds. ``record -- COMMAND`` is ``run --headless --record FILE`` and ``record PID`` is
``attach --headless --record FILE``."""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path
from typing import Any

from loopscope.cli import attach as attach_cli
from loopscope.cli import run as run_cli
from loopscope.cli._options import UsageError, add_command
from loopscope.commands.attach import AttachRequest
from loopscope.commands.record import ExportRequest, ReplayRequest, ReportRequest
from loopscope.commands.run import RunRequest
from loopscope.rules.finding import SEVERITIES

_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)*)?")


def add_parsers(commands: Any) -> None:
    """Add the recording commands to the command line's subparsers."""
    record = add_command(
        commands,
        "record",
        help="record a running process, or a program loopscope starts, without a UI",
        usage="loopscope record (PID | -- COMMAND...) -o FILE [--duration S] [--json]",
        description=(
            "Record everything loopscope sees to FILE for 'loopscope replay', 'report' and "
            "'export', without a UI: a summary line a second, then the findings. 'record PID' "
            "attaches to a running process as 'loopscope attach --headless' does and detaches "
            "at the end (the program goes on). 'record -- COMMAND' starts a program as "
            "'loopscope run --headless' does: COMMAND is 'python SCRIPT ARGS', 'python -m "
            "MODULE ARGS' or 'SCRIPT.py ARGS'; the python named runs the program."
        ),
        examples=(
            "loopscope record 4242 -o service.lsrec --duration 60",
            "loopscope record -o app.lsrec --duration 60 -- python app.py --port 8080",
        ),
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


Request = RunRequest | AttachRequest | ReplayRequest | ReportRequest | ExportRequest


def request(ns: argparse.Namespace) -> Request:
    """The request of a recording command; UsageError when the command is not right."""
    if ns.command == "record":
        return _record(ns)
    if ns.command == "replay":
        return ReplayRequest(ns.file, ns.pid)
    if ns.command == "report":
        return ReportRequest(ns.file, ns.pid, ns.json, ns.html, ns.fail_on)
    return ExportRequest(ns.file, ns.format, ns.output, ns.pid)


def _record(ns: argparse.Namespace) -> RunRequest | AttachRequest:
    program = list(ns.program)
    if not program:
        raise UsageError(
            "record: give the PID of a running process, or the program to run after --, "
            "e.g. -- python app.py"
        )
    if len(program) == 1 and program[0].isdigit():
        return _record_pid(ns, int(program[0]))
    python, rest = None, program
    if _PYTHON_NAME.fullmatch(os.path.basename(program[0])):
        python, rest = program[0], program[1:]
        if shutil.which(python) is None:
            raise UsageError(f"record: no such interpreter: {python}")
    elif not program[0].endswith(".py"):
        raise UsageError(
            f"record: {program[0]} is not Python: COMMAND is 'python SCRIPT ARGS', "
            "'python -m MODULE ARGS' or 'SCRIPT.py ARGS'"
        )
    script = module = None
    if rest and rest[0] == "-m":
        if len(rest) < 2:
            raise UsageError("record: -m needs a MODULE")
        module, args = rest[1], rest[2:]
    elif rest and not rest[0].startswith("-"):
        script, args = rest[0], rest[1:]
    else:
        what = f"the option {rest[0]}" if rest else "nothing"
        raise UsageError(
            f"record: python is followed by {what}; give a SCRIPT or -m MODULE (other "
            "interpreter options are not supported)"
        )
    run_ns = argparse.Namespace(
        command="record",
        python=python,
        script=script,
        module=module,
        args=args,
        headless=True,
        duration=ns.duration,
        json=ns.json,
        log=None,
        record=ns.output,
    )
    return run_cli.request_from_args(run_ns)


def _record_pid(ns: argparse.Namespace, pid: int) -> AttachRequest:
    """``attach --headless --record FILE PID``, with attach's defaults."""
    request = AttachRequest(
        pid,
        command="record",  # for messages
        headless=True,
        duration=ns.duration,
        json=ns.json,
        record=ns.output,
    )
    attach_cli.check(request)
    return request
