"""Problem programs and what loopscope must find in them (tests/programs/).

Each program's first line says what it shows: ``# expect: <family> <function>`` (the finding's
family and the application function it must name), ``# expect: clean`` (a well-behaved twin: no
finding of severity warning or above) or ``# expect: skip <reason>`` (not judged yet; the harness
says why). Files whose name starts with ``_`` are helpers, not programs. A line ``# also: <family>
...`` among the first ones names families the problem may show as too (bursts of allocation are also
GC pauses): their findings are neither required nor false positives; ``# seconds: N``, that the
problem needs N seconds to show (a program whose bursts come every few seconds); ``# cause: C``,
the cause its finding must give (``gil``: C code holding the GIL, not I/O). The end-to-end
tests and benchmarks/detection.py judge both corpora with `judge`: tests/programs/ (plain asyncio)
and tests/services/ (services on FastAPI, Starlette, uvicorn, aiohttp and anyio, each with its own
loopback load).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).parent / "programs"
SERVICES = Path(__file__).parent / "services"
CORPORA = (PROGRAMS, SERVICES)
_EXPECT = re.compile(r"#\s*expect:\s*(?:(clean)|skip\s+(.+?)|([a-z]+)\s+([\w.]+))\s*$")
_ALSO = re.compile(r"#\s*also:\s*([a-z ]+?)\s*$")
_SECONDS = re.compile(r"#\s*seconds:\s*(\d+(?:\.\d+)?)\s*$")
_CAUSE = re.compile(r"#\s*cause:\s*([a-z]+)\s*$")
SERIOUS = ("warning", "error")


@dataclass(frozen=True)
class Expectation:
    path: Path
    family: str | None  # None: clean
    function: str | None
    also: frozenset[str] = frozenset()  # families the problem may show as too
    seconds: float = 0.0  # how long it must run for the problem to show (0: any time)
    skip: str | None = None  # why the program is not judged yet
    cause: str | None = None  # the cause the finding must give, where it says one

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Verdict:
    found: bool  # the expected finding is there (always True for a clean program)
    false_positives: tuple[str, ...]  # "family function" of serious findings not expected

    @property
    def ok(self) -> bool:
        return self.found and not self.false_positives


def expectation(path: Path) -> Expectation:
    lines = path.read_text(encoding="utf-8").splitlines()
    match = _EXPECT.match(lines[0])
    if match is None:
        raise ValueError(
            f"{path}: the first line must be '# expect: FAMILY FUNCTION', clean or skip REASON"
        )
    also = frozenset(
        family for line in lines[1:4] if (m := _ALSO.match(line)) for family in m.group(1).split()
    )
    seconds = next((float(m.group(1)) for line in lines[1:4] if (m := _SECONDS.match(line))), 0.0)
    if match.group(1):
        return Expectation(path, None, None, also, seconds)
    if match.group(2):
        return Expectation(path, None, None, also, seconds, skip=match.group(2))
    cause = next((m.group(1) for line in lines[1:4] if (m := _CAUSE.match(line))), None)
    return Expectation(path, match.group(3), match.group(4), also, seconds, cause=cause)


def programs(folder: Path = PROGRAMS) -> list[Expectation]:
    """The programs of one corpus (``PROGRAMS`` or ``SERVICES``), skipped ones included."""
    return [expectation(p) for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")]


def program_findings(report: dict[str, Any], program: Path) -> list[dict[str, Any]]:
    """The findings of a `--json` report on ``program``: its process's, and those of its worker
    processes (the children running the program itself, as uvicorn's workers; not its load
    generator)."""
    findings = list(report["findings"])
    for process in report.get("processes") or ():
        if process.get("process") == program.stem:
            findings.extend(process.get("findings") or ())
    return findings


def _names(finding: dict[str, Any], function: str) -> bool:
    location = finding.get("location") or {}
    name = str(location.get("function") or "")
    return name == function or name.rsplit(".", 1)[-1] == function.rsplit(".", 1)[-1]


def label(finding: dict[str, Any]) -> str:
    """How a false positive is listed: "family function"."""
    return f"{finding['family']} {(finding.get('location') or {}).get('function', '-')}"


def judge(expect: Expectation, findings: list[dict[str, Any]]) -> Verdict:
    """Whether ``findings`` (as in `loopscope report --json`) show what ``expect`` says.

    A problem program must have a finding of its family naming its function (at any
    severity). Its other serious findings of that family are not false positives (one problem
    can show in several places); serious findings of other families are."""
    serious = [f for f in findings if f["severity"] in SERIOUS]
    if expect.family is None:
        found = True
        wrong = serious
    else:
        assert expect.function is not None
        found = any(
            f["family"] == expect.family
            and _names(f, expect.function)
            and (expect.cause is None or (f.get("evidence") or {}).get("cause") == expect.cause)
            for f in findings
        )
        wrong = [f for f in serious if f["family"] not in (expect.family, *expect.also)]
    return Verdict(
        found,
        tuple(label(f) for f in wrong),
    )
