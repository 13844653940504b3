"""The gc and executor collectors in real target processes, on every Python: what they see,
and that detaching takes the gc callback and the executor's submit wrapper out again."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from agent_harness import LAUNCHER, TIMEOUT, Client, _readable, wait_until

from loopscope.agent._executor import ExecutorCollector
from loopscope.agent._gc import GcCollector, GcMonitor
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.events import Block, Event, ExecutorSample, GcWindow, LoopStarted, Notice

# Driven line by line on stdin; answers with JSON lines on stdout.
TARGET = r"""
import asyncio, concurrent.futures, gc, json, os, sys, time

HEAP = []


def own_callback(phase, info):
    pass


gc.callbacks.append(own_callback)


def say(**message):
    print(json.dumps(message), flush=True)


def collect_now(size=200_000):
    # A heap of containers makes a full collection take milliseconds.
    HEAP[:] = [[i] for i in range(size)]
    before = time.time()
    gc.collect()
    say(before=before, after=time.time())


def blocking_job(n):
    time.sleep(0.2)
    return n


async def flood(n):
    loop = asyncio.get_running_loop()
    if loop._default_executor is None:
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    futures = []
    for i in range(n):
        futures.append(loop.run_in_executor(None, blocking_job, i))
    say(flooded=sum(await asyncio.gather(*futures)))


async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    buffer = b""

    def on_stdin():
        nonlocal buffer
        data = os.read(0, 4096)
        if not data:
            done.set_result(None)
            loop.remove_reader(0)
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            command(line.decode().split())

    def command(words):
        if words[0] == "collect":
            collect_now(*map(int, words[1:]))
        elif words[0] == "flood":
            loop.create_task(flood(int(words[1])))
        elif words[0] == "state":
            executor = loop._default_executor
            say(
                callbacks=[getattr(c, "__name__", "?") for c in gc.callbacks],
                submit_wrapped=executor is not None and "submit" in vars(executor),
            )
        elif words[0] == "exit":
            done.set_result(None)

    loop.add_reader(0, on_stdin)
    say(ready=True)
    await done


