"""Problem programs and what loopscope must find in them (tests/programs/).

Each program's first line says what it shows: ``# expect: <family> <function>`` (the finding's
family and the application function it must name) or ``# expect: clean`` (a well-behaved twin:
no finding of severity warning or above). The end-to-end test and benchmarks/detection.py both
judge the programs with `judge`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).parent / "programs"
_EXPECT = re.compile(r"#\s*expect:\s*(?:(clean)|([a-z]+)\s+([\w.]+))\s*$")
SERIOUS = ("warning", "error")


@dataclass(frozen=True)
class Expectation:
    path: Path
    family: str | None  # None: clean
    function: str | None

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
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = _EXPECT.match(first)
    if match is None:
        raise ValueError(f"{path}: the first line must be '# expect: FAMILY FUNCTION' or clean")
    if match.group(1):
        return Expectation(path, None, None)
    return Expectation(path, match.group(2), match.group(3))


def programs() -> list[Expectation]:
    return [expectation(p) for p in sorted(PROGRAMS.glob("*.py"))]


def _names(finding: dict[str, Any], function: str) -> bool:
    location = finding.get("location") or {}
    name = str(location.get("function") or "")
    return name == function or name.rsplit(".", 1)[-1] == function.rsplit(".", 1)[-1]


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
        found = any(f["family"] == expect.family and _names(f, expect.function) for f in findings)
        wrong = [f for f in serious if f["family"] != expect.family]
    return Verdict(
        found,
        tuple(
            f"{f['family']} {(f.get('location') or {}).get('function', '-')}" for f in wrong
        ),
    )
