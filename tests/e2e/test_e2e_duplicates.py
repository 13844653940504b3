"""The duplicate-work programs of tests/programs under `loopscope run --headless --json`: the
problem programs get a `duplicate` finding naming their function, the clean twins no finding of
warning or above."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from programruns import ProgramRuns

pytestmark = pytest.mark.spread  # programruns.py shares the runs between workers

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
PROBLEMS = sorted(PROGRAMS.glob("duplicate_*.py"))
CLEAN = [
    PROGRAMS / f"clean_{name}.py"
    for name in ("price_singleflight", "report_cached", "distinct_requests", "worker_pool")
]


def expectation(program: Path) -> list[str]:
    """The words after ``# expect:`` on the program's first line."""
    first = program.read_text().splitlines()[0]
    assert first.startswith("# expect: "), first
    return first.removeprefix("# expect: ").split()


def test_every_problem_and_twin_says_what_to_expect() -> None:
    assert len(PROBLEMS) >= 2
    for program in PROBLEMS:
        family, function = expectation(program)
        assert family == "duplicate" and function
    for program in CLEAN:
        assert expectation(program) == ["clean"]


@pytest.mark.parametrize("program", PROBLEMS, ids=lambda p: p.stem)
def test_problem_programs_are_found(program: Path, program_runs: ProgramRuns) -> None:
    family, function = expectation(program)
    run = program_runs(program)
    found = [
        f
        for f in run.findings
        if f["family"] == family
        and f["location"]
        and f["location"]["function"].rpartition(".")[2] == function
    ]
    assert found, run.shown()
    finding = found[0]
    assert Path(finding["location"]["file"]).resolve() == program.resolve()
    assert finding["code"] in ("LS401", "LS402")
    assert finding["severity"] in ("warning", "error")
    assert f"`{function}(" in finding["fix"]


@pytest.mark.parametrize("program", CLEAN, ids=lambda p: p.stem)
def test_clean_twins_have_no_warning(program: Path, program_runs: ProgramRuns) -> None:
    loud = [f for f in program_runs(program).findings if f["severity"] in ("warning", "error")]
    assert loud == [], json.dumps(loud, indent=1)
