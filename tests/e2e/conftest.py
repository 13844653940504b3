from __future__ import annotations

import os
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
def shared_program_runs(tmp_path_factory: pytest.TempPathFactory) -> ProgramRuns:
    """Each problem program's run, made once a session and shared by the tests that judge it
    (by all the workers of a pytest-xdist session: the folder above a worker's is the session's)."""
    session = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        session = session.parent
    return ProgramRuns(session / "program-runs")


@pytest.fixture
def program_runs(shared_program_runs: ProgramRuns, request: pytest.FixtureRequest) -> ProgramRuns:
    """The shared runs, for this test (marked `serial` or not)."""
    return shared_program_runs.for_test(request.node.get_closest_marker("serial") is not None)
