"""Following a program's child processes beside the program itself (``run``, ``attach
--children``): a fleet of its Python descendants, and what the headless output says of each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from loopscope.attach._errors import AttachError
from loopscope.attach._proc import inspect
from loopscope.events import Event
from loopscope.fleet._fleet import ATTACHING, FAILED, LIVE, NO_LOOP, Fleet, Member, Target
from loopscope.fleet._procs import descendants, process_name
from loopscope.session import View
from loopscope.sources.recorded import RecordingControl

_RESCAN_S = 1.0


class Children:
    """The Python processes below ``pid``, each attached when it appears (a worker started
    later included) and marked gone when it exits."""

    def __init__(
        self,
        pid: int,
        *,
        log: Callable[[str], None],
        method: str = "auto",
        recording: RecordingControl | None = None,
    ) -> None:
        """``recording``: each child's events go into its recording (when one runs), with the
        child's pid."""
        self.pid = pid
        self._recording = recording
        self.fleet = Fleet(
            Target(roots=(pid,)),
            log=log,
            method=method,
            rescan=_RESCAN_S,
            tap=None if recording is None else self._record,
        )
        self._final: dict[int, View] = {}

    def _record(self, pid: int, event: Event) -> None:
        recorder = None if self._recording is None else self._recording.recorder
        if recorder is not None:
            recorder.put(event, pid)

    def start(self) -> None:
        self.fleet.start()

    def close(self) -> None:
        """Detach from every child; their final views are kept for `finish`."""
        self.fleet.close()
        for member in self.fleet.members():
            if member.session is not None:
                self._final[member.pid] = member.session.view()

    def _view(self, member: Member) -> View | None:
        final = self._final.get(member.pid)
        if final is not None or member.session is None:
            return final or member.view
        return member.session.view()

    def lines(self) -> list[str]:
        """One summary line per child process."""
        from loopscope import report

        out = []
        for m in self.fleet.members():
            view = self._view(m)
            if view is None or m.state in (NO_LOOP, FAILED, ATTACHING):
                out.append(f"  {_who(m)}: {_state(m)}")
            elif not view.snapshot.loops:
                out.append(f"  {_who(m)}: no event loop running")
            else:
                gone = "" if m.state == LIVE else f" [{m.state}]"
                out.append(f"  {_who(m)}{gone}: {report.summary_line(view)}")
        return out

    def render(self) -> RenderableType:
        """The findings of each child process, under a heading naming it."""
        from loopscope import report

        parts: list[RenderableType] = []
        for m in self.fleet.members():
            view = self._view(m)
            parts.append(Text())
            parts.append(Text(f"{_who(m)} ({_state(m)}):", style="bold"))
            if view is not None:
                parts.append(report.render_findings(view))
        return Group(*parts)

    def json(self) -> list[dict[str, Any]]:
        """Each child process: pid, process, state, and its report (target, findings...)."""
        from loopscope import report

        out = []
        for m in self.fleet.members():
            view = self._view(m)
            entry: dict[str, Any] = {
                "pid": m.pid,
                "process": m.name,
                "command": m.command,
                "state": m.state,
                "detail": m.reason,
                "loop": view is not None and bool(view.snapshot.loops),
            }
            if view is not None:
                entry.update(report.report_json(view))
            out.append(entry)
        return out


def _who(m: Member) -> str:
    return f"pid {m.pid} {m.name}"


def _state(m: Member) -> str:
    if m.state == NO_LOOP:
        return f"no event loop ({m.reason})"
    if m.state == FAILED:
        return f"not watched: {m.reason}"
    return m.state


def children_with_asyncio(pid: int) -> list[tuple[int, str]]:
    """The Python processes below ``pid`` that imported asyncio: (pid, program name)."""
    out = []
    for child in descendants(pid):
        try:
            info = inspect(child)
        except AttachError:
            continue
        if info.python is not None and info.asyncio:
            name = process_name(info)
            if name in ("spawn_worker", "forkserver"):
                name = _root_name(pid)
            out.append((child, name))
    return out


def _root_name(pid: int) -> str:
    try:
        return process_name(inspect(pid))
    except AttachError:
        return "python"
