"""The agent installed in this very process: install/uninstall, guards, protocol edges."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_harness import Client, wait_until

import loopscope.agent
from loopscope.agent import _blocks, _lag, _loader
from loopscope.events import Block, Event, Lag, LoopStarted, LoopStopped, Notice


async def _wait(client: Client, predicate: Callable[[Event], bool]) -> Event:
    """Read from the agent without blocking the loop it observes."""
    return await asyncio.get_running_loop().run_in_executor(None, client.wait_for, predicate)


def _sampled(agent: object) -> bool:
    """Whether the agent's watchdog has sampled the busy period it is in."""
    targets = agent._watchdog._targets.values()  # type: ignore[attr-defined]
    return any(target.samples > 0 for target in list(targets))


@pytest.mark.serial  # judges a block's duration to 5 ms
def test_install_observe_uninstall(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")
    original = asyncio.events._set_running_loop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        agent = loopscope.agent.install(socket_path=path)
        assert loopscope.agent.install() is agent  # once per process
        assert asyncio.events._set_running_loop is not original
        assert asyncio._set_running_loop is asyncio.events._set_running_loop  # for uvloop
        assert "select" in vars(loop._selector)  # type: ignore[attr-defined]
        client = Client(path)
        try:
            started = await _wait(client, lambda e: isinstance(e, LoopStarted))
            assert started.loop == id(loop)  # type: ignore[attr-defined]
            started = time.perf_counter()
            # A block over the 20 ms threshold, kept up until the watchdog has sampled it (on a
            # busy machine its thread may wait a while for a core).
            time.sleep(0.03)
            deadline = started + 10.0
            while not _sampled(agent) and time.perf_counter() < deadline:
                time.sleep(0.002)
            slept = time.perf_counter() - started  # more than asked for, on a busy machine
            block = await _wait(client, lambda e: isinstance(e, Block))
            assert isinstance(block, Block)
            assert abs(block.duration - slept) < 0.005, (block.duration, slept)
            assert any(f.function.endswith("main") for s in block.stacks for f in s.frames), (
                block.samples,
                block.stacks,
                agent.guard.disabled,
            )
            loopscope.agent.uninstall()
            await asyncio.get_running_loop().run_in_executor(None, client.read_until_eof)
        finally:
            client.close()
        assert loopscope.agent.current() is None
        assert asyncio.events._set_running_loop is original
        assert asyncio._set_running_loop is original
        assert "select" not in vars(loop._selector)  # type: ignore[attr-defined]
        assert not os.path.exists(path)
        assert not [t for t in threading.enumerate() if t.name.startswith("loopscope")]
        await asyncio.sleep(0.02)  # the loop carries on

    asyncio.run(main())


def test_pending_mode_sees_loops_start_and_stop(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")
    agent = loopscope.agent.install(socket_path=path)  # no loop running: pending
    client = Client(path)
    try:
        ids = []

        async def main() -> None:
            ids.append(id(asyncio.get_running_loop()))
            await asyncio.sleep(0.3)

        asyncio.run(main())
        client.wait_for(lambda e: isinstance(e, LoopStarted) and e.loop == ids[0])
        client.wait_for(lambda e: isinstance(e, Lag) and e.loop == ids[0])
        client.wait_for(lambda e: isinstance(e, LoopStopped) and e.loop == ids[0])
    finally:
        client.close()
        agent.uninstall()


def test_failing_hook_is_disabled_and_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "a.sock")

    def broken(seconds: float) -> int:
        raise ZeroDivisionError("broken on purpose")

    monkeypatch.setattr(_lag, "lag_bucket", broken)

    async def main() -> list[Event]:
        agent = loopscope.agent.install(socket_path=path)
        client = Client(path)
        try:
            notice = await _wait(client, lambda e: isinstance(e, Notice))
            assert isinstance(notice, Notice)
            assert "lag" in notice.message and "broken on purpose" in notice.message
            # The program carries on, and blocks are still reported.
            for _ in range(20):
                await asyncio.sleep(0.005)
            time.sleep(0.03)
            await _wait(client, lambda e: isinstance(e, Block))
        finally:
            agent.uninstall()
            await asyncio.get_running_loop().run_in_executor(None, client.read_until_eof)
            client.close()
        return client.events

    events = asyncio.run(main())
    assert len([e for e in events if isinstance(e, Notice)]) == 1
    assert not [e for e in events if isinstance(e, Lag)]


def test_loop_already_running_in_another_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="other-loop")
    thread.start()
    try:
        wait_until(loop.is_running)
        agent = loopscope.agent.install(socket_path=path)  # found from the thread's stack
        client = Client(path)
        try:
            started = client.wait_for(lambda e: isinstance(e, LoopStarted))
            assert isinstance(started, LoopStarted)
            assert (started.loop, started.thread_name) == (id(loop), "other-loop")
            loop.call_soon_threadsafe(time.sleep, 0.03)
            block = client.wait_for(lambda e: isinstance(e, Block))
            assert isinstance(block, Block) and block.loop == id(loop)
        finally:
            client.close()
            agent.uninstall()
        wait_until(lambda: "select" not in vars(loop._selector))  # type: ignore[attr-defined]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_bad_client_messages(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")
    agent = loopscope.agent.install(socket_path=path)
    try:
        client = Client(path)
        client.wait_for(lambda e: e.kind == "hello")
        # Ignored: not JSON, not an object, an unknown op.
        client._sock.sendall(b'garbage\n[1,2]\n{"op": "explode"}\n\n')
        # Closed: a line longer than 64 KiB.
        client._sock.sendall(b"x" * (70 * 1024))
        client.read_until_eof()
        client.close()
        again = Client(path)  # the agent lives on
        again.wait_for(lambda e: e.kind == "hello")
        again.close()
        assert agent.active
    finally:
        agent.uninstall()


