"""One `loopscope run --headless --json` of each problem program, shared by the tests that judge it.

The problem programs (tests/programs/) are judged twice: by test_programs.py, which checks every
program's header against its findings, and by the end-to-end test of each family, which checks
more of the finding (code, severity, title, fix). Both read the same run: a program runs once a
session, for as long as its header says it needs (``# seconds: N``, at least DEFAULT_S).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clirun import assert_no_loopscope_traceback, loopscope
from detection import expectation, program_findings

DEFAULT_S = 5.0


@dataclass(frozen=True)
class ProgramRun:
    program: Path
    report: dict[str, Any]

    @property
    def findings(self) -> list[dict[str, Any]]:
        return program_findings(self.report, self.program)

    def shown(self) -> str:
        return json.dumps(self.findings, indent=1)


class ProgramRuns:
    """Runs each program the first time a test asks for it, under ``state``."""

    def __init__(self, state: Path) -> None:
        self._state = state
        self._runs: dict[Path, ProgramRun] = {}

    def __call__(self, program: Path) -> ProgramRun:
        program = program.resolve()
        if program not in self._runs:
            self._runs[program] = self._run(program)
        return self._runs[program]

    def _run(self, program: Path) -> ProgramRun:
        seconds = max(DEFAULT_S, expectation(program).seconds)
        state = self._state / program.stem
        state.mkdir(parents=True, exist_ok=True)
        result = loopscope(
            "run",
            "--headless",
            "--duration",
            f"{seconds:g}",
            "--json",
            "--log",
            str(state / "program.log"),
            str(program),
            state=state,
        )
        assert result.returncode == 0, result.stderr
        assert_no_loopscope_traceback(result.stderr)
        assert_nothing_left_running(program)
        report = json.loads(result.stdout)
        assert isinstance(report, dict)
        return ProgramRun(program, report)


def assert_nothing_left_running(path: Path) -> None:
    """The programs loopscope started from ``path`` have ended by the time loopscope returned
    (or soon after)."""
    deadline = time.monotonic() + 5.0
    while (left := running_from(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"programs left running: {left}"


def running_from(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(") ", 1)[1][0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if str(path) in cmdline and state != "Z":
            found.append(f"{entry}: {cmdline}")
    return found
