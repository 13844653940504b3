from __future__ import annotations

import pytest

from pythons import SUPPORTED, find_pythons, missing_reason


@pytest.fixture(params=SUPPORTED, ids=lambda v: f"py{v}")
def target_python(request: pytest.FixtureRequest) -> str:
    """Path of a CPython interpreter of each supported version, for target processes."""
    path = find_pythons()[request.param]
    if path is None:
        pytest.skip(missing_reason(request.param))
    return path
