"""``loopscope attach PID`` and ``loopscope ps``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loopscope.attach._errors import AttachError
from loopscope.attach._ladder import DEFAULT_TIMEOUT, METHODS, Attached, attach
from loopscope.attach._proc import ProcessInfo, exists, inspect, python_processes
from loopscope.events import Event, SourceState, TargetExited
from loopscope.record._format import RecordingError
from loopscope.record.writer import RecordedSource, RecordingControl, check_target
from loopscope.runner import log_dir
from loopscope.session import Session
from loopscope.sources.agent import AgentSource
from loopscope.sources.merge import MergedSource
from loopscope.sources.pyspy import NATIVE_INTERVAL, PySpySource
from loopscope.web import served

COMMANDS = ("attach", "ps")
_END_TIMEOUT = 5.0  # how long a detaching agent gets to send its last events and go
_EXIT_SEEN = 2.0  # after the agent's connection drops, how long to look for the process's exit


class Headless(Protocol):
    """The command line's headless loop (`loopscope.cli._headless`)."""

    def __call__(
        self,
        session: Session,
        program: Any,
        request: Any,
        *,
        interrupted: str = ...,
        children: Any = ...,
    ) -> None: ...


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


def run(ns: argparse.Namespace, *, headless: Headless) -> int:
    """Run ``attach`` or ``ps``; the exit code. ``headless`` is the command line's headless
    loop (shared with ``loopscope run``)."""
    if ns.command == "ps":
        return _ps(ns.json)
    return _attach(ns, headless)


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
            f"(own root) {p.command}" if p.other_root else p.command,
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
        "other_root": p.other_root,
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


def _attach(ns: argparse.Namespace, headless: Headless) -> int:
    if (ns.duration is not None or ns.json) and not ns.headless:
        return _usage(f"{ns.command}: --duration and --json need --headless")
    if ns.duration is not None and not ns.duration > 0:
        return _usage(f"{ns.command}: --duration must be a positive number of seconds")
    if not ns.timeout > 0:
        return _usage(f"{ns.command}: --timeout must be a positive number of seconds")
    if not ns.headless and not (sys.stdin.isatty() and sys.stdout.isatty()) and not served():
        return _usage(f"{ns.command}: the dashboard needs a terminal; use --headless")
    if ns.record is not None:
        check_target(ns.record)  # before attaching: a bad FILE leaves the process untouched
    try:
        attached = attach(
            ns.pid,
            method=ns.method,
            inject=not ns.no_inject,
            timeout=ns.timeout,
            progress=_say,
        )
    except AttachError as e:
        if e.reason == "no-agent":
            return _observe_outside(ns, headless)
        _say(e.message)
        return 2 if e.reason == "usage" else 1
    _say(f"{attached.how} (process {ns.pid}, Python {attached.info.python_text})")
    if attached.loops == 0:
        _say_no_loop(ns.pid, following=getattr(ns, "children", False))
    from loopscope import cli

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

        say = _say if ns.headless else (lambda message: None)  # nothing over the dashboard
        children = Children(ns.pid, log=say, method=ns.method, recording=recording)
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
        session.wait(_END_TIMEOUT)
        session.close()
        cli.finish_recordings(recording)
    if pyspy is not None and pyspy.reason:
        doing = "py-spy stopped sampling" if pyspy.live else "no sampling with py-spy"
        _say(f"{doing}: {pyspy.reason}")
    return _report_end(source, session, attached, keep=ns.keep_agent)


