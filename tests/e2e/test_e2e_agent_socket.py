"""The agent source against a real agent found by pid, as `attach` will use it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopscope.events import Hello, SourceState
from loopscope.runner import launcher_path
from loopscope.sources.agent import AgentSource

TARGET = """
import asyncio

async def main():
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_connects_by_pid_and_detaches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # the default socket path is under it
    app = tmp_path / "app.py"
    app.write_text(TARGET)
    env = {k: v for k, v in os.environ.items() if k != "LOOPSCOPE_SOCKET"}
    target = subprocess.Popen(
        [sys.executable, str(launcher_path()), str(app)], env=env, stdin=subprocess.DEVNULL
    )
    try:
        source = AgentSource.for_pid(target.pid)
        events = source.events()
        live = next(events)
        assert isinstance(live, SourceState) and live.state == "live"
        hello = next(events)
        assert isinstance(hello, Hello) and hello.pid == target.pid
        assert source.detach()
        rest = list(events)  # the agent uninstalls itself and closes the connection
        last = rest[-1]
        assert isinstance(last, SourceState) and (last.state, last.detail) == ("ended", "detached")
        deadline = time.monotonic() + 10  # the socket goes as the agent finishes uninstalling
        while source.socket_path.exists():
            assert time.monotonic() < deadline, "the agent left its socket behind"
            time.sleep(0.01)
        assert target.poll() is None  # the program goes on without its agent
    finally:
        target.kill()
        target.wait()
