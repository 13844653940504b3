"""LS501-LS503: races — read, ``await``, write of shared state (see docs/findings.md)."""

from __future__ import annotations

import os

from loopscope.events import RaceSpan
from loopscope.model.snapshot import LostUpdateView, RaceWindowView, Snapshot
from loopscope.rules._timing import function_at
from loopscope.rules.finding import Finding, Kind, Location

FAMILY = "race"
OBSERVED = Kind("LS501", FAMILY)
LOST_UPDATE = Kind("LS502", FAMILY)
UNOBSERVED = Kind("LS503", FAMILY)

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


# What goes wrong, by kind of window.
_PATTERN = {"condition": "check-then-act", "value": "read-modify-write"}
_DAMAGE = {
    "condition": "a double booking or double spend (both tasks act on one check)",
    "value": "a lost update (one task's write undoes the other's)",
}


def _span_evidence(span: RaceSpan) -> dict[str, object]:
    return {
        "pattern": _PATTERN.get(span.via, span.via),
        "damage": _DAMAGE.get(span.via, ""),
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
    if span.via == "condition":
        title = (
            f"Check-then-act race on `{span.target}` in `{span.function}`: {window.max_tasks} "
            f"tasks at once passed its check ({_where(span.file, span.read_line)}) and awaited "
            f"before acting ({_where(span.file, span.write_line)}): {_DAMAGE['condition']}"
        )
    else:
        title = (
            f"Race on `{span.target}` in `{span.function}`: {window.max_tasks} tasks at once "
            f"between its read ({_where(span.file, span.read_line)}) and write "
            f"({_where(span.file, span.write_line)}): {_DAMAGE['value']}"
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
    location = Location(span.file, span.read_line, span.function)
    return OBSERVED.finding(severity, title, location, evidence, _fix(span.target, span.via))


def _unobserved(window: RaceWindowView) -> Finding:
    span = window.span
    return UNOBSERVED.finding(
        severity="info",
        title=(
            f"Possible {_PATTERN.get(span.via, 'race')} race on `{span.target}` in "
            f"`{span.function}`: {'check' if span.via == 'condition' else 'read'} "
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
        "read": function_at(entry.read),
        "other_write": function_at(entry.other_write),
        "write": function_at(write),
        "tasks": list(entry.tasks),
        "other_tasks": list(entry.other_tasks),
        "version_read": entry.version_read,
        "version_now": entry.version_now,
        "first_t": entry.first_t,
        "last_t": entry.last_t,
    }
    return LOST_UPDATE.finding(
        severity="error",
        title=title,
        location=Location.of(write),
        evidence=evidence,
        fix=_fix(entry.target, "value"),
    )


def _fix(target: str, via: str) -> str:
    if via == "condition":
        return (
            f"The check of `{target}` is stale by the time of the write, so two tasks can both "
            f"pass it and both act (the same seat booked twice, the same coupon spent twice). "
            f"Claim first: record the claim in `{target}` right after the check, before the "
            f"first await (and undo it if the work fails); or hold an `asyncio.Lock` (one per "
            f"key) from the check to the write; or check again after the await, right before "
            f"writing, with no await in between."
        )
    return (
        f"Hold an `asyncio.Lock` around the whole read-modify-write of `{target}` "
        f"(`async with lock:` from the read to the write), or make the update atomic: do the "
        f"await first, then read and write with no await in between (e.g. "
        f"`{target} -= amount` after the await returns)."
    )
