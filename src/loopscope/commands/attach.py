"""``loopscope attach PID`` and ``loopscope ps``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopscope.attach._errors import AttachError
from loopscope.attach._ladder import DEFAULT_TIMEOUT, METHODS, Attached, attach
from loopscope.attach._proc import ProcessInfo, exists, inspect, python_processes
from loopscope.commands._common import END_TIMEOUT, finish_recordings, headless, say
from loopscope.record._format import RecordingError
from loopscope.record.writer import check_target
from loopscope.runner import log_dir
from loopscope.session import Session
from loopscope.sources.attach import AttachSource
from loopscope.sources.merge import MergedSource
from loopscope.sources.pyspy import NATIVE_INTERVAL, PySpySource
from loopscope.sources.recorded import RecordedSource, RecordingControl

COMMANDS = ("attach", "ps")


def add_parsers(commands: Any) -> None:
    """Add ``attach`` and ``ps`` to the subcommands of the main parser."""
    attach_parser = commands.add_parser(
        "attach",
        help="watch a running asyncio program, started without loopscope",
        description=textwrap.fill(
            "Attach to a running Python process: connect to its loopscope agent, or inject one "
            "(nothing needs to be installed in the program's environment). Quitting detaches: "
            "the agent removes itself and the program goes on as before.",
            width=78,
        ),
        epilog="examples:\n"
        "  loopscope attach 4242\n"
        "  loopscope attach --headless --duration 10 --json 4242\n"
        "  loopscope attach --record service.lsrec 4242\n"
        "  loopscope attach --method gdb 4242\n"
        "  loopscope ps",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        help="do not sample the program with py-spy (beside the agent, py-spy names the code "
        "of blocks the agent cannot sample: C calls holding the GIL)",
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


def run(ns: argparse.Namespace) -> int:
    """Run ``attach`` or ``ps``; the exit code."""
    if ns.command == "ps":
        return _ps(ns.json)
    return _attach(ns)


# -- ps ----------------------------------------------------------------------------------------


def _ps(as_json: bool) -> int:
    processes = python_processes()
    monitors = {p.pid: _aiomonitor_port(p) for p in processes}
    if as_json:
        print(json.dumps([_ps_row(p, monitors[p.pid]) for p in processes], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("PID", "PYTHON", "ASYNCIO", "AGENT", "PORTS", "AIOMONITOR", "COMMAND"):
        table.add_column(column, no_wrap=column != "COMMAND", overflow="fold")
    for p in processes:
        table.add_row(
            str(p.pid),
            p.python_text,
            {True: "yes", False: "no", None: "?"}[p.asyncio],
            "listening" if p.agent_socket else "-",
            ",".join(map(str, p.ports)) or "-",
            f"on :{monitors[p.pid]}" if monitors[p.pid] else "-",
            p.command,
        )
    console = Console(highlight=False)
    if processes:
        console.print(table)
    else:
        console.print("no Python processes that this user may attach to")
    return 0


def _aiomonitor_port(p: ProcessInfo) -> int | None:
    """The port of the aiomonitor web UI that process ``p`` runs, if it runs one."""
    if not p.ports or p.asyncio is False:
        return None
    from loopscope.sources.aiomonitor import find

    endpoint = find(p.pid)
    return None if endpoint is None else endpoint.port


def _ps_row(p: ProcessInfo, aiomonitor: int | None = None) -> dict[str, Any]:
    return {
        "pid": p.pid,
        "python": p.python_text if p.python else None,
        "asyncio": p.asyncio,
        "agent_socket": p.agent_socket,
        "ports": list(p.ports),
        "aiomonitor_port": aiomonitor,
        "uid": p.uid,
        "exe": p.exe,
        "cmdline": list(p.cmdline),
    }


# -- attach ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Options:
    duration: float | None
    json: bool


def _attach(ns: argparse.Namespace) -> int:
    if ns.record is not None:
        check_target(ns.record)  # before attaching: a bad FILE leaves the process untouched
    try:
        attached = attach(
            ns.pid,
            method=ns.method,
            inject=not ns.no_inject,
            timeout=ns.timeout,
            progress=say,
        )
    except AttachError as e:
        if e.reason == "no-agent":
            return _observe_outside(ns)
        say(e.message)
        return 2 if e.reason == "usage" else 1
    say(f"{attached.how} (process {ns.pid}, Python {attached.info.python_text})")
    if attached.loops == 0:
        _say_no_loop(ns.pid, following=getattr(ns, "children", False))
    source = AttachSource(attached, detach_on_close=not ns.keep_agent)
    pyspy = _pyspy_beside(source, ns)
    recorded = RecordedSource(
        source if pyspy is None else MergedSource([source, pyspy], leader=source)
    )
    recording = RecordingControl(
        recorded,
        directory=log_dir().parent / "recordings",  # beside run's logs and recordings
        name=_program_name(attached.info),
        meta={
            "how": f"process {ns.pid} ({attached.info.command})",
            "pid": ns.pid,
            "attached": attached.how,
        },
        first=ns.record,
    )
    if ns.record is not None:
        try:
            recording.start()  # before the session starts: no event is missed
        except RecordingError:
            if not ns.keep_agent:
                _let_go(source)
            raise
    session = Session(recorded, clock=time.time)
    session.start()
    stopper = _Stopper(source, keep=ns.keep_agent)
    children = None
    if getattr(ns, "children", False):
        from loopscope.fleet.follow import Children

        log = say if ns.headless else (lambda message: None)  # nothing over the dashboard
        children = Children(ns.pid, log=log, method=ns.method, recording=recording)
        children.start()
    try:
        if ns.headless:
            leaving = "leaving" if ns.keep_agent else "detaching from"
            headless(
                session,
                stopper,
                _Options(ns.duration, ns.json),
                interrupted=f"{leaving} process {ns.pid}, which keeps running",
                children=children,
            )
        else:
            from loopscope.tui import make_app

            views: Any = session
            if children is not None:
                from loopscope.fleet.views import FleetViews

                views = FleetViews(session, ns.pid, _program_name(attached.info), children)
            make_app(
                views, how=f"attached to pid {ns.pid}: {attached.how}", recording=recording
            ).run()
    finally:
        stopper.stop()
        if children is not None:
            children.close()
        session.wait(END_TIMEOUT)
        session.close()
        finish_recordings(recording)
    if pyspy is not None and pyspy.reason:
        doing = "py-spy stopped sampling" if pyspy.live else "no sampling with py-spy"
        say(f"{doing}: {pyspy.reason}")
    return _report_end(source, session, attached, keep=ns.keep_agent)


def _say_no_loop(pid: int, *, following: bool) -> None:
    """No loop runs in ``pid`` (yet): say so, and whether its Python children may have one."""
    from loopscope.fleet.follow import children_with_asyncio

    found = children_with_asyncio(pid)
    if not found:
        say(
            f"no asyncio event loop is running in process {pid} yet: the agent waits for "
            "one to start, and loopscope shows it as soon as it does"
        )
        return
    listed = ", ".join(f"{child} ({name})" for child, name in found[:8])
    more = f" and {len(found) - 8} more" if len(found) > 8 else ""
    if following:
        say(
            f"no asyncio event loop is running in process {pid}; its Python children that "
            f"use asyncio are followed: {listed}{more}"
        )
    else:
        say(
            f"no asyncio event loop is running in process {pid}, but its Python children use "
            f"asyncio: {listed}{more}. To watch them too: loopscope attach --children {pid}"
        )


def _pyspy_beside(source: AttachSource, ns: argparse.Namespace) -> PySpySource | None:
    """py-spy sampling the loop thread beside the agent, unless --no-pyspy."""
    if getattr(ns, "no_pyspy", False):
        return None
    pid = source.pid
    native = getattr(ns, "native", False)
    return PySpySource(pid, blocks=False, native=native, alive=lambda: exists(pid))


def _observe_outside(ns: argparse.Namespace) -> int:
    """No agent and --no-inject: py-spy from outside (see `_outside`)."""
    if ns.record is not None:
        return _usage(f"{ns.command}: --record needs an agent; attach without --no-inject")
    from loopscope.commands.outside import observe

    return observe(ns, inspect(ns.pid))


def _let_go(source: AttachSource) -> None:
    """Detach the agent without a session: connect, ask it to go, read what it sends last."""
    for _ in source.agent.events():
        source.agent.detach()
    source.close()


def _program_name(info: ProcessInfo) -> str:
    """A short name for the process, for recording file names: its script's stem or its module,
    then its pid ("service-4242")."""
    from loopscope.fleet._procs import program_name

    return f"{program_name(info)}-{info.pid}"


class _Stopper:
    """What ends the session: detach the agent (or, keeping it, just hang up)."""

    def __init__(self, source: AttachSource, *, keep: bool) -> None:
        self._source = source
        self._keep = keep
        self.detach_sent = False

    def stop(self) -> None:
        if self._keep:
            self._source.close()
        elif not self.detach_sent:
            self.detach_sent = self._source.detach()


def _report_end(source: AttachSource, session: Session, attached: Attached, *, keep: bool) -> int:
    pid = attached.info.pid
    if source.exited:
        say(f"process {pid} exited")
    elif source.replaced is not None:
        say(
            f"process {pid} exec'd a new program ({source.replaced}): the program loopscope "
            "watched, and its agent, are gone"
        )
    elif not source.agent.connected:
        say(f"could not connect to the agent in process {pid} at {attached.socket_path}")
        return 1
    elif source.agent.refused is not None:
        say(f"{source.agent.refused}. Quit that client first, or wait for it to finish.")
        return 1
    elif source.lost:
        gone = "" if os.path.exists(attached.socket_path) else ", and its socket is gone"
        say(f"the agent in process {pid} hung up{gone}; the process still runs")
        return 1
    elif keep:
        say(f"left the agent listening in process {pid} at {attached.socket_path}")
    elif _gone(attached.socket_path):
        say(f"detached from process {pid}: its agent removed itself")
    else:
        say(f"asked the agent in process {pid} to detach; its socket is still there")
        return 1
    if session.error is not None:
        say(f"reading the agent's events failed: {session.error}")
        return 1
    return 0


def _gone(path: str, timeout: float = 3.0) -> bool:
    """Whether ``path`` disappears within ``timeout`` seconds (a detached agent removes it)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _usage(message: str) -> int:
    print(f"loopscope: {message}", file=sys.stderr)
    return 2
