"""The command line: it parses, checks, and hands each command to its driver in
`loopscope.commands`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import sys
import textwrap
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from loopscope import __version__, web
from loopscope.attach._ladder import DEFAULT_TIMEOUT
from loopscope.commands import attach as attach_command
from loopscope.commands import diff as diff_command
from loopscope.commands import record as record_commands
from loopscope.commands import run as run_command
from loopscope.commands import serve as serve_command
from loopscope.commands.run import RunRequest
from loopscope.demos import catalog
from loopscope.record._format import RecordingError
from loopscope.record.writer import check_target
from loopscope.runner import ProgramSpec, RunError, check_python

_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)*)?")
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class UsageError(Exception):
    """Bad input from the user: the message is printed, the exit code is 2."""


@dataclass(frozen=True, slots=True)
class _Option:
    flags: tuple[str, ...]
    kwargs: dict[str, Any]

    @property
    def takes_value(self) -> bool:
        return self.kwargs.get("action") is None


_PYTHON = _Option(
    ("--python",),
    {
        "metavar": "PATH",
        "help": "the interpreter to run the program with, e.g. the program's own venv "
        "(CPython 3.10 or newer; default: the one loopscope runs on)",
    },
)
_HEADLESS = _Option(
    ("--headless",),
    {
        "action": "store_true",
        "help": "no terminal UI: print a summary line every second, then the findings",
    },
)
_DURATION = _Option(
    ("--duration",),
    {
        "metavar": "S",
        "type": float,
        "help": "with --headless: stop the program after S seconds "
        "(default: when it exits, or on Ctrl-C)",
    },
)
_JSON = _Option(
    ("--json",),
    {
        "action": "store_true",
        "help": "with --headless: print only the findings as one JSON object on stdout "
        "(the summary lines go to stderr)",
    },
)
_LOG = _Option(
    ("--log",),
    {
        "metavar": "FILE",
        "type": Path,
        "help": "write the program's stdout and stderr to FILE "
        "(default: a new file in $XDG_STATE_HOME/loopscope/logs)",
    },
)
_RECORD = _Option(
    ("--record",),
    {
        "metavar": "FILE",
        "type": Path,
        "help": "record everything loopscope sees to FILE, for 'loopscope replay', 'report' "
        "and 'export'",
    },
)
_PYSPY = _Option(
    ("--pyspy",),
    {
        "action": "store_true",
        "help": "also sample the program with py-spy, which names the code of blocks the "
        "agent cannot sample (C calls holding the GIL); py-spy takes a few percent of a core",
    },
)
_NO_CHILDREN = _Option(
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopscope",
        description="A live profiler for Python asyncio programs, in the terminal: how late the "
        "event loop runs, which code blocks it, what the tasks wait on, and what to fix.",
        epilog="Run 'loopscope COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"loopscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="start a program under loopscope and watch it",
        description=textwrap.fill(
            "Start an asyncio program in a child process with loopscope's agent installed "
            "before its event loop starts, and watch it live. The program runs as 'python "
            "SCRIPT ARGS' or 'python -m MODULE ARGS' would run it; its output goes to a log "
            "file. Everything after SCRIPT or -m MODULE belongs to the program.",
            width=78,
        ),
        usage="loopscope run [options] (SCRIPT [ARGS...] | -m MODULE [ARGS...])",
        epilog="examples:\n"
        "  loopscope run app.py --port 8080\n"
        "  loopscope run -m myservice.main\n"
        "  loopscope run --python .venv/bin/python --headless --duration 30 --json app.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in _RUN_OPTIONS:
        run.add_argument(*option.flags, **option.kwargs)
    program = run.add_argument_group("the program")
    program.add_argument("script", nargs="?", metavar="SCRIPT", help="a Python file to run")
    program.add_argument(
        "-m", dest="module", metavar="MODULE", help="a module to run, as python -m"
    )
    program.add_argument("args", nargs="*", metavar="ARGS", help="the program's arguments")

    demo = commands.add_parser(
        "demo",
        help="watch a bundled demo service under load, with a bug that shows only under load",
        description=textwrap.fill(
            "Run one of loopscope's demos: an aiohttp service on 127.0.0.1 (with aiomonitor) "
            "and its own load generator, whose handlers block the loop, race, recompute the "
            "same thing, queue on a lock, flood the executor or pause for the GC. --fixed runs "
            "the corrected handlers under the same load. The load generator's latency and "
            "damage figures go to the program's log; loopscope prints the last ones at the end.",
            width=78,
        ),
        usage="loopscope demo [NAME] [--fixed] [--load N] [options]  |  loopscope demo --list",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    attach_command.add_parsers(commands)
    record_commands.add_parsers(commands)
    diff_command.add_parser(commands)
    for name in web.COMMANDS:
        web.add_options(commands.choices[name])
    serve_command.add_parsers(commands)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; `run`'s program and its arguments are split off first, so that
    none of them is taken for one of loopscope's options."""
    parser = build_parser()
    argv = list(argv)
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command_at is None or argv[command_at] != "run":
        return parser.parse_args(argv)
    head, script, module, args = _split_program(argv[command_at + 1 :])
    ns = parser.parse_args(argv[: command_at + 1] + head)
    if script is None and module is None:
        raise UsageError("run: give a SCRIPT or -m MODULE to run (see loopscope run --help)")
    ns.script, ns.module, ns.args = script, module, args
    return ns


