"""What the command drivers share: their messages, the headless loop, the end of recordings."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from loopscope._messages import say as say
from loopscope.session import Session
from loopscope.sources.recorded import RecordingControl

if TYPE_CHECKING:
    from loopscope.fleet.follow import Children
    from loopscope.record.writer import Recorder

# How long the session may take to see the program's exit after loopscope stopped it.
END_TIMEOUT = 5.0
# With --duration, how long a program loopscope started may take to say hello before the
# duration counts from loopscope's own start, and how often to look for that hello.
HELLO_WAIT = 30.0
_HELLO_POLL = 0.05


def finish_recordings(recording: RecordingControl) -> None:
    """Stop ``recording`` and say where each file it wrote is."""
    recording.stop()
    for recorder in recording.done:
        _finish_recording(recorder)


def _finish_recording(recorder: Recorder) -> None:
    if recorder.error is not None:
        say(f"the recording stopped: {recorder.error}")
    dropped = f", {recorder.dropped} dropped (disk too slow)" if recorder.dropped else ""
    say(
        f"recorded {recorder.count} events ({recorder.size / 1024:.0f} KiB{dropped}) to "
        f"{recorder.path}; see: loopscope report {recorder.path}"
    )


class _Stoppable(Protocol):
    def stop(self) -> Any: ...


class _HeadlessOptions(Protocol):
    @property
    def duration(self) -> float | None: ...
    @property
    def json(self) -> bool: ...


def headless(
    session: Session,
    program: _Stoppable,
    request: _HeadlessOptions,
    *,
    interrupted: str = "stopping the program",
    children: Children | None = None,
    from_hello: bool = False,
) -> None:
    """One summary line a second until the session ends, ``request.duration`` passes or Ctrl-C
    (``interrupted`` says what loopscope does then); then ``program.stop()`` and the findings.
    ``children``: the program's child processes followed, one line and findings each.
    ``from_hello``: the duration counts from the target's hello (a program loopscope started,
    which may be slow to start on a busy machine), or from now if none comes within
    HELLO_WAIT."""
    from rich.console import Console

    from loopscope import report

    lines = sys.stderr if request.json else sys.stdout
    started = time.monotonic()
    duration = request.duration
    deadline = None if duration is None else started + duration
    if deadline is not None and from_hello:
        deadline += HELLO_WAIT
    next_line = started + 1.0
    try:
        while not session.ended:
            now = time.monotonic()
            if duration is not None and from_hello and session.hello_at is not None:
                deadline, from_hello = session.hello_at + duration, False
            if deadline is not None and now >= deadline:
                break
            if now >= next_line:
                echo(report.summary_line(session.view()), lines)
                for line in children.lines() if children is not None else ():
                    echo(line, lines)
                next_line += 1.0
            wake = next_line if deadline is None else min(next_line, deadline)
            if from_hello and duration is not None:
                wake = min(wake, now + _HELLO_POLL)  # to count from the hello as it comes
            session.wait(max(0.0, wake - time.monotonic()))
    except KeyboardInterrupt:
        say(f"interrupted: {interrupted}")
    program.stop()
    session.wait(END_TIMEOUT)
    if children is not None:
        children.close()
    view = session.view()
    echo(report.summary_line(view), lines)
    for line in children.lines() if children is not None else ():
        echo(line, lines)
    if request.json:
        out = report.report_json(view)
        processes = [] if children is None else children.json()
        if processes:  # the program's child processes followed, if it has any
            out["processes"] = processes
        echo(json.dumps(out, indent=2), sys.stdout)
    else:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
        console.print()
        console.print(report.render_findings(view))
        if children is not None and children.fleet.members():
            console.print(children.render())


def echo(text: str, stream: TextIO) -> None:
    print(text, file=stream, flush=True)