def test_private_copy_from_sources(tmp_path: Path) -> None:
    directory = Path(loopscope.agent.__file__).parent
    sources = {p.stem: p.read_text() for p in directory.glob("*.py")}
    name = _loader.private_name("9.9.9-test")
    assert name == "_loopscope_agent_9_9_9_test"
    package = _loader.load_from_sources(sources, name)
    try:
        assert package.__name__ == name
        assert f"{name}._core" in sys.modules
        assert not any(type(f).__module__ == _loader.__name__ for f in sys.meta_path)
        path = str(tmp_path / "a.sock")

        async def main() -> None:
            agent = package.install(socket_path=path)
            # Any copy of the package sees the agent already installed.
            assert loopscope.agent.current() is agent
            assert loopscope.agent.install() is agent
            client = Client(path)
            try:
                await _wait(client, lambda e: isinstance(e, LoopStarted))
            finally:
                client.close()
                loopscope.agent.uninstall()

        asyncio.run(main())
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def test_private_copy_from_directory() -> None:
    directory = str(Path(loopscope.agent.__file__).parent)
    name = _loader.private_name("9.9.8")
    try:
        package = _loader.load_from_directory(directory, name)
        assert package.Agent is not loopscope.agent.Agent
        assert _loader.load_from_directory(directory, name) is package
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


@pytest.mark.serial  # judges a block's duration to 5 ms
def test_heartbeat_fallback_without_a_python_selector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on uvloop: no selector to wrap, so blocks come from the heartbeat alone.
    monkeypatch.setattr(_blocks.SelectorProbe, "usable", staticmethod(lambda loop: "no selector"))
    path = str(tmp_path / "a.sock")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        agent = loopscope.agent.install(socket_path=path)
        client = Client(path)
        try:
            started = await _wait(client, lambda e: isinstance(e, LoopStarted))
            assert isinstance(started, LoopStarted)
            assert "utilisation" not in started.features
            assert any("no selector" in u for u in started.unavailable)
            assert "select" not in vars(loop._selector)  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
            wall, started = time.time(), time.perf_counter()
            time.sleep(0.06)
            slept = time.perf_counter() - started  # more than asked for, on a busy machine
            # The stall's block, not one that ended before it: in this pytest process, after
            # the other serial tests, a beat due while the loop waited was once late by 60 ms
            # or more, its one sample in select() (the thread waiting to take the GIL back).
            block = await _wait(
                client, lambda e: isinstance(e, Block) and e.t + e.duration > wall + 0.01
            )
            assert isinstance(block, Block)
            assert not block.precise
            # The heartbeat was due at most one interval after the stall began.
            assert slept - 0.01 - 0.005 < block.duration < slept + 0.005, (block.duration, slept)
            assert block.samples > 0
            lag = await _wait(client, lambda e: isinstance(e, Lag))
            assert isinstance(lag, Lag) and lag.busy is None
        finally:
            agent.uninstall()
            client.close()

    asyncio.run(main())
