"""Rules: pure functions from a snapshot to findings, one module per family."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from loopscope.model.snapshot import Snapshot
from loopscope.rules import (
    blocking,
    contention,
    duplicate,
    exception,
    executor,
    gc_pauses,
    leak,
    race,
    saturation,
    variability,
)
from loopscope.rules.finding import Finding, Location, severity_rank

Rule = Callable[[Snapshot], list[Finding]]

RULES: Sequence[Rule] = (
    blocking.check,
    duplicate.check,
    race.check,
    contention.check,
    leak.check,
    exception.check,
    saturation.check,
    gc_pauses.check,
    executor.check,
    variability.check,
)


def evaluate(snapshot: Snapshot) -> tuple[Finding, ...]:
    """The findings of every rule, most severe first (each rule's own order kept within)."""
    findings = [f for rule in RULES for f in rule(snapshot)]
    findings.sort(key=lambda f: -severity_rank(f.severity))
    return tuple(findings)


__all__ = ["RULES", "Finding", "Location", "Rule", "evaluate"]
