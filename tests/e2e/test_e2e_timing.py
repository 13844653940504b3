"""The timing families end to end: each problem program under `loopscope run --headless --json`
gets a finding of its family naming the function its header expects; its clean twin gets none
of these families at warning or above."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from programruns import ProgramRuns

# judged on timing: programruns.SERIAL
pytestmark = [pytest.mark.spread, pytest.mark.serial]

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
FAMILIES = ("saturation", "gc", "executor", "variability")

# program, twin (each runs as long as its header says: enough for the rules' sustained windows)
CASES = [
    ("gc_churn.py", "clean_gc.py"),
    ("executor_backlog.py", "clean_executor.py"),
    ("saturation_cpu.py", "clean_saturation.py"),
    ("variability_bursts.py", "clean_bursts.py"),
]


def _expectation(program: Path) -> list[str]:
    first = program.read_text().splitlines()[0]
    assert first.startswith("# expect: "), first
    return first.removeprefix("# expect: ").split()


@pytest.mark.parametrize("program", [p for p, _ in CASES], ids=str)
def test_problem_program_gets_its_finding(program: str, program_runs: ProgramRuns) -> None:
    path = PROGRAMS / program
    family, function = _expectation(path)
    run = program_runs(path)
    findings = [f for f in run.findings if f["family"] == family]
    assert findings, run.shown()
    named = [
        f
        for f in findings
        if f["location"]
        and f["location"]["function"].rsplit(".", 1)[-1] == function
        and Path(f["location"]["file"]).resolve() == path.resolve()
    ]
    assert named, json.dumps(findings, indent=1)
    finding = named[0]
    assert function in finding["title"]
    assert finding["fix"]


@pytest.mark.parametrize("program", [t for _, t in CASES], ids=str)
def test_clean_twin_gets_none(program: str, program_runs: ProgramRuns) -> None:
    path = PROGRAMS / program
    assert _expectation(path) == ["clean"]
    serious = [
        f
        for f in program_runs(path).findings
        if f["family"] in FAMILIES and f["severity"] in ("warning", "error")
    ]
    assert not serious, json.dumps(serious, indent=1)
