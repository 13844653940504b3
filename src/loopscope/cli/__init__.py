"""The command line: it parses, checks, and hands each command to its driver in
`loopscope.commands`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from loopscope import __version__, web
from loopscope.cli import attach as attach_cli
from loopscope.cli import diff as diff_cli
from loopscope.cli import record as record_cli
from loopscope.cli import run as run_cli
from loopscope.cli import serve as serve_cli
from loopscope.cli._options import UsageError
from loopscope.cli.run import request_from_args as _request_from_args
from loopscope.cli.run import split_program as _split_program
from loopscope.commands import attach as attach_command
from loopscope.commands import diff as diff_command
from loopscope.commands import record as record_commands
from loopscope.commands import run as run_command
from loopscope.commands import serve as serve_command
from loopscope.record._format import RecordingError
from loopscope.runner import RunError

# Each command's parser module: it adds the command's options and builds its request.
_PARSERS: dict[str, Any] = {
    "run": run_cli,
    "demo": run_cli,
    "attach": attach_cli,
    "ps": attach_cli,
    "record": record_cli,
    "replay": record_cli,
    "report": record_cli,
    "export": record_cli,
    "diff": diff_cli,
    "serve": serve_cli,
}
# The driver of each request.
_DRIVERS: dict[type, Callable[[Any], int]] = {
    run_command.RunRequest: run_command.run,
    run_command.ListDemos: run_command.list_demos,
    attach_command.AttachRequest: attach_command.run,
    attach_command.PsRequest: attach_command.ps,
    record_commands.ReplayRequest: record_commands.run_replay,
    record_commands.ReportRequest: record_commands.run_report,
    record_commands.ExportRequest: record_commands.run_export,
    diff_command.DiffRequest: diff_command.run,
    serve_command.ServeRequest: serve_command.run,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopscope",
        description="A live profiler for Python asyncio programs, in the terminal: how late the "
        "event loop runs, which code blocks it, what the tasks wait on, and what to fix.",
        epilog="Run 'loopscope COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"loopscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run_cli.add_parsers(commands)
    attach_cli.add_parsers(commands)
    record_cli.add_parsers(commands)
    diff_cli.add_parser(commands)
    for name in web.COMMANDS:
        web.add_options(commands.choices[name])
    serve_cli.add_parsers(commands)
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
            return run_command.list_demos(run_command.ListDemos())
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
            if ns.command in web.COMMANDS and getattr(ns, "listen", None) is not None:
                raise UsageError(f"{ns.command}: --listen needs --web")
            request = _PARSERS[ns.command].request(ns)
            return _DRIVERS[type(request)](request)
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
