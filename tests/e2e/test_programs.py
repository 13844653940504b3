"""Every problem program in tests/programs/ under `loopscope run --headless --json`: the finding
its first line expects, naming its function, and nothing serious in the clean twins."""

from __future__ import annotations

import json

import pytest

from detection import Expectation, judge, programs
from programruns import ProgramRuns


@pytest.mark.parametrize("expect", programs(), ids=lambda e: e.name)
def test_program(expect: Expectation, program_runs: ProgramRuns) -> None:
    findings = program_runs(expect.path).findings
    verdict = judge(expect, findings)
    shown = json.dumps(
        [{k: f[k] for k in ("code", "severity", "title")} for f in findings], indent=1
    )
    assert verdict.found, f"no {expect.family} finding naming {expect.function}: {shown}"
    assert not verdict.false_positives, f"unexpected findings: {shown}"
