from __future__ import annotations

import pytest

from pythons import SUPPORTED, find_pythons


@pytest.fixture(params=SUPPORTED, ids=lambda v: f"py{v}")
def target_python(request: pytest.FixtureRequest) -> str:
    """Path of a CPython interpreter of each supported version, for target processes."""
    path = find_pythons()[request.param]
    if path is None:
        pytest.skip(f"Python {request.param} is not installed on this machine")
    return path
