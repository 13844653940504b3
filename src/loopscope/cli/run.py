"""``loopscope run`` and ``loopscope demo``: their options, and the request each builds."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any

from loopscope.cli._options import Option, UsageError, add_command, check_headless, check_terminal
from loopscope.commands.run import ListDemos, RunRequest
from loopscope.demos import catalog
from loopscope.record.writer import check_target
from loopscope.runner import ProgramSpec, check_python

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_PYTHON = Option(
    ("--python",),
    {
        "metavar": "PATH",
        "help": "the interpreter to run the program with, e.g. the program's own venv "
        "(CPython 3.10 or newer; default: the one loopscope runs on)",
    },
)
_HEADLESS = Option(
    ("--headless",),
    {
        "action": "store_true",
        "help": "no terminal UI: print a summary line every second, then the findings",
    },
)
_DURATION = Option(
    ("--duration",),
    {
        "metavar": "S",
        "type": float,
        "help": "with --headless: stop the program S seconds after its agent first answers "
        "(default: when it exits, or on Ctrl-C)",
    },
)
_JSON = Option(
    ("--json",),
    {
        "action": "store_true",
        "help": "with --headless: print only the findings as one JSON object on stdout "
        "(the summary lines go to stderr)",
    },
)
_LOG = Option(
    ("--log",),
    {
        "metavar": "FILE",
        "type": Path,
        "help": "write the program's stdout and stderr to FILE "
        "(default: a new file in $XDG_STATE_HOME/loopscope/logs)",
    },
)
_RECORD = Option(
    ("--record",),
    {
        "metavar": "FILE",
        "type": Path,
        "help": "record everything loopscope sees to FILE, for 'loopscope replay', 'report' "
        "and 'export'",
    },
)
_PYSPY = Option(
    ("--pyspy",),
    {
        "action": "store_true",
        "help": "also sample the program with py-spy, which names the code of blocks the "
        "agent cannot sample (C calls holding the GIL); py-spy takes a few percent of a core",
    },
)
_NO_CHILDREN = Option(
    ("--no-children",),
    {
        "action": "store_true",
        "help": "do not follow the program's Python child processes (by default each one "
        "is attached when it appears: 'p' in the dashboard lists them, --headless reports "
        "on each)",
    },
)
_RUN_OPTIONS = (_PYTHON, _HEADLESS, _DURATION, _JSON, _LOG, _RECORD, _PYSPY, _NO_CHILDREN)
_DEMO_OPTIONS = (_HEADLESS, _DURATION, _JSON, _RECORD)


def add_parsers(commands: Any) -> None:
    """Add ``run`` and ``demo`` to the subcommands of the main parser."""
    run = add_command(
        commands,
        "run",
        help="start a program under loopscope and watch it",
        usage="loopscope run [options] (SCRIPT [ARGS...] | -m MODULE [ARGS...])",
        description=(
            "Start an asyncio program in a child process with loopscope's agent installed "
            "before its event loop starts, and watch it live. The program runs as 'python "
            "SCRIPT ARGS' or 'python -m MODULE ARGS' would run it; its output goes to a log "
            "file. Everything after SCRIPT or -m MODULE belongs to the program."
        ),
        examples=(
            "loopscope run app.py --port 8080",
            "loopscope run -m myservice.main",
            "loopscope run --python .venv/bin/python --headless --duration 30 --json app.py",
        ),
    )
    for option in _RUN_OPTIONS:
        run.add_argument(*option.flags, **option.kwargs)
    program = run.add_argument_group("the program")
    program.add_argument("script", nargs="?", metavar="SCRIPT", help="a Python file to run")
    program.add_argument(
        "-m", dest="module", metavar="MODULE", help="a module to run, as python -m"
    )
    program.add_argument("args", nargs="*", metavar="ARGS", help="the program's arguments")

    demo = add_command(
        commands,
        "demo",
        help="watch a bundled demo service under load, with a bug that shows only under load",
        usage="loopscope demo [NAME] [--fixed] [--load N] [options]  |  loopscope demo --list",
        description=(
            "Run one of loopscope's demos: an aiohttp service on 127.0.0.1 (with aiomonitor) "
            "and its own load generator, whose handlers block the loop, race, recompute the "
            "same thing, queue on a lock, flood the executor or pause for the GC. --fixed runs "
            "the corrected handlers under the same load. The load generator's latency and "
            "damage figures go to the program's log; loopscope prints the last ones at the end."
        ),
    )
    demo.add_argument(
        "name", nargs="?", metavar="NAME", help=f"the demo (default: {catalog.DEFAULT})"
    )
    demo.add_argument("--list", action="store_true", help="list the demos and exit")
    demo.add_argument(
        "--fixed", action="store_true", help="run the corrected handlers, under the same load"
    )
    demo.add_argument(
        "--load", type=int, metavar="N", help="concurrent clients (default: the demo's own)"
    )
    for option in _DEMO_OPTIONS:
        demo.add_argument(*option.flags, **option.kwargs)


def request(ns: argparse.Namespace) -> RunRequest | ListDemos:
    """The request of ``run`` or ``demo``; UsageError when the command is not right."""
    if ns.command == "demo" and ns.list:
        return ListDemos()
    return request_from_args(ns)


def split_program(
    argv: list[str],
) -> tuple[list[str], str | None, str | None, list[str]]:
    """(loopscope's options, script, module, the program's arguments)."""
    takes_value = {flag for o in _RUN_OPTIONS if o.takes_value for flag in o.flags}
    takes_value.add("--listen")
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            if i + 1 >= len(argv):
                break
            return argv[:i], argv[i + 1], None, argv[i + 2 :]
        if arg == "-m":
            if i + 1 >= len(argv):
                raise UsageError("run: -m needs a MODULE")
            return argv[:i], None, argv[i + 1], argv[i + 2 :]
        if arg.startswith("-m") and not arg.startswith("--"):
            return argv[:i], None, arg[2:], argv[i + 1 :]
        if arg.startswith("-") and arg != "-":
            i += 2 if arg in takes_value else 1
            continue
        return argv[:i], arg, None, argv[i + 1 :]
    return argv, None, None, []


# -- run -------------------------------------------------------------------------------------


def request_from_args(ns: argparse.Namespace) -> RunRequest:
    if ns.record is None:
        return _request_without_recording(ns)
    check_target(ns.record)
    return dataclasses.replace(_request_without_recording(ns), record=ns.record)


def _request_without_recording(ns: argparse.Namespace) -> RunRequest:
    demo = _demo_spec(ns) if ns.command == "demo" else None
    check_headless(ns)
    check_terminal(ns)
    if demo is not None:
        return RunRequest(demo, ns.headless, ns.duration, ns.json, None, "demo", "the demo")

    python = ns.python or sys.executable
    if ns.module is not None:
        if not _MODULE_NAME.fullmatch(ns.module):
            raise UsageError(f"run: not a module name: {ns.module}")
        spec = ProgramSpec(python=python, module=ns.module, args=tuple(ns.args))
    else:
        if not os.path.exists(ns.script):
            raise UsageError(f"no such file: {ns.script}")
        if os.path.isdir(ns.script) and not os.path.isfile(os.path.join(ns.script, "__main__.py")):
            raise UsageError(f"{ns.script} is a directory without a __main__.py")
        spec = ProgramSpec(python=python, script=ns.script, args=tuple(ns.args))
    if ns.python is not None:
        check_python(ns.python)
    if ns.log is not None and ns.log.is_dir():
        raise UsageError(f"--log {ns.log}: is a directory")
    return RunRequest(
        spec,
        ns.headless,
        ns.duration,
        ns.json,
        ns.log,
        spec.command,
        spec.label,
        pyspy=getattr(ns, "pyspy", False),
        children=not getattr(ns, "no_children", False),
    )


def _demo_spec(ns: argparse.Namespace) -> ProgramSpec:
    name = ns.name or catalog.DEFAULT
    if name not in catalog.SCENARIOS:
        raise UsageError(f"demo: no demo named '{name}'; the demos are: {catalog.names()}")
    if ns.load is not None and ns.load < 1:
        raise UsageError("demo: --load must be at least 1")
    args = [
        name,
        *(["--fixed"] if ns.fixed else []),
        *(["--load", str(ns.load)] if ns.load else []),
    ]
    return ProgramSpec(python=sys.executable, module="loopscope.demos.service", args=tuple(args))
