"""Race findings end to end: the problem programs under `loopscope run --headless --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from programruns import ProgramRuns

pytestmark = pytest.mark.spread  # programruns.py shares the runs between workers

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


def _expected(program: str) -> list[str]:
    first = (PROGRAMS / program).read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    return first.removeprefix("# expect: ").split()


@pytest.mark.parametrize(
    ("program", "code"),
    [
        ("race_balance.py", "LS501"),
        ("race_inventory.py", "LS501"),
        ("race_reconnect.py", "LS501"),
        ("race_watched.py", "LS502"),
    ],
)
def test_a_race_program_gets_a_race_finding_naming_its_function(
    program: str, code: str, program_runs: ProgramRuns
) -> None:
    family, function = _expected(program)
    run = program_runs(PROGRAMS / program)
    found = [
        f for f in run.findings if f["family"] == family and f["severity"] in ("warning", "error")
    ]
    assert found, run.shown()
    finding = found[0]
    assert finding["code"] == code
    assert finding["location"]["function"] == function
    assert Path(finding["location"]["file"]).resolve() == (PROGRAMS / program).resolve()
    assert function in finding["title"] and finding["fix"]


@pytest.mark.parametrize(
    "program",
    ["clean_balance.py", "clean_inventory.py", "clean_reconnect.py", "clean_watched.py"],
)
def test_a_clean_twin_gets_nothing_above_info(program: str, program_runs: ProgramRuns) -> None:
    assert _expected(program) == ["clean"]
    serious = [f for f in program_runs(PROGRAMS / program).findings if f["severity"] != "info"]
    assert serious == [], json.dumps(serious, indent=1)
