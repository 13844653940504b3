"""Rules: pure functions from a snapshot to findings, one module per family."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

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


MAX_ROUTES = 5  # routes named in a finding's evidence


def evaluate(snapshot: Snapshot) -> tuple[Finding, ...]:
    """The findings of every rule, most severe first (each rule's own order kept within); a
    finding at a function that a web service's requests wait in names their routes."""
    findings = [_with_routes(f, snapshot) for rule in RULES for f in rule(snapshot)]
    findings.sort(key=lambda f: -severity_rank(f.severity))
    return tuple(findings)


def _with_routes(finding: Finding, snapshot: Snapshot) -> Finding:
    """``finding`` with ``routes`` in its evidence: the routes whose requests waited in the
    function it names (LS101 names the routes its blocks stalled itself)."""
    if finding.location is None or "routes" in finding.evidence or not snapshot.route_waits:
        return finding
    function = finding.location.function
    routes = [route for route, functions in snapshot.route_waits if function in functions]
    if not routes:
        return finding
    return replace(finding, evidence={**finding.evidence, "routes": routes[:MAX_ROUTES]})


__all__ = ["RULES", "Finding", "Location", "Rule", "evaluate"]
