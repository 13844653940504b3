"""LS501-LS503: races — read, ``await``, write of shared state (see docs/findings.md)."""

from __future__ import annotations

import os

from loopscope.events import Frame, RaceSpan
from loopscope.model.snapshot import LostUpdateView, RaceWindowView, Snapshot
from loopscope.rules.finding import Finding, Location

FAMILY = "race"
OBSERVED = "LS501"
LOST_UPDATE = "LS502"
UNOBSERVED = "LS503"

# An observed window is an error once seen this often, or with this many tasks inside at once.
ERROR_OBSERVATIONS = 10
ERROR_TASKS = 5
MAX_UNOBSERVED = 10  # info findings for windows never seen with two tasks inside


def check(snapshot: Snapshot) -> list[Finding]:
    races = snapshot.races
    observed = [w for w in races.windows if w.observations > 0]
    findings = [_lost(e) for e in races.lost_updates]
    findings += [_observed(w, snapshot.duration_s) for w in observed]
    quiet = [w for w in races.windows if w.observations == 0 and not w.span.guarded]
    findings += [_unobserved(w) for w in quiet[:MAX_UNOBSERVED]]
    return findings


def _where(file: str, line: int) -> str:
    return f"{os.path.basename(file)}:{line}"


def _span_evidence(span: RaceSpan) -> dict[str, object]:
    return {
        "target": span.target,
        "read_line": span.read_line,
        "await_lines": list(span.await_lines),
        "write_line": span.write_line,
        "via": span.via,
    }


def _observed(window: RaceWindowView, duration: float) -> Finding:
    span = window.span
    severity = (
        "error"
        if window.observations >= ERROR_OBSERVATIONS or window.max_tasks >= ERROR_TASKS
        else "warning"
    )
    title = (
        f"Race on `{span.target}` in `{span.function}`: {window.max_tasks} tasks at once between "
        f"its read ({_where(span.file, span.read_line)}) and write "
        f"({_where(span.file, span.write_line)})"
    )
    evidence = {
        **_span_evidence(span),
        "observations": window.observations,
        "max_tasks": window.max_tasks,
        "per_minute": round(window.observations * 60.0 / max(duration, 1.0), 1),
        "tasks": list(window.tasks),
        "first_t": window.first_t,
        "last_t": window.last_t,
    }
    return Finding(
        code=OBSERVED,
        family=FAMILY,
        severity=severity,
        title=title,
        location=Location(span.file, span.read_line, span.function),
        evidence=evidence,
        fix=_fix(span.target, span.via),
    )


def _unobserved(window: RaceWindowView) -> Finding:
    span = window.span
    return Finding(
        code=UNOBSERVED,
        family=FAMILY,
        severity="info",
        title=(
            f"Possible race on `{span.target}` in `{span.function}`: read "
            f"({_where(span.file, span.read_line)}), await, write "
            f"({_where(span.file, span.write_line)}); not seen with two tasks inside"
        ),
        location=Location(span.file, span.read_line, span.function),
        evidence=_span_evidence(span),
        fix=_fix(span.target, span.via),
    )


def _lost(entry: LostUpdateView) -> Finding:
    write = entry.write
    title = (
        f"Lost update of `{entry.target}` in `{write.function}`: written at "
        f"{_where(write.file, write.line)} from a value read at "
        f"{_where(entry.read.file, entry.read.line)} that another task had changed"
    )
    evidence = {
        "target": entry.target,
        "count": entry.count,
        "read": _frame(entry.read),
        "other_write": _frame(entry.other_write),
        "write": _frame(write),
        "tasks": list(entry.tasks),
        "other_tasks": list(entry.other_tasks),
        "version_read": entry.version_read,
        "version_now": entry.version_now,
        "first_t": entry.first_t,
        "last_t": entry.last_t,
    }
    return Finding(
        code=LOST_UPDATE,
        family=FAMILY,
        severity="error",
        title=title,
        location=Location.of(write),
        evidence=evidence,
        fix=_fix(entry.target, "value"),
    )


def _frame(frame: Frame) -> str:
    return f"{frame.function} ({_where(frame.file, frame.line)})"


def _fix(target: str, via: str) -> str:
    if via == "condition":
        return (
            f"The check of `{target}` is stale by the time of the write: hold an `asyncio.Lock` "
            f"from the check to the write (`async with self._lock:`), or check again after the "
            f"await, right before writing, with no await in between."
        )
    return (
        f"Hold an `asyncio.Lock` around the whole read-modify-write of `{target}` "
        f"(`async with lock:` from the read to the write), or make the update atomic: do the "
        f"await first, then read and write with no await in between (e.g. "
        f"`{target} -= amount` after the await returns)."
    )
