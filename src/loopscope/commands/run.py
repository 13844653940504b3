"""``loopscope run`` and ``loopscope demo``: start a program with the agent and watch it."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopscope.commands._common import END_TIMEOUT, finish_recordings, headless, say
from loopscope.demos import catalog
from loopscope.runner import Program, ProgramSpec, describe_exit, log_dir
from loopscope.session import Session
from loopscope.sources.base import Source
from loopscope.sources.recorded import RecordedSource, RecordingControl
from loopscope.sources.run import RunSource

if TYPE_CHECKING:
    from loopscope.fleet.follow import Children

_LOG_TAIL_LINES = 15
# How far from the end of the demo's log the load generator's final figures may be.
_LOADGEN_LINES = 200


@dataclass(frozen=True, slots=True)
class RunRequest:
    spec: ProgramSpec
    headless: bool
    duration: float | None
    json: bool
    log: Path | None
    how: str  # how the program was started, for the UI's header
    label: str  # what to call the program in messages
    record: Path | None = None  # where to record the session
    pyspy: bool = False  # sample the program with py-spy beside the agent
    children: bool = False  # follow the program's Python child processes


@dataclass(frozen=True, slots=True)
class ListDemos:
    """``demo --list``: the demos, one a line."""


def list_demos(request: ListDemos) -> int:
    """``demo --list``."""
    width = max(len(name) for name in catalog.SCENARIOS)
    for scenario in catalog.SCENARIOS.values():
        default = " (default)" if scenario.name == catalog.DEFAULT else ""
        print(f"{scenario.name:<{width}}  {scenario.summary}{default}")
    return 0


def run(request: RunRequest) -> int:
    program = Program.start(request.spec, log_path=request.log)
    try:
        say(f"started {request.how} (pid {program.pid}); its output goes to {program.log_path}")
        source = RunSource(program)
        recorded = RecordedSource(_with_samplers(source, program, pyspy=request.pyspy))
        recording = RecordingControl(
            recorded,
            directory=log_dir().parent / "recordings",  # beside the logs
            name=request.spec.name,
            meta={"how": request.how},
            first=request.record,
        )
        if request.record is not None:
            recording.start()
        session = Session(recorded, clock=time.time)
        session.start()
        children = None
        if request.children:
            from loopscope.fleet.follow import Children

            # (The dashboard lists what happens to each child: nothing is printed over it.)
            log = say if request.headless else (lambda message: None)
            children = Children(program.pid, log=log, recording=recording)
            children.start()
        try:
            if request.headless:
                headless(session, program, request, children=children, from_hello=True)
            else:
                _interactive(session, program, request, recording, children)
        finally:
            program.stop()
            if children is not None:
                children.close()
            session.wait(END_TIMEOUT)
            session.close()
            finish_recordings(recording)
    finally:
        program.stop()
    _report_exit(program, request)
    if request.how == "demo":
        _say_load_figures(program)
    if not source.agent.connected and program.stopped_by_loopscope:
        say(f"the agent in {request.label} never answered: nothing could be observed")
    if session.error is not None:
        say(f"reading the agent's events failed: {session.error}")
        return 1
    return 0


def _with_samplers(source: RunSource, program: Program, *, pyspy: bool) -> Source:
    """The agent's events, and those of the samplers that read the program from outside its
    GIL: its own interpreter (`RemoteStacksSource`, which says why when it cannot run), and
    py-spy with --pyspy."""
    from loopscope.sources.merge import MergedSource
    from loopscope.sources.pyspy import PySpySource
    from loopscope.sources.remote_stacks import RemoteStacksSource

    beside: list[Source] = [RemoteStacksSource(program.pid, alive=lambda: program.alive())]
    if pyspy:
        beside.append(PySpySource(program.pid, blocks=False, alive=lambda: program.alive()))
    return MergedSource([source, *beside], leader=source)


def _say_load_figures(program: Program) -> None:
    """The demo's load generator's final figures (latency, errors, damage), from its log."""
    tail = program.log_tail(_LOADGEN_LINES)
    start = next((i for i, line in enumerate(tail) if line.startswith("load generator done")), None)
    if start is None:
        return
    say(f"demo {tail[start]}")
    for line in tail[start + 1 :]:
        if not line.startswith("  "):
            break
        print(f"    {line.strip()}", file=sys.stderr)


def _interactive(
    session: Session,
    program: Program,
    request: RunRequest,
    recording: RecordingControl,
    children: Children | None = None,
) -> None:
    from loopscope.tui import make_app

    views: Any = session
    if children is not None:
        from loopscope.fleet.views import FleetViews

        views = FleetViews(session, program.pid, request.spec.name, children)
    app = make_app(views, log_path=str(program.log_path), how=request.how, recording=recording)
    app.run()


def _report_exit(program: Program, request: RunRequest) -> None:
    code = program.returncode
    name = request.label
    if program.stopped_by_loopscope:
        say(f"stopped {name} ({describe_exit(code)}); its output is in {program.log_path}")
        return
    if code == 0:
        say(f"{name} exited ({describe_exit(code)}); its output is in {program.log_path}")
        return
    say(f"{name} failed ({describe_exit(code)}); the end of its log, {program.log_path}:")
    for line in program.log_tail(_LOG_TAIL_LINES):
        print(f"    {line}", file=sys.stderr)
