from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from programruns import ProgramRuns


def _running_from(directory: Path) -> list[str]:
    """Command lines of live processes that mention ``directory`` (zombies excluded)."""
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
        if str(directory) in cmdline and state != "Z":
            found.append(f"{entry}: {cmdline}")
    return found


@pytest.fixture(autouse=True)
def no_program_left_behind(tmp_path: Path) -> Iterator[None]:
    """Every program a test started from its tmp_path has ended when loopscope returned."""
    yield
    deadline = time.monotonic() + 5.0
    while (left := _running_from(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"programs left running: {left}"


@pytest.fixture(scope="session")
def program_runs(tmp_path_factory: pytest.TempPathFactory) -> ProgramRuns:
    """Each problem program's run, made once a session and shared by the tests that judge it."""
    return ProgramRuns(tmp_path_factory.mktemp("program-runs"))
