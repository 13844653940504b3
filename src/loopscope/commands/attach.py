"""``loopscope attach PID`` and ``loopscope ps``."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopscope.attach._errors import AttachError
from loopscope.attach._ladder import DEFAULT_TIMEOUT, Attached, attach
from loopscope.attach._proc import ProcessInfo, exists, inspect, python_processes
from loopscope.commands._common import END_TIMEOUT, finish_recordings, headless, say
from loopscope.commands.outside import observe
from loopscope.record._format import RecordingError
from loopscope.record.writer import check_target
from loopscope.runner import log_dir
from loopscope.session import Session
from loopscope.sources.attach import AttachSource
from loopscope.sources.base import Source
from loopscope.sources.merge import Fallback, MergedSource
from loopscope.sources.pyspy import PySpySource
from loopscope.sources.recorded import RecordedSource, RecordingControl
from loopscope.sources.remote_stacks import RemoteStacksSource
from loopscope.sources.remote_stacks import unavailable as remote_stacks_unavailable


@dataclass(frozen=True, slots=True)
class AttachRequest:
    """``attach PID`` (or ``record PID``), its options checked by the command line."""

    pid: int
    command: str = "attach"  # the command, for messages
    method: str = "auto"
    no_inject: bool = False
    keep_agent: bool = False
    timeout: float = DEFAULT_TIMEOUT
    headless: bool = False
    duration: float | None = None
    json: bool = False
    children: bool = False
    record: Path | None = None
    no_pyspy: bool = False
    native: bool = False


@dataclass(frozen=True, slots=True)
class PsRequest:
    """``ps``: the Python processes this user may attach to."""

    json: bool = False


def ps(request: PsRequest) -> int:
    """``loopscope ps``; the exit code."""
    return _ps(request.json)


def run(request: AttachRequest) -> int:
    """``loopscope attach``; the exit code."""
    return _attach(request)


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


def _attach(request: AttachRequest) -> int:
    if request.record is not None:
        check_target(request.record)  # before attaching: a bad FILE leaves the process untouched
    try:
        attached = attach(
            request.pid,
            method=request.method,
            inject=not request.no_inject,
            timeout=request.timeout,
            progress=say,
        )
    except AttachError as e:
        if e.reason == "no-agent":
            return _observe_outside(request)
        say(e.message)
        return 2 if e.reason == "usage" else 1
    say(f"{attached.how} (process {request.pid}, Python {attached.info.python_text})")
    if attached.loops == 0:
        _say_no_loop(request.pid, following=request.children)
    source = AttachSource(attached, detach_on_close=not request.keep_agent)
    remote = _remote_beside(attached.info, request)
    pyspy = _pyspy_beside(source, request)
    sampler = _sampler(remote, pyspy)
    beside = [sampler] if sampler is not None else []
    recorded = RecordedSource(MergedSource([source, *beside], leader=source) if beside else source)
    recording = RecordingControl(
        recorded,
        directory=log_dir().parent / "recordings",  # beside run's logs and recordings
        name=_program_name(attached.info),
        meta={
            "how": f"process {request.pid} ({attached.info.command})",
            "pid": request.pid,
            "attached": attached.how,
        },
        first=request.record,
    )
    if request.record is not None:
        try:
            recording.start()  # before the session starts: no event is missed
        except RecordingError:
            if not request.keep_agent:
                _let_go(source)
            raise
    session = Session(recorded, clock=time.time)
    session.start()
    stopper = _Stopper(source, keep=request.keep_agent)
    children = None
    if request.children:
        from loopscope.fleet.follow import Children

        log = say if request.headless else (lambda message: None)  # nothing over the dashboard
        children = Children(request.pid, log=log, method=request.method, recording=recording)
        children.start()
    try:
        if request.headless:
            leaving = "leaving" if request.keep_agent else "detaching from"
            headless(
                session,
                stopper,
                request,
                interrupted=f"{leaving} process {request.pid}, which keeps running",
                children=children,
            )
        else:
            from loopscope.tui import make_app

            views: Any = session
            if children is not None:
                from loopscope.fleet.views import FleetViews

                views = FleetViews(session, request.pid, _program_name(attached.info), children)
            make_app(
                views, how=f"attached to pid {request.pid}: {attached.how}", recording=recording
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
    if remote is not None and remote.reason not in ("", "closed", "the program exited"):
        doing = "stopped sampling blocks from outside" if remote.live else "no sampling of blocks"
        say(f"{doing} with the target's interpreter: {remote.reason}")
    return _report_end(source, session, attached, keep=request.keep_agent)


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


def _sampler(remote: RemoteStacksSource | None, pyspy: PySpySource | None) -> Source | None:
    """The sampler beside the agent: the target's own interpreter, or py-spy where it cannot
    run (it says why, then py-spy starts: a build whose layout `_unwind` cannot learn, say)."""
    if remote is not None and pyspy is not None:
        return Fallback(remote, pyspy, live=lambda: remote.live)
    return remote or pyspy


def _remote_beside(info: ProcessInfo, request: AttachRequest) -> RemoteStacksSource | None:
    """The target's own interpreter sampling its loop thread from outside the GIL, unless
    --native asks py-spy for C frames, or --no-pyspy asks for no sampling from outside. It
    samples blocks more densely than py-spy at its default rate, for less
    (benchmarks/block_samples.py); where it cannot run (a target before 3.10, a layout it
    cannot learn) py-spy samples instead (`_sampler`)."""
    if request.native or request.no_pyspy or remote_stacks_unavailable(info) is not None:
        return None
    return RemoteStacksSource(info, alive=lambda: exists(info.pid))


def _pyspy_beside(source: AttachSource, request: AttachRequest) -> PySpySource | None:
    """py-spy sampling the loop thread beside the agent, unless --no-pyspy."""
    if request.no_pyspy:
        return None
    pid = source.pid
    native = request.native
    return PySpySource(pid, blocks=False, native=native, alive=lambda: exists(pid))


def _observe_outside(request: AttachRequest) -> int:
    """No agent and --no-inject: py-spy from outside (see `_outside`)."""
    if request.record is not None:
        return _usage(f"{request.command}: --record needs an agent; attach without --no-inject")
    return observe(request, inspect(request.pid))


def _let_go(source: AttachSource) -> None:
    """Detach the agent without a session: connect, ask it to go, read what it sends last."""
    for _ in source.agent.events():
        source.agent.detach()
    source.close()


def _program_name(info: ProcessInfo) -> str:
    """A short name for the process, for recording file names: its script's stem or its module,
    then its pid ("service-4242")."""
    from loopscope.fleet._procs import process_name

    return f"{process_name(info)}-{info.pid}"


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


def _gone(path: str, timeout: float = 10.0) -> bool:
    """Whether ``path`` disappears within ``timeout`` seconds (a detached agent removes it). A
    loop that is never idle keeps the agent's threads from the GIL for a second or more at a
    time, and they take several turns to stop."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _usage(message: str) -> int:
    print(f"loopscope: {message}", file=sys.stderr)
    return 2
