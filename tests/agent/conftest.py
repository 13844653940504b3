from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def check_agent_left_nothing() -> Iterator[None]:
    """An in-process test must leave no agent thread and no patched _set_running_loop."""
    before = asyncio.events._set_running_loop
    yield
    threads = [t.name for t in threading.enumerate() if t.name.startswith("loopscope")]
    assert threads == [], f"agent threads left running: {threads}"
    assert asyncio.events._set_running_loop is before, "_set_running_loop left patched"
