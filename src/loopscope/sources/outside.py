"""The source of ``loopscope attach --no-inject`` without an agent, from outside the process:
py-spy (blocks, busy share and hot frames of its loop thread), on 3.14+ the target's own
interpreter reading its tasks and await sites with ``_remote_debugging``, and, if the program
runs one, aiomonitor's HTTP API (its tasks)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

from loopscope.attach._proc import ProcessInfo, exists
from loopscope.events import PROTOCOL_VERSION, Event, Hello, SourceState, TargetExited
from loopscope.sources.aiomonitor import AiomonitorSource
from loopscope.sources.base import Source
from loopscope.sources.merge import MergedSource
from loopscope.sources.pyspy import OUTSIDE_INTERVAL, PySpySource
from loopscope.sources.remote_tasks import RemoteTasksSource
from loopscope.sources.remote_tasks import unavailable as remote_unavailable

AGENT_ABSENT = "not injected (--no-inject): no lag or await sites"


class OutsideSource:
    """The agent marked absent, the events of py-spy (unless ``pyspy`` is False) and of the
    program's aiomonitor, then `TargetExited` if the process ends."""

    def __init__(self, info: ProcessInfo, *, pyspy: bool = True, native: bool = False) -> None:
        self.pid = info.pid
        self._info = info

        def alive() -> bool:
            return exists(self.pid)

        interval = None if native else OUTSIDE_INTERVAL  # (--native has its own)
        self.pyspy = (
            PySpySource(info.pid, alive=alive, native=native, interval=interval) if pyspy else None
        )
        self.aiomonitor = AiomonitorSource(info.pid, alive=alive)
        self.remote_tasks = (
            RemoteTasksSource(info, alive=alive) if remote_unavailable(info) is None else None
        )
        self.exited = False
        self.reason = ""  # why nothing could observe the process, if so
        self._closed = threading.Event()
        sources: list[Source] = [self.aiomonitor]
        if self.pyspy is not None:
            sources.insert(0, self.pyspy)
        if self.remote_tasks is not None:
            sources.append(self.remote_tasks)
        self._merged = MergedSource(sources)

    def events(self) -> Iterator[Event]:
        yield self._hello()
        yield SourceState(t=time.time(), source="agent", state="unavailable", detail=AGENT_ABSENT)
        yield from self._merged.events()
        tasks_live = self.aiomonitor.live or (
            self.remote_tasks is not None and self.remote_tasks.live
        )
        if not tasks_live and (self.pyspy is None or not self.pyspy.live):
            self.reason = self.pyspy.reason if self.pyspy is not None else "no aiomonitor found"
        elif self.pyspy is not None and self.pyspy.live and self.pyspy.reason:
            self.reason = self.pyspy.reason
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
        self._merged.close()
