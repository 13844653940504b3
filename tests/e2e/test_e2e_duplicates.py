"""The duplicate-work programs of tests/programs under `loopscope run --headless --json`: the
problem programs get a `duplicate` finding naming their function, the clean twins no finding of
warning or above."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
PROBLEMS = sorted(PROGRAMS.glob("duplicate_*.py"))
CLEAN = [
    PROGRAMS / f"clean_{name}.py"
    for name in ("price_singleflight", "report_cached", "distinct_requests", "worker_pool")
]
DURATION = "8"


def expectation(program: Path) -> list[str]:
    """The words after ``# expect:`` on the program's first line."""
    first = program.read_text().splitlines()[0]
    assert first.startswith("# expect: "), first
    return first.removeprefix("# expect: ").split()


def run(program: Path, tmp_path: Path) -> dict[str, Any]:
    result = loopscope(
        "run", "--headless", "--duration", DURATION, "--json", str(program), state=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert_no_loopscope_traceback(result.stderr)
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def test_every_problem_and_twin_says_what_to_expect() -> None:
    assert len(PROBLEMS) >= 2
    for program in PROBLEMS:
        family, function = expectation(program)
        assert family == "duplicate" and function
    for program in CLEAN:
        assert expectation(program) == ["clean"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program", PROBLEMS, ids=lambda p: p.stem)
def test_problem_programs_are_found(program: Path, tmp_path: Path) -> None:
    family, function = expectation(program)
    report = run(program, tmp_path)
    found = [
        f
        for f in report["findings"]
        if f["family"] == family
        and f["location"]
        and f["location"]["function"].rpartition(".")[2] == function
    ]
    assert found, json.dumps(report["findings"], indent=1)
    finding = found[0]
    assert Path(finding["location"]["file"]).resolve() == program.resolve()
    assert finding["code"] in ("LS401", "LS402")
    assert finding["severity"] in ("warning", "error")
    assert f"`{function}(" in finding["fix"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program", CLEAN, ids=lambda p: p.stem)
def test_clean_twins_have_no_warning(program: Path, tmp_path: Path) -> None:
    report = run(program, tmp_path)
    loud = [f for f in report["findings"] if f["severity"] in ("warning", "error")]
    assert loud == [], json.dumps(loud, indent=1)
