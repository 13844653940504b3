"""The agent on a uvloop loop (what uvicorn runs when uvloop is installed): a loop written in C,
with no Python selector to wrap. Lag, blocks (timed from the heartbeat), the census and the
lifecycle still work; what the loop type cannot give is reported as unavailable.

uvloop is installed in loopscope's own environment (a dev dependency), so the target runs on
the test's interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import SRC, Client

from loopscope.events import Block, Census, Lag, Lifecycle, LoopStarted, LoopStopped

uvloop = pytest.importorskip("uvloop", reason="uvloop is a dev dependency of loopscope")

TARGET = r"""
import asyncio, os, sys, time
import uvloop
import loopscope.agent


def stall():
    time.sleep(0.08)


async def idle(i):
    await asyncio.sleep(3600)


async def main():
    loopscope.agent.install(socket_path=os.environ["SOCKET"])
    sleepers = [asyncio.create_task(idle(i), name=f"idle-{i}") for i in range(50)]
    print("ready", flush=True)
    while True:
        await asyncio.sleep(0.1)
        stall()


uvloop.run(main())
"""


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    socket_path = str(tmp_path / "agent.sock")
    env = dict(os.environ, PYTHONPATH=SRC, SOCKET=socket_path)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        yield proc, socket_path
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_agent_observes_a_uvloop_loop(target: tuple[subprocess.Popen[str], str]) -> None:
    proc, socket_path = target
    client = Client(socket_path)
    try:
        started = client.wait_for(lambda e: isinstance(e, LoopStarted), what="loop_started")
        assert isinstance(started, LoopStarted)
        assert started.loop_class == "uvloop.Loop"
        assert {"lag", "blocks", "census", "lifecycle"} <= set(started.features)
        # No Python selector: no utilisation, and block durations come from the heartbeat.
        assert "utilisation" not in started.features
        assert any(u.startswith("utilisation") for u in started.unavailable)
        assert any(u.startswith("exact block durations") for u in started.unavailable)

        lag = client.wait_for(lambda e: isinstance(e, Lag) and e.max >= 0.05, what="lag")
        assert isinstance(lag, Lag) and lag.busy is None
        block = client.wait_for(lambda e: isinstance(e, Block), what="a block")
        assert isinstance(block, Block)
        assert not block.precise
        assert 0.06 <= block.duration <= 0.5
        assert any(f.function == "stall" for s in block.stacks for f in s.frames)
        census = client.wait_for(lambda e: isinstance(e, Census), what="a census")
        assert isinstance(census, Census)
        assert census.total >= 50 and census.by_kind.get("sleep", 0) >= 50
        client.wait_for(lambda e: isinstance(e, Lifecycle), what="a lifecycle window")

        client.send({"op": "detach"})
        client.read_until_eof()
    finally:
        client.close()
    assert proc.poll() is None  # the program carries on without its agent


def test_a_uvloop_loop_started_after_the_agent_arrived_is_observed(tmp_path: Path) -> None:
    # uvloop is imported already (above), so it holds asyncio's own _set_running_loop in C, as
    # in a uvicorn worker that the agent reaches during its imports: the loop it starts later is
    # seen through uvloop.Loop.run_forever, which is put back on uninstall.
    import asyncio

    import loopscope.agent

    path = str(tmp_path / "a.sock")
    loopscope.agent.install(socket_path=path)
    client = Client(path)
    loop = uvloop.new_event_loop()
    try:
        assert "run_forever" in vars(uvloop.Loop)

        async def main() -> None:
            started = await asyncio.get_running_loop().run_in_executor(
                None, client.wait_for, lambda e: isinstance(e, LoopStarted)
            )
            assert isinstance(started, LoopStarted) and started.loop == id(loop)
            assert started.loop_class == "uvloop.Loop"

        loop.run_until_complete(main())
        stopped = client.wait_for(lambda e: isinstance(e, LoopStopped), what="loop_stopped")
        assert isinstance(stopped, LoopStopped) and stopped.loop == id(loop)
    finally:
        loop.close()
        loopscope.agent.uninstall()
        client.close()
    assert "run_forever" not in vars(uvloop.Loop)
