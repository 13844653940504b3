"""Contention, task leaks and lost exceptions, end to end: each problem program under
`loopscope run --headless --json` gets its finding, naming the function its header expects;
its clean twin gets nothing of warning severity or above in these families (other families'
rules are tested on their own programs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
# problem program -> (its clean twin, the finding's code, seconds to run it)
CASES = {
    "contention_lock.py": ("clean_lock.py", "LS601", 5),
    "leak_tasks.py": ("clean_tasks.py", "LS701", 8),
    "exception_unretrieved.py": ("clean_unretrieved.py", "LS801", 4),
    "exception_never_awaited.py": ("clean_never_awaited.py", "LS802", 4),
}
FAMILIES = ("contention", "leak", "exception")


def _expect(program: Path) -> list[str]:
    first = program.read_text().splitlines()[0]
    assert first.startswith("# expect: "), first
    return first.removeprefix("# expect: ").split()


def _run(program: Path, tmp_path: Path, seconds: int) -> tuple[Path, dict[str, Any]]:
    # A copy under tmp_path, so that the e2e fixture checks that no program outlives the run.
    copy = tmp_path / program.name
    shutil.copy(program, copy)
    result = loopscope(
        "run",
        "--headless",
        "--duration",
        str(seconds),
        "--json",
        "--log",
        str(tmp_path / "program.log"),
        str(copy),
        state=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert_no_loopscope_traceback(result.stderr)
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return copy, report


@pytest.mark.parametrize("problem", sorted(CASES))
def test_the_problem_program_gets_its_finding(problem: str, tmp_path: Path) -> None:
    _, code, seconds = CASES[problem]
    family, function = _expect(PROGRAMS / problem)
    path, report = _run(PROGRAMS / problem, tmp_path, seconds)
    found = [f for f in report["findings"] if f["family"] == family and f["code"] == code]
    assert found, json.dumps(report["findings"], indent=1)
    finding = found[0]
    assert finding["severity"] in ("warning", "error")
    location = finding["location"]
    assert location is not None, finding
    assert Path(location["file"]).resolve() == path.resolve()
    assert location["function"].rpartition(".")[2] == function
    assert function in finding["title"]
    assert finding["fix"]


@pytest.mark.parametrize("problem", sorted(CASES))
def test_the_clean_twin_gets_no_warning(problem: str, tmp_path: Path) -> None:
    twin, _, seconds = CASES[problem]
    assert _expect(PROGRAMS / twin) == ["clean"]
    _, report = _run(PROGRAMS / twin, tmp_path, seconds)
    serious = [
        f
        for f in report["findings"]
        if f["family"] in FAMILIES and f["severity"] in ("warning", "error")
    ]
    assert serious == [], json.dumps(serious, indent=1)
