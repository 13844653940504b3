"""The timing families end to end: each problem program under `loopscope run --headless --json`
gets a finding of its family naming the function its header expects; its clean twin gets none
of these families at warning or above."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
FAMILIES = ("saturation", "gc", "executor", "variability")

# program, twin, seconds to watch (enough for the rules' sustained windows)
CASES = [
    ("gc_churn.py", "clean_gc.py", 6),
    ("executor_backlog.py", "clean_executor.py", 5),
    ("saturation_cpu.py", "clean_saturation.py", 6),
    ("variability_bursts.py", "clean_bursts.py", 10),
]


def _expectation(program: Path) -> list[str]:
    first = program.read_text().splitlines()[0]
    assert first.startswith("# expect: "), first
    return first.removeprefix("# expect: ").split()


def _run(program: Path, seconds: int, state: Path) -> dict[str, Any]:
    result = loopscope(
        "run", "--headless", "--duration", str(seconds), "--json", str(program), state=state
    )
    assert result.returncode == 0, result.stderr
    assert_no_loopscope_traceback(result.stderr)
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("program", "seconds"), [(p, s) for p, _, s in CASES], ids=str)
def test_problem_program_gets_its_finding(program: str, seconds: int, tmp_path: Path) -> None:
    path = PROGRAMS / program
    family, function = _expectation(path)
    report = _run(path, seconds, tmp_path)
    findings = [f for f in report["findings"] if f["family"] == family]
    assert findings, json.dumps(report["findings"], indent=1)
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


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("program", "seconds"), [(t, s) for _, t, s in CASES], ids=str)
def test_clean_twin_gets_none(program: str, seconds: int, tmp_path: Path) -> None:
    path = PROGRAMS / program
    assert _expectation(path) == ["clean"]
    report = _run(path, seconds, tmp_path)
    serious = [
        f
        for f in report["findings"]
        if f["family"] in FAMILIES and f["severity"] in ("warning", "error")
    ]
    assert not serious, json.dumps(serious, indent=1)
