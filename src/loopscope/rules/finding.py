"""Findings: what the rules conclude from a snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopscope.model.location import Location as Location

SEVERITIES = ("info", "warning", "error")
FAMILIES = (
    "blocking",
    "saturation",
    "gc",
    "duplicate",
    "race",
    "contention",
    "executor",
    "leak",
    "exception",
    "variability",
)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # stable, e.g. "LS101"
    family: str  # one of FAMILIES
    severity: str  # one of SEVERITIES
    title: str  # one line, names the code location
    location: Location | None
    evidence: dict[str, Any] = field(default_factory=dict)  # JSON-ready numbers and lists
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        """The finding in the schema of `loopscope report --json`."""
        return {
            "code": self.code,
            "family": self.family,
            "severity": self.severity,
            "title": self.title,
            "location": None
            if self.location is None
            else {
                "file": self.location.file,
                "line": self.location.line,
                "function": self.location.function,
            },
            "evidence": self.evidence,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of finding, named once by the rule that reports it: its code and family."""

    code: str
    family: str

    def finding(
        self,
        severity: str,
        title: str,
        location: Location | None,
        evidence: dict[str, Any],
        fix: str,
    ) -> Finding:
        return Finding(self.code, self.family, severity, title, location, evidence, fix)


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)
