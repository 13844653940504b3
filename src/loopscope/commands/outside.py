"""``loopscope attach --no-inject PID`` when no agent listens: observe the process from outside,
nothing injected into it: py-spy (blocks, busy share and hot frames of its loop thread), on
3.14+ the target's own interpreter reading its tasks and await sites with
``_remote_debugging``, and, if the program runs one, aiomonitor's HTTP API (its tasks)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from loopscope.attach._proc import ProcessInfo
from loopscope.commands._common import headless, say
from loopscope.session import Session
from loopscope.sources.outside import OutsideSource
from loopscope.sources.remote_tasks import unavailable as remote_unavailable

if TYPE_CHECKING:
    from loopscope.commands.attach import AttachRequest

_END_TIMEOUT = 5.0  # how long py-spy gets to stop after the session ends


def observe(request: AttachRequest, info: ProcessInfo) -> int:
    """Run the session on py-spy and aiomonitor; the exit code (1 when neither could be
    used, or py-spy stopped)."""
    pyspy = not request.no_pyspy
    say(
        f"no loopscope agent in process {info.pid} and --no-inject: observing it from outside "
        + ("with py-spy (its loop thread) and " if pyspy else "with ")
        + (
            "its own interpreter's _remote_debugging (its tasks and await sites)"
            if remote_unavailable(info) is None
            else "aiomonitor if it runs one (its tasks)"
        )
    )
    source = OutsideSource(info, pyspy=pyspy, native=request.native)
    session = Session(source, clock=time.time)
    session.start()
    try:
        if request.headless:
            headless(
                session,
                source,
                request,
                interrupted=f"leaving process {info.pid}, which keeps running",
            )
        else:
            from loopscope.tui import make_app

            make_app(session, how=f"pid {info.pid} from outside, no agent").run()
    finally:
        source.close()
        session.wait(_END_TIMEOUT)
        session.close()
    if source.aiomonitor.endpoint is not None and source.aiomonitor.live:
        say(
            f"read the tasks of process {info.pid} from aiomonitor on :"
            f"{source.aiomonitor.endpoint.port}"
        )
    if source.remote_tasks is not None and source.remote_tasks.live:
        say(f"read the tasks of process {info.pid} with its own interpreter (_remote_debugging)")
    if source.reason:
        if source.pyspy is None:
            say(f"could not observe process {info.pid}: --no-pyspy, and {source.reason}")
        else:
            doing = "stopped observing" if source.pyspy.live else "could not observe"
            say(f"{doing} process {info.pid} with py-spy: {source.reason}")
        return 1
    if source.exited:
        say(f"process {info.pid} exited")
    else:
        say(f"stopped observing process {info.pid}; nothing was injected into it")
    return 0
