"""The source of ``loopscope attach``: the agent in a running process, then the process's end."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

from loopscope.attach._ladder import Attached
from loopscope.attach._proc import exists
from loopscope.events import Event, SourceState, TargetExited
from loopscope.sources.agent import AgentSource

_EXIT_SEEN = 2.0  # after the agent's connection drops, how long to look for the process's exit


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
