"""Contention, task leaks and lost exceptions, end to end: each problem program under
`loopscope run --headless --json` gets its finding, naming the function its header expects;
its clean twin gets nothing of warning severity or above in these families (other families'
rules are tested on their own programs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from programruns import ProgramRuns

pytestmark = pytest.mark.spread  # programruns.py shares the runs between workers

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
# problem program -> (its clean twin, the finding's code)
CASES = {
    "contention_lock.py": ("clean_lock.py", "LS601"),
    "leak_tasks.py": ("clean_tasks.py", "LS701"),
    "exception_unretrieved.py": ("clean_unretrieved.py", "LS801"),
    "exception_never_awaited.py": ("clean_never_awaited.py", "LS802"),
}
FAMILIES = ("contention", "leak", "exception")


def _expect(program: Path) -> list[str]:
    first = program.read_text().splitlines()[0]
    assert first.startswith("# expect: "), first
    return first.removeprefix("# expect: ").split()


@pytest.mark.parametrize("problem", sorted(CASES))
def test_the_problem_program_gets_its_finding(problem: str, program_runs: ProgramRuns) -> None:
    _, code = CASES[problem]
    path = PROGRAMS / problem
    family, function = _expect(path)
    run = program_runs(path)
    found = [f for f in run.findings if f["family"] == family and f["code"] == code]
    assert found, run.shown()
    finding = found[0]
    assert finding["severity"] in ("warning", "error")
    location = finding["location"]
    assert location is not None, finding
    assert Path(location["file"]).resolve() == path.resolve()
    assert location["function"].rpartition(".")[2] == function
    assert function in finding["title"]
    assert finding["fix"]


@pytest.mark.parametrize("problem", sorted(CASES))
def test_the_clean_twin_gets_no_warning(problem: str, program_runs: ProgramRuns) -> None:
    twin, _ = CASES[problem]
    assert _expect(PROGRAMS / twin) == ["clean"]
    serious = [
        f
        for f in program_runs(PROGRAMS / twin).findings
        if f["family"] in FAMILIES and f["severity"] in ("warning", "error")
    ]
    assert serious == [], json.dumps(serious, indent=1)