def _split_program(
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


def _request_from_args(ns: argparse.Namespace) -> RunRequest:
    if ns.record is None:
        return _request_without_recording(ns)
    check_target(ns.record)
    return dataclasses.replace(_request_without_recording(ns), record=ns.record)


def _request_without_recording(ns: argparse.Namespace) -> RunRequest:
    demo = _demo_spec(ns) if ns.command == "demo" else None
    _check_headless(ns)
    _check_terminal(ns)
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


def _check_headless(ns: argparse.Namespace) -> None:
    """The options of a session without a dashboard: --duration and --json."""
    if (ns.duration is not None or ns.json) and not ns.headless:
        raise UsageError(f"{ns.command}: --duration and --json need --headless")
    if ns.duration is not None and not ns.duration > 0:
        raise UsageError(f"{ns.command}: --duration must be a positive number of seconds")


def _check_terminal(ns: argparse.Namespace) -> None:
    if (
        not ns.headless
        and not (sys.stdin.isatty() and sys.stdout.isatty())
        and not (getattr(ns, "web", False) or web.served())
    ):
        raise UsageError(f"{ns.command}: the dashboard needs a terminal; use --headless")


def _check_attach(ns: argparse.Namespace) -> None:
    """The checks of ``attach``'s options, before anything is attached to."""
    _check_headless(ns)
    if not ns.timeout > 0:
        raise UsageError(f"{ns.command}: --timeout must be a positive number of seconds")
    _check_terminal(ns)


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


def _list_demos() -> int:
    width = max(len(name) for name in catalog.SCENARIOS)
    for scenario in catalog.SCENARIOS.values():
        default = " (default)" if scenario.name == catalog.DEFAULT else ""
        print(f"{scenario.name:<{width}}  {scenario.summary}{default}")
    return 0


# -- record -----------------------------------------------------------------------------------


def _record(ns: argparse.Namespace) -> int:
    program = list(ns.program)
    if not program:
        raise record_commands.CommandError(
            "record: give the PID of a running process, or the program to run after --, "
            "e.g. -- python app.py"
        )
    if len(program) == 1 and program[0].isdigit():
        return _record_pid(ns, int(program[0]))
    python, rest = None, program
    if _PYTHON_NAME.fullmatch(os.path.basename(program[0])):
        python, rest = program[0], program[1:]
        if shutil.which(python) is None:
            raise record_commands.CommandError(f"record: no such interpreter: {python}")
    elif not program[0].endswith(".py"):
        raise record_commands.CommandError(
            f"record: {program[0]} is not Python: COMMAND is 'python SCRIPT ARGS', "
            "'python -m MODULE ARGS' or 'SCRIPT.py ARGS'"
        )
    script = module = None
    if rest and rest[0] == "-m":
        if len(rest) < 2:
            raise record_commands.CommandError("record: -m needs a MODULE")
        module, args = rest[1], rest[2:]
    elif rest and not rest[0].startswith("-"):
        script, args = rest[0], rest[1:]
    else:
        what = f"the option {rest[0]}" if rest else "nothing"
        raise record_commands.CommandError(
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
    return run_command.run(_request_from_args(run_ns))


def _record_pid(ns: argparse.Namespace, pid: int) -> int:
    """``attach --headless --record FILE PID``, with attach's defaults."""
    attach_ns = argparse.Namespace(
        command="record",  # for messages; anything but "ps" is attach
        pid=pid,
        method="auto",
        no_inject=False,
        keep_agent=False,
        timeout=DEFAULT_TIMEOUT,
        headless=True,
        duration=ns.duration,
        json=ns.json,
        record=ns.output,
    )
    _check_attach(attach_ns)
    return attach_command.run(attach_ns)


# -- --web -----------------------------------------------------------------------------------


def _serve_web(argv: list[str], ns: argparse.Namespace) -> int:
    """Check the command as the terminal would, then serve it, without --web, to browsers."""
    if ns.headless if "headless" in ns else False:
        raise UsageError(f"{ns.command}: --web serves the dashboard; it cannot be --headless")
    if getattr(ns, "record", None) is not None:
        raise UsageError(
            f"{ns.command}: --web runs a session per page, which cannot share one --record "
            "file; press r in the page to record, or use 'loopscope record'"
        )
    command_at = next(i for i, a in enumerate(argv) if not a.startswith("-"))
    program_at = None
    if ns.command in ("run", "demo"):
        if ns.command == "demo" and ns.list:
            return _list_demos()
        _request_from_args(ns)  # the checks of the program and options, once, here
        if ns.command == "run":
            head, _, _, _ = _split_program(argv[command_at + 1 :])
            program_at = command_at + 1 + len(head)
    elif ns.command == "replay":
        from loopscope.record.reader import Recording

        Recording.open(ns.file).close()
    elif ns.command == "attach":
        try:
            os.kill(ns.pid, 0)
        except ProcessLookupError:
            raise UsageError(f"attach: no such process: {ns.pid}") from None
        except PermissionError:
            pass  # the session says what it can do
    child = web.child_argv(argv, program_at)
    return web.serve(child, ns.listen, title="loopscope " + " ".join(child[command_at:]))


# -- plumbing --------------------------------------------------------------------------------


class _Terminated(BaseException):
    """SIGTERM or SIGHUP: unwind so that the program is stopped on the way out."""


@contextmanager
def _exit_on_termination() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with _exit_on_termination():
            ns = parse(args)
            if getattr(ns, "web", False):
                return _serve_web(args, ns)
            if getattr(ns, "listen", None) is not None:
                raise UsageError(f"{ns.command}: --listen needs --web")
            if ns.command in attach_command.COMMANDS:
                if ns.command == "attach":
                    _check_attach(ns)
                return attach_command.run(ns)
            if ns.command == "record":
                return _record(ns)
            if ns.command in record_commands.COMMANDS:
                return record_commands.main(ns)
            if ns.command in diff_command.COMMANDS:
                return diff_command.main(ns)
            if ns.command in serve_command.COMMANDS:
                return serve_command.run(ns)
            if ns.command == "demo" and ns.list:
                return _list_demos()
            return run_command.run(_request_from_args(ns))
    except (
        UsageError,
        RunError,
        RecordingError,
        record_commands.CommandError,
        diff_command.DiffError,
        web.WebError,
    ) as e:
        print(f"loopscope: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loopscope: interrupted", file=sys.stderr)
        return 130
    except _Terminated as e:
        signum = int(e.args[0])
        print(f"loopscope: terminated by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except Exception as e:
        if os.environ.get("LOOPSCOPE_DEBUG"):
            traceback.print_exc()
        print(f"loopscope: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        if not os.environ.get("LOOPSCOPE_DEBUG"):
            print("loopscope: run with LOOPSCOPE_DEBUG=1 for the traceback", file=sys.stderr)
        return 1
