from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

import loopscope.agent


@pytest.fixture(autouse=True)
def check_agent_left_nothing() -> Iterator[None]:
    """An in-process test must leave no agent thread and no patched _set_running_loop."""
    before = asyncio.events._set_running_loop
    yield
    leftover = loopscope.agent.current()
    if leftover is not None:
        # A test that failed before its uninstall: stopped here, so that the tests after it
        # do not fail for it. This one still fails.
        leftover.uninstall()
        deadline = time.monotonic() + 5.0
        while _agent_threads() and time.monotonic() < deadline:
            time.sleep(0.01)
    threads = _agent_threads()
    assert leftover is None, f"agent left installed (threads: {threads})"
    assert threads == [], f"agent threads left running: {threads}"
    assert asyncio.events._set_running_loop is before, "_set_running_loop left patched"


def _agent_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("loopscope")]
