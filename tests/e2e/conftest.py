from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from programruns import ProgramRuns, assert_nothing_left_running


@pytest.fixture(autouse=True)
def no_program_left_behind(tmp_path: Path) -> Iterator[None]:
    """Every program a test started from its tmp_path has ended when loopscope returned."""
    yield
    assert_nothing_left_running(tmp_path)


@pytest.fixture(scope="session")
def program_runs(tmp_path_factory: pytest.TempPathFactory) -> ProgramRuns:
    """Each problem program's run, made once a session and shared by the tests that judge it."""
    return ProgramRuns(tmp_path_factory.mktemp("program-runs"))
