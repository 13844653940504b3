"""The source of ``loopscope run``: the agent of a program loopscope started, then its exit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from loopscope.events import Event, TargetExited
from loopscope.runner import Program, signal_name
from loopscope.sources.agent import AgentSource


class RunSource:
    """The events of a program loopscope started: its agent's, then its exit.

    After the agent's stream ends (the program exited, or its agent went away) this waits for
    the child and emits `TargetExited`; the same when the child exits before its agent started.
    """

    def __init__(self, program: Program, *, connect_timeout: float = 15.0) -> None:
        self.program = program
        self.agent = AgentSource(
            program.socket_path, connect_timeout=connect_timeout, alive=program.alive
        )
        self._closed = threading.Event()

    def events(self) -> Iterator[Event]:
        yield from self.agent.events()
        while not self._closed.is_set():
            code = self.program.wait(0.1)
            if code is not None:
                yield TargetExited(
                    t=time.time(), exit_code=code, reason=self._reason(code, self.agent.connected)
                )
                return

    def close(self) -> None:
        self._closed.set()
        self.agent.close()

    def _reason(self, code: int, connected: bool) -> str:
        if self.program.stopped_by_loopscope:
            reason = "stopped by loopscope"
            if code < 0:
                reason += f" with {signal_name(-code)}"
        elif code < 0:
            reason = f"killed by {signal_name(-code)}"
        else:
            reason = "exited"
        if not connected:
            reason += " before its agent started"
        return reason
