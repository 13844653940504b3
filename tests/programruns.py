"""One `loopscope run --headless --json` of each problem program, shared by the tests that judge it.

The problem programs (tests/programs/) are judged twice: by test_programs.py, which checks every
program's header against its findings, and by the end-to-end test of each family, which checks
more of the finding (code, severity, title, fix). Both read the same run: a program runs once a
session, for as long as its header says it needs (``# seconds: N``, at least DEFAULT_S). Under
pytest-xdist the workers share the runs through their session's directory: the first worker to
ask for a program runs it while holding a lock on its folder, the others wait and read its report.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from detection import SERVICES, expectation, program_findings

DEFAULT_S = 5.0
# The runs judged on timing (a GC pause, an executor's backlog, the loop's busy share, the lag's
# spread, and the silence of the clean services under their load): with other tests taking the
# cores they can show what the program does not do. The tests that read them are marked `serial`
# (`make test` runs those alone, after the others), and only those may read them.
SERIAL = frozenset(
    {
        "gc_churn",
        "clean_gc",
        "executor_backlog",
        "clean_executor",
        "saturation_cpu",
        "clean_saturation",
        "variability_bursts",
        "clean_bursts",
        "executor_fastapi_sync",  # with the cores taken, its server's own code blocks the loop
        *(p.stem for p in SERVICES.glob("clean_*.py")),
    }
)


def marks(program: Path) -> list[pytest.MarkDecorator]:
    """The marks of a test that reads ``program``'s run."""
    return [pytest.mark.serial] if program.stem in SERIAL else []


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
    """Runs each program the first time a test asks for it, under ``state`` (a folder shared by
    every process of the test session), for tests marked `serial` or not."""

    def __init__(
        self, state: Path, serial: bool = False, runs: dict[Path, ProgramRun] | None = None
    ) -> None:
        self._state = state
        self._serial = serial
        self._runs: dict[Path, ProgramRun] = {} if runs is None else runs

    def for_test(self, serial: bool) -> ProgramRuns:
        """The same runs, for a test marked `serial` or not."""
        return ProgramRuns(self._state, serial, self._runs)

    def __call__(self, program: Path) -> ProgramRun:
        program = program.resolve()
        assert (program.stem in SERIAL) == self._serial, (
            f"{program.name}: its run is read by tests "
            + ("marked serial only" if program.stem in SERIAL else "not marked serial only")
            + " (programruns.SERIAL), so that it is made once, in one phase of `make test`"
        )
        if program not in self._runs:
            self._runs[program] = self._shared(program)
        return self._runs[program]

    def _shared(self, program: Path) -> ProgramRun:
        state = self._state / program.stem
        state.mkdir(parents=True, exist_ok=True)
        with open(state / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed
            done = state / "report.json"
            if done.exists():
                return ProgramRun(program, json.loads(done.read_text()))
            run = self._run(program, state)
            written = done.with_suffix(".partial")
            written.write_text(json.dumps(run.report))
            written.replace(done)
            return run

    def _run(self, program: Path, state: Path) -> ProgramRun:
        seconds = max(DEFAULT_S, expectation(program).seconds)
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
