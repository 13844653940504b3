"""``loopscope attach`` and ``loopscope ps``: their options, and the request each builds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loopscope.attach._ladder import DEFAULT_TIMEOUT, METHODS
from loopscope.cli._options import UsageError, add_command, check_headless, check_terminal
from loopscope.commands.attach import AttachRequest, PsRequest
from loopscope.sources.pyspy import NATIVE_INTERVAL


def add_parsers(commands: Any) -> None:
    """Add ``attach`` and ``ps`` to the subcommands of the main parser."""
    attach_parser = add_command(
        commands,
        "attach",
        help="watch a running asyncio program, started without loopscope",
        description=(
            "Attach to a running Python process: connect to its loopscope agent, or inject one "
            "(nothing needs to be installed in the program's environment). Quitting detaches: "
            "the agent removes itself and the program goes on as before."
        ),
        examples=(
            "loopscope attach 4242",
            "loopscope attach --headless --duration 10 --json 4242",
            "loopscope attach --record service.lsrec 4242",
            "loopscope attach --method gdb 4242",
            "loopscope ps",
        ),
    )
    attach_parser.add_argument("pid", metavar="PID", type=int, help="the process to attach to")
    attach_parser.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="how to inject the agent (default: auto, the first that works of "
        "remote-exec, ptrace, gdb; pyinjector only when asked for: it can deadlock a busy "
        "program, see docs/attach.md)",
    )
    attach_parser.add_argument(
        "--no-inject",
        action="store_true",
        help="never inject an agent: connect to one already listening, else observe the "
        "program from outside with py-spy (its loop thread) and, if it runs aiomonitor, its "
        "HTTP API (its tasks); exit code 1 when neither can be used, with the reason "
        "(LOOPSCOPE_PYSPY names the py-spy binary to use)",
    )
    attach_parser.add_argument(
        "--no-pyspy",
        action="store_true",
        help="do not sample the program from outside with py-spy, nor beside the agent with "
        "its own interpreter (these name the code of blocks the agent cannot sample: C calls "
        "holding the GIL)",
    )
    attach_parser.add_argument(
        "--native",
        action="store_true",
        help="py-spy also reads C frames; it must then stop the program for each sample "
        f"(about 10-20 ms, {1 / NATIVE_INTERVAL:g} times a second): for a short look only",
    )
    attach_parser.add_argument(
        "--keep-agent",
        action="store_true",
        help="leave the agent listening in the program when loopscope quits",
    )
    attach_parser.add_argument(
        "--timeout",
        metavar="S",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="how long the program may take to reach a safe point where the agent can start "
        f"(default: {DEFAULT_TIMEOUT:g} s)",
    )
    attach_parser.add_argument(
        "--headless",
        action="store_true",
        help="no terminal UI: print a summary line every second, then the findings",
    )
    attach_parser.add_argument(
        "--duration",
        metavar="S",
        type=float,
        help="with --headless: detach after S seconds (default: when the program exits, "
        "or on Ctrl-C)",
    )
    attach_parser.add_argument(
        "--json",
        action="store_true",
        help="with --headless: print only the findings as one JSON object on stdout",
    )
    attach_parser.add_argument(
        "--children",
        action="store_true",
        help="also follow the process's Python children (a supervisor's workers), each "
        "attached when it appears: 'p' in the dashboard lists them, --headless reports on each",
    )
    attach_parser.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        help="record everything loopscope sees to FILE, for 'loopscope replay', 'report' "
        "and 'export' (an older recording there is replaced; any other file is left alone)",
    )
    ps = commands.add_parser(
        "ps",
        help="list the Python processes loopscope can attach to",
        description="List the Python processes this user may attach to: pid, Python version, "
        "whether asyncio is imported, whether a loopscope agent listens, the TCP ports "
        "the process listens on (aiomonitor's, if it runs one), and the command line.",
    )
    ps.add_argument("--json", action="store_true", help="print a JSON array instead of a table")


def request(ns: argparse.Namespace) -> AttachRequest | PsRequest:
    """The request of ``attach`` or ``ps``; UsageError when the options are not right."""
    if ns.command == "ps":
        return PsRequest(ns.json)
    request = AttachRequest(
        ns.pid,
        method=ns.method,
        no_inject=ns.no_inject,
        keep_agent=ns.keep_agent,
        timeout=ns.timeout,
        headless=ns.headless,
        duration=ns.duration,
        json=ns.json,
        children=ns.children,
        record=ns.record,
        no_pyspy=ns.no_pyspy,
        native=ns.native,
    )
    check(request)
    return request


def check(ns: Any) -> None:
    """The checks of ``attach``'s options, before anything is attached to."""
    check_headless(ns)
    if not ns.timeout > 0:
        raise UsageError(f"{ns.command}: --timeout must be a positive number of seconds")
    check_terminal(ns)
