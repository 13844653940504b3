"""The program and its followed child processes as one source of views for the dashboard: one
summary row per process, the findings of all of them (one row per finding, with the pids that
have it), and the view of the process the dashboard shows."""

from __future__ import annotations

import threading
from typing import Protocol

from loopscope.fleet._fleet import LIVE
from loopscope.fleet.follow import Children
from loopscope.fleet.rows import ALL, ProcessRow, SharedFinding, merged, shared
from loopscope.model import RECENT_SECONDS
from loopscope.session import View


class Views(Protocol):
    def view(self) -> View: ...


class FleetViews:
    """``main`` (the program's own session) and ``children``; `view` is the selected one's."""

    def __init__(self, main: Views, pid: int, name: str, children: Children) -> None:
        self._main = main
        self.pid = pid
        self.name = name
        self.children = children
        self._lock = threading.Lock()
        self._selected: int | None = None  # None: the program itself; ALL: every process

    @property
    def selected(self) -> int:
        return self.pid if self._selected is None else self._selected

    def select(self, pid: int) -> None:
        """Show process ``pid`` (the program's own pid: the program; `ALL`: every process
        together)."""
        with self._lock:
            self._selected = None if pid == self.pid else pid

    def view(self) -> View:
        with self._lock:
            selected = self._selected
        if selected == ALL:
            return merged([(pid, view) for pid, _, _, _, view in self.views() if view is not None])
        if selected is not None:
            member = next((m for m in self.children.fleet.members() if m.pid == selected), None)
            if member is not None and member.session is not None:
                return member.session.view()
        return self._main.view()

    def views(self) -> list[tuple[int, str, str, str, View | None]]:
        """(pid, name, command, state, view) of the program, then of each child."""
        main = self._main.view()
        state = "exited" if main.snapshot.exited is not None else LIVE
        command = " ".join(main.snapshot.target.argv) if main.snapshot.target else ""
        out: list[tuple[int, str, str, str, View | None]] = [
            (self.pid, self.name, command, state, main)
        ]
        for m in self.children.fleet.members():
            # The fleet's newest view of each child (taken every second on its own thread):
            # the list costs the UI one snapshot, however many processes there are.
            out.append((m.pid, m.name, m.command, m.state, m.view))
        return out

    def processes(self) -> list[ProcessRow]:
        """One summary row per process, the program first."""
        rows = []
        for pid, name, command, state, view in self.views():
            if view is None:
                rows.append(ProcessRow(pid, name, command, state, None, None, None, None, 0))
                continue
            snap = view.snapshot
            rows.append(
                ProcessRow(
                    pid=pid,
                    name=name,
                    command=command,
                    state=state,
                    lag_p99=snap.lag.p99,
                    busy=snap.lag.busy,
                    tasks=snap.tasks.total if snap.loops else None,
                    blocks_per_min=snap.blocks.recent_count * 60.0 / RECENT_SECONDS,
                    findings=len(view.findings),
                    main=pid == self.pid,
                )
            )
        return rows

    def findings(self) -> list[SharedFinding]:
        """Every process's findings, one row per finding code and location, worst first."""
        return shared(self.views())