def _say_no_loop(pid: int, *, following: bool) -> None:
    """No loop runs in ``pid`` (yet): say so, and whether its Python children may have one."""
    from loopscope.fleet.follow import children_with_asyncio

    found = children_with_asyncio(pid)
    if not found:
        _say(
            f"no asyncio event loop is running in process {pid} yet: the agent waits for "
            "one to start, and loopscope shows it as soon as it does"
        )
        return
    listed = ", ".join(f"{child} ({name})" for child, name in found[:8])
    more = f" and {len(found) - 8} more" if len(found) > 8 else ""
    if following:
        _say(
            f"no asyncio event loop is running in process {pid}; its Python children that "
            f"use asyncio are followed: {listed}{more}"
        )
    else:
        _say(
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


def _observe_outside(ns: argparse.Namespace, headless: Headless) -> int:
    """No agent and --no-inject: py-spy from outside (see `_outside`)."""
    if ns.record is not None:
        return _usage(f"{ns.command}: --record needs an agent; attach without --no-inject")
    from loopscope.attach._outside import observe

    return observe(ns, headless, inspect(ns.pid), _say)


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


class AttachSource:
    """The events of the agent in an attached process, then `TargetExited` if it ends (or
    replaces its program with exec, which takes the agent with it)."""

    def __init__(self, attached: Attached, *, detach_on_close: bool = False) -> None:
        self.pid = attached.info.pid
        self._program = (attached.info.exe, attached.info.cmdline)
        self.agent = AgentSource(
            attached.socket_path, connect_timeout=5.0, alive=lambda: exists(self.pid)
        )
        self._detach_on_close = detach_on_close
        self.exited = False
        self.replaced: str | None = None  # the command the process exec'd, if it did
        self.lost = False  # the agent hung up on its own, and the process runs on
        self._closed = threading.Event()
        self._detaching = False

    def events(self) -> Iterator[Event]:
        for event in self.agent.events():
            if self._detach_on_close and isinstance(event, SourceState) and event.state == "live":
                # Should this process be killed, the agent goes too, as on a normal quit.
                self.agent.detach_on_close()
            yield event
        if self.agent.refused is not None:
            return
        deadline = time.monotonic() + _EXIT_SEEN
        while not self._closed.is_set() and not self._detaching:
            if not exists(self.pid):
                self.exited = True
                yield TargetExited(t=time.time(), exit_code=None, reason="exited")
                return
            self.replaced = _replaced(self.pid, self._program)
            if self.replaced is not None:
                yield TargetExited(t=time.time(), exit_code=None, reason="exec'd a new program")
                return
            if time.monotonic() > deadline:
                self.lost = True
                return
            self._closed.wait(0.02)

    def detach(self) -> bool:
        """Ask the agent to remove itself; False when not connected."""
        self._detaching = True
        return self.agent.detach()

    def close(self) -> None:
        self._closed.set()
        self.agent.close()


def _replaced(pid: int, program: tuple[str, tuple[str, ...]]) -> str | None:
    """The command line of the program ``pid`` runs now, if it is not ``program`` (exe and
    command line): the process exec'd. None when it is the same, or cannot be read."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    cmdline = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    if (exe, cmdline) == program:
        return None
    return " ".join(cmdline) or exe


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
        _say(f"process {pid} exited")
    elif source.replaced is not None:
        _say(
            f"process {pid} exec'd a new program ({source.replaced}): the program loopscope "
            "watched, and its agent, are gone"
        )
    elif not source.agent.connected:
        _say(f"could not connect to the agent in process {pid} at {attached.socket_path}")
        return 1
    elif source.agent.refused is not None:
        _say(f"{source.agent.refused}. Quit that client first, or wait for it to finish.")
        return 1
    elif source.lost:
        gone = "" if os.path.exists(attached.socket_path) else ", and its socket is gone"
        _say(f"the agent in process {pid} hung up{gone}; the process still runs")
        return 1
    elif keep:
        _say(f"left the agent listening in process {pid} at {attached.socket_path}")
    elif _gone(attached.socket_path):
        _say(f"detached from process {pid}: its agent removed itself")
    else:
        _say(f"asked the agent in process {pid} to detach; its socket is still there")
        return 1
    if session.error is not None:
        _say(f"reading the agent's events failed: {session.error}")
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


def _say(message: str) -> None:
    print(f"loopscope: {message}", file=sys.stderr, flush=True)