asyncio.run(main())
"""


class TimingTarget:
    """The target above, run through the agent's launcher."""

    def __init__(self, python: str, directory: Path) -> None:
        self.socket_path = str(directory / "agent.sock")
        script = directory / "timing_target.py"
        script.write_text(TARGET)
        self.script = str(script)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
        env["LOOPSCOPE_SOCKET"] = self.socket_path
        self.proc = subprocess.Popen(
            [python, LAUNCHER, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=directory,
        )
        self._buffer = b""
        assert self.read() == {"ready": True}

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            if not _readable(fd, TIMEOUT):
                raise AssertionError("the target said nothing")
            data = os.read(fd, 65536)
            if not data:
                assert self.proc.stderr is not None
                raise AssertionError(f"the target exited: {self.proc.stderr.read().decode()}")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def state(self) -> dict[str, Any]:
        self.send("state")
        return self.read()

    def finish(self) -> int:
        if self.proc.poll() is None:
            self.send("exit")
        try:
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def test_gc_pauses_are_timed_on_the_wall_clock(target_python: str, tmp_path: Path) -> None:
    target = TimingTarget(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        started = client.wait_for(lambda e: isinstance(e, LoopStarted))
        assert isinstance(started, LoopStarted) and "gc" in started.features
        assert target.state()["callbacks"] == ["own_callback", "on_gc"]
        target.send("collect")
        times = target.read()

        def explicit(event: Event) -> bool:
            # The collection gc.collect() made, not one that building the heap set off.
            return isinstance(event, GcWindow) and any(
                p.generation == 2 and times["before"] - 0.005 <= p.t <= times["after"]
                for p in event.pauses
            )

        window = client.wait_for(explicit, what="a window with the full collection")
        assert isinstance(window, GcWindow)
        assert window.collections[2] >= 1
        assert window.max >= max(p.duration for p in window.pauses) > 0.001
        assert window.pause >= window.max
        assert window.threshold and len(window.threshold) == 3
        pause = next(p for p in window.pauses if times["before"] - 0.005 <= p.t)
        # It ended inside the call of gc.collect() too: the same clock as the target's.
        assert pause.t + pause.duration <= times["after"] + 0.005
        assert pause.stack and pause.stack[0].function.endswith("collect_now")
        assert pause.cpu is not None and 0 < pause.cpu <= pause.duration + 0.005
        assert pause.stack[0].file == target.script
    finally:
        client.close()
        assert target.finish() == 0


def test_a_block_spent_collecting_says_so(target_python: str, tmp_path: Path) -> None:
    target = TimingTarget(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        target.send("collect 1000000")  # a full collection of a million lists: tens of ms
        target.read()
        stalled = client.wait_for(
            lambda e: isinstance(e, Block) and e.gc > 0, what="a block with a collection in it"
        )
        assert isinstance(stalled, Block)
        assert 0.01 < stalled.gc <= stalled.duration + 0.001
    finally:
        client.close()
        assert target.finish() == 0


def test_executor_backlog_and_waits(target_python: str, tmp_path: Path) -> None:
    target = TimingTarget(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        # The default executor appears only now, well after the agent started: the first
        # flood creates it, the second goes through the wrapped submit.
        target.send("flood 2")
        assert target.read() == {"flooded": 1}
        wait_until(lambda: target.state()["submit_wrapped"], what="the submit wrapper")
        target.send("flood 12")
        backlog = client.wait_for(
            lambda e: isinstance(e, ExecutorSample) and e.queued > 0,
            what="a sample with a backlog",
        )
        assert isinstance(backlog, ExecutorSample)
        assert backlog.max_workers == 2 and backlog.workers == 2 and backlog.busy == 2
        assert backlog.oldest is not None and backlog.oldest > 0
        assert target.read() == {"flooded": sum(range(12))}
        samples = [e for e in client.events if isinstance(e, ExecutorSample)]
        # Items count as started when a worker takes them up, and their run time when they
        # end: the last ones come a sample later.
        while sum(s.started for s in samples) < 12 or sum(s.run for s in samples) < 12 * 0.19:
            event = client.wait_for(lambda e: isinstance(e, ExecutorSample))
            assert isinstance(event, ExecutorSample)
            samples.append(event)
        assert sum(s.submitted for s in samples) == 12
        # Twelve 0.2 s jobs on two threads: the last ones waited about a second.
        assert max(s.wait_max for s in samples) >= 0.5
        assert sum(s.run for s in samples) >= 12 * 0.19
        submitters = [sub for s in samples for sub in s.submitters]
        assert {sub.function.rsplit(".", 1)[-1] for sub in submitters} == {"flood"}
        assert {sub.work for sub in submitters} == {"blocking_job"}
        assert all(sub.file == target.script for sub in submitters)
    finally:
        client.close()
        assert target.finish() == 0


def test_detach_takes_out_the_gc_callback_and_the_submit_wrapper(
    target_python: str, tmp_path: Path
) -> None:
    target = TimingTarget(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        target.send("flood 2")
        assert target.read() == {"flooded": 1}
        wait_until(lambda: target.state()["submit_wrapped"], what="the submit wrapper")
        client.send({"op": "detach"})
        client.read_until_eof()
        state = wait_until(
            lambda: (s := target.state())["callbacks"] == ["own_callback"] and s,
            what="the gc callback to go",
        )
        assert state["submit_wrapped"] is False
        # The program carries on: its executor works, collections happen.
        target.send("flood 3")
        assert target.read() == {"flooded": 3}
        target.send("collect")
        target.read()
    finally:
        client.close()
        assert target.finish() == 0


# -- in process: the parts on their own --------------------------------------------------------


def test_the_gc_monitor_is_shared_and_sends_only_windows_with_collections() -> None:
    events: list[Event] = []
    monitor = GcMonitor(events.append, Guard(events.append), window=0.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first = GcCollector(
            LoopContext(loop, id(loop), events.append, Guard(events.append)), monitor
        )
        second = GcCollector(
            LoopContext(loop, id(loop), events.append, Guard(events.append)), monitor
        )
        first.start()
        second.start()
        assert gc.callbacks.count(monitor._callback) == 1
        monitor.flush()  # nothing collected since the callback went in (window 0)
        gc.collect(0)
        monitor.flush()
        first.stop()
        assert monitor.installed  # the second still uses it
        second.stop()
        assert not monitor.installed

    asyncio.run(main())
    windows = [e for e in events if isinstance(e, GcWindow)]
    assert len(windows) == 1 and windows[0].collections[0] >= 1


def test_a_failing_gc_callback_is_disabled_and_reported_once() -> None:
    events: list[Event] = []
    guard = Guard(events.append)
    monitor = GcMonitor(events.append, guard)
    monitor.acquire()
    try:
        monitor._totals.clear()  # the callback's next update raises IndexError
        gc.collect(0)
        gc.collect(0)
    finally:
        monitor.release()
    assert not monitor.installed
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "gc" in notices[0].message and "IndexError" in notices[0].message


def test_the_executor_collector_restores_submit_and_passes_errors_through() -> None:
    events: list[Event] = []
    collector: ExecutorCollector | None = None

    def fails() -> None:
        raise ValueError("the program's own error")

    async def main() -> None:
        nonlocal collector
        loop = asyncio.get_running_loop()
        collector = ExecutorCollector(
            LoopContext(loop, 1, events.append, Guard(events.append)), interval=0.01
        )
        collector.start()
        await loop.run_in_executor(None, lambda: None)
        executor = loop._default_executor  # type: ignore[attr-defined]
        deadline = loop.time() + TIMEOUT
        while collector.wrapped is not executor:
            assert loop.time() < deadline, "the executor was never wrapped"
            await asyncio.sleep(0.01)
        assert "submit" in vars(executor)
        with pytest.raises(ValueError, match="own error"):
            await loop.run_in_executor(None, fails)
        while not any(isinstance(e, ExecutorSample) and e.submitted for e in events):
            assert loop.time() < deadline, "the submitted item was never reported"
            await asyncio.sleep(0.01)
        collector.stop()
        assert "submit" not in vars(executor)
        assert await loop.run_in_executor(None, lambda: 7) == 7

    asyncio.run(main())
    assert sum(e.submitted for e in events if isinstance(e, ExecutorSample)) == 1
    assert not [e for e in events if isinstance(e, Notice)]
