"""``loopscope attach --no-inject PID`` when no agent listens: observe the process from outside
with py-spy (blocks of its loop thread), nothing injected into it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from loopscope.attach._proc import ProcessInfo, exists
from loopscope.events import PROTOCOL_VERSION, Event, Hello, SourceState, TargetExited
from loopscope.sources.pyspy import PySpySource

_END_TIMEOUT = 5.0  # how long py-spy gets to stop after the session ends
AGENT_ABSENT = (
    "not injected (--no-inject): no lag, task or await figures without it; "
    "attach without --no-inject to get them"
)


class OutsideSource:
    """The agent marked absent, py-spy's events, then `TargetExited` if the process ends."""

    def __init__(self, info: ProcessInfo) -> None:
        self.pid = info.pid
        self._info = info
        self.pyspy = PySpySource(info.pid, alive=lambda: exists(self.pid))
        self.exited = False
        self.reason = ""  # why py-spy could not observe the process (or went on), if it failed
        self._closed = threading.Event()

    def events(self) -> Iterator[Event]:
        yield self._hello()
        yield SourceState(t=time.time(), source="agent", state="unavailable", detail=AGENT_ABSENT)
        for event in self.pyspy.events():
            if isinstance(event, SourceState) and event.state in ("unavailable", "lost"):
                self.reason = event.detail
            yield event
        if not self._closed.is_set() and not exists(self.pid):
            self.exited = True
            yield TargetExited(t=time.time(), exit_code=None, reason="exited")

    def _hello(self) -> Hello:
        """Who the process is, as an agent's hello would say, from what /proc tells (no agent
        version; the standard library's paths are left to the model to recognise)."""
        try:
            cwd = os.readlink(f"/proc/{self.pid}/cwd")
        except OSError:
            cwd = ""
        return Hello(
            t=time.time(),
            protocol=PROTOCOL_VERSION,
            agent_version="",
            pid=self.pid,
            python=self._info.python_text,
            implementation="cpython",
            executable=self._info.exe,
            argv=self._info.cmdline,
            cwd=cwd,
            stdlib_paths=(),
            site_paths=(),
            monotonic=time.perf_counter(),
        )

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self.pyspy.close()


def observe(ns: Any, headless: Any, info: ProcessInfo, say: Any) -> int:
    """Run the session on py-spy alone; the exit code (1 when py-spy could not be used)."""
    from loopscope.session import Session

    say(
        f"no loopscope agent in process {info.pid} and --no-inject: observing it from outside "
        "with py-spy (blocks of its loop thread only)"
    )
    source = OutsideSource(info)
    session = Session(source, clock=time.time)
    session.start()
    try:
        if ns.headless:
            headless(
                session,
                source,
                ns,
                interrupted=f"leaving process {info.pid}, which keeps running",
            )
        else:
            from loopscope.tui import make_app

            make_app(session, how=f"pid {info.pid} from outside: py-spy, no agent").run()
    finally:
        source.close()
        session.wait(_END_TIMEOUT)
        session.close()
    if source.reason:
        doing = "stopped observing" if source.pyspy.live else "could not observe"
        say(f"{doing} process {info.pid} with py-spy: {source.reason}")
        return 1
    if source.exited:
        say(f"process {info.pid} exited")
    else:
        say(f"stopped observing process {info.pid}; nothing was injected into it")
    return 0
