"""Every problem program in tests/programs/ under `loopscope run --headless --json`: the finding
its first line expects, naming its function, and nothing serious in the clean twins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from detection import Expectation, judge, programs

DURATION_S = 5


@pytest.mark.parametrize("expect", programs(), ids=lambda e: e.name)
def test_program(expect: Expectation, tmp_path: Path) -> None:
    result = loopscope(
        "run",
        "--headless",
        "--duration",
        str(max(DURATION_S, expect.seconds)),
        "--json",
        "--log",
        str(tmp_path / "program.log"),
        str(expect.path),
        state=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert_no_loopscope_traceback(result.stderr)
    findings = json.loads(result.stdout)["findings"]
    verdict = judge(expect, findings)
    shown = json.dumps(
        [{k: f[k] for k in ("code", "severity", "title")} for f in findings], indent=1
    )
    assert verdict.found, f"no {expect.family} finding naming {expect.function}: {shown}"
    assert not verdict.false_positives, f"unexpected findings: {shown}"
