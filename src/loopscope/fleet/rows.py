"""What the dashboard's process list shows, apart from how it is gathered: one summary row per
process, and findings merged across processes. (The UI imports this module, never the fleet's
attach machinery.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from loopscope.rules.finding import Finding, severity_rank
from loopscope.session import View


@dataclass(frozen=True, slots=True)
class ProcessRow:
    pid: int
    name: str
    command: str
    state: str  # "live", "gone", "no loop"... (the program itself: "live" or "exited")
    lag_p99: float | None
    busy: float | None
    tasks: int | None
    blocks_per_min: float | None
    findings: int
    main: bool = False


@dataclass(frozen=True, slots=True)
class SharedFinding:
    """A finding, and every process it is found in (the first one's evidence)."""

    finding: Finding
    pids: tuple[int, ...]


@runtime_checkable
class Processes(Protocol):
    """Views of several processes, one of them selected (`loopscope.fleet.views.FleetViews`)."""

    @property
    def selected(self) -> int: ...

    def select(self, pid: int) -> None: ...

    def view(self) -> View: ...

    def processes(self) -> list[ProcessRow]: ...

    def findings(self) -> list[SharedFinding]: ...


def shared(views: list[tuple[int, str, str, str, View | None]]) -> list[SharedFinding]:
    """Findings alike (code and location) in several processes merged into one, with their
    pids; the first process's finding stands for them."""
    seen: dict[tuple[str, str, int, str], tuple[Finding, list[int]]] = {}
    for pid, _name, _command, _state, view in views:
        for finding in () if view is None else view.findings:
            loc = finding.location
            key = (
                finding.code,
                "" if loc is None else loc.file,
                0 if loc is None else loc.line,
                "" if loc is None else loc.function,
            )
            if key in seen:
                seen[key][1].append(pid)
            else:
                seen[key] = (finding, [pid])
    merged = [SharedFinding(f, tuple(pids)) for f, pids in seen.values()]
    merged.sort(key=lambda s: (-severity_rank(s.finding.severity), -len(s.pids), s.finding.code))
    return merged
