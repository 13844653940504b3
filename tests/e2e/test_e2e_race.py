"""Race findings end to end: the problem programs under `loopscope run --headless --json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


def _run(program: str, tmp_path: Path) -> dict[str, Any]:
    result = loopscope(
        "run", "--headless", "--duration", "4", "--json", str(PROGRAMS / program), state=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert_no_loopscope_traceback(result.stderr)
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


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
    program: str, code: str, tmp_path: Path
) -> None:
    family, function = _expected(program)
    report = _run(program, tmp_path)
    found = [
        f
        for f in report["findings"]
        if f["family"] == family and f["severity"] in ("warning", "error")
    ]
    assert found, json.dumps(report["findings"], indent=1)
    finding = found[0]
    assert finding["code"] == code
    assert finding["location"]["function"] == function
    assert Path(finding["location"]["file"]).resolve() == (PROGRAMS / program).resolve()
    assert function in finding["title"] and finding["fix"]


@pytest.mark.parametrize(
    "program",
    ["clean_balance.py", "clean_inventory.py", "clean_reconnect.py", "clean_watched.py"],
)
def test_a_clean_twin_gets_nothing_above_info(program: str, tmp_path: Path) -> None:
    assert _expected(program) == ["clean"]
    report = _run(program, tmp_path)
    serious = [f for f in report["findings"] if f["severity"] != "info"]
    assert serious == [], json.dumps(serious, indent=1)
