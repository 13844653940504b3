"""Blocks and lag, measured inside real target processes on every supported Python."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from agent_harness import TIMEOUT, Client, Target

from loopscope.events import Block, Event, Hello, Lag, LoopStarted
from loopscope.model import Model

# Spins until killed, for at most a minute; says "spinning" first.
HOG = """
import time
print("spinning", flush=True)
end = time.monotonic() + 60
while time.monotonic() < end:
    pass
"""


def _is_block(e: Event) -> bool:
    return isinstance(e, Block)


def _one_block_for(target: Target, client: Client, command: str) -> tuple[Block, dict[str, float]]:
    """Run ``command`` on the target's loop: the one block it causes, and how long the
    blocking function took by its own measure (``took``, ``cpu``)."""
    start = len(client.events)
    target.send(command)
    measured = target.read()
    block = client.wait_for(_is_block, what="block")
    assert isinstance(block, Block)
    # Two lag windows later, nothing else has been reported as a block.
    for _ in range(2):
        client.wait_for(lambda e: isinstance(e, Lag) and e.t > block.t + block.duration)
    assert [e for e in client.events[start:] if isinstance(e, Block)] == [block]
    return block, measured


def _assert_duration(block: Block, measured: dict[str, float]) -> None:
    # The busy period holds the blocking call and a little of the loop's own work around it.
    assert measured["took"] <= block.duration < measured["took"] + 0.005, (block, measured)
    assert abs(block.duration - 0.05) < 0.005 or measured["took"] > 0.052, block.duration


def _names(block: Block) -> set[str]:
    return {f.function.rpartition(".")[2] for s in block.stacks for f in s.frames}


@pytest.mark.serial  # judges each block's duration and cause
def test_sleep_and_cpu_burn_are_each_one_block(target_python: str, tmp_path: Path) -> None:
    target = Target(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        hello = client.wait_for(lambda e: True)
        assert isinstance(hello, Hello)
        assert hello.pid == target.proc.pid
        assert hello.protocol == 1
        assert hello.argv == (str(tmp_path / "target.py"),)
        assert hello.cwd == str(tmp_path)
        assert target_python.endswith(".".join(hello.python.split(".")[:2]))
        assert hello.implementation == "cpython"
        # paths in the target's own root (a container's, for 3.14/3.15 here)
        root = f"/proc/{target.proc.pid}/root"
        assert hello.stdlib_paths and all(Path(root + p).is_dir() for p in hello.stdlib_paths)
        assert any(p.endswith("site-packages") for p in hello.site_paths)
        started = client.wait_for(lambda e: isinstance(e, LoopStarted))
        assert isinstance(started, LoopStarted)
        assert started.thread_name == "MainThread"
        assert {"lag", "blocks", "utilisation"} <= set(started.features)

        sleep, sleep_took = _one_block_for(target, client, "sleep")
        burn, burn_took = _one_block_for(target, client, "burn")
    finally:
        client.close()
        assert target.finish() == 0

    for block, measured in ((sleep, sleep_took), (burn, burn_took)):
        assert block.loop == started.loop
        assert block.precise
        _assert_duration(block, measured)
        assert block.samples > 0
        assert block.task is None  # a reader callback, not a task
        assert block.cpu is not None
        # Samples never show the agent's own frames, nor the launcher's.
        files = {f.file for s in block.stacks for f in s.frames}
        assert not any("loopscope" in f for f in files), files
        # Each sample stands for the time since the one before (from the block's start): the
        # samples together cover the block up to its last sample.
        covered = sum(s.seconds for s in block.stacks)
        assert all(s.seconds > 0 for s in block.stacks), block.stacks
        assert 0.0 < covered <= block.duration + 0.001, (covered, block.duration)
    assert "blocking_sleep" in _names(sleep)
    assert "cpu_burn" in _names(burn)
    top = burn.stacks[0].frames[0]
    assert top.function.endswith("cpu_burn") and top.file.endswith("target.py")
    assert sleep.cpu is not None and burn.cpu is not None
    # The CPU the loop thread used, estimated by the watchdog, against the thread's own measure
    # (on a busy machine a burn gets less than its wall time).
    assert sleep.cpu < 0.005, sleep.cpu
    assert abs(burn.cpu - burn_took["cpu"]) < 0.0125, (burn.cpu, burn_took)
    assert burn.cpu > 0.01


@pytest.mark.serial  # the loop's busy share of a window
def test_lag_windows(target_python: str, tmp_path: Path) -> None:
    target = Target(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, Lag))
        target.send("sleep")
        target.read()
        lag = client.wait_for(lambda e: isinstance(e, Lag) and e.max >= 0.04)
    finally:
        client.close()
        assert target.finish() == 0
    assert isinstance(lag, Lag)
    assert 0.2 <= lag.window < 0.5
    assert lag.interval == 0.01
    assert sum(lag.buckets) == lag.count > 0
    assert lag.max <= lag.total
    assert lag.busy is not None and 0.1 < lag.busy <= 1.0  # 50 ms of a 250 ms window at least
    assert lag.ready is not None


@pytest.mark.serial  # judges the first block's loop and duration: a busy machine makes others
def test_loop_in_another_thread(target_python: str, tmp_path: Path) -> None:
    target = Target(target_python, tmp_path, args=("--thread",))
    client = Client(target.socket_path)
    try:
        main = client.wait_for(lambda e: isinstance(e, LoopStarted))
        worker = client.wait_for(lambda e: isinstance(e, LoopStarted) and e.loop != main.loop)
        assert isinstance(worker, LoopStarted)
        assert worker.thread_name == "worker"
        target.send("thread-sleep")
        measured = target.read()
        block = client.wait_for(_is_block)
    finally:
        client.close()
        assert target.finish() == 0
    assert isinstance(block, Block)
    assert block.loop == worker.loop
    _assert_duration(block, measured)
    assert "blocking_sleep" in _names(block)


@contextmanager
def every_core_busy() -> Iterator[None]:
    """One process spinning per core (at least two) while the block is in the body."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", HOG], stdout=subprocess.PIPE)
        for _ in range(max(2, len(os.sched_getaffinity(0))))
    ]
    try:
        for hog in hogs:
            assert hog.stdout is not None
            assert hog.stdout.readline() == b"spinning\n"
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(TIMEOUT)
            assert hog.stdout is not None
            hog.stdout.close()


def _block_in(target: Target, client: Client, command: str, function: str) -> Block:
    """Run ``command`` on the target's loop: the block whose samples name ``function``. On a
    busy machine the loop's own work may make other, shorter blocks meanwhile."""
    target.send(command)
    target.read()
    block = client.wait_for(
        lambda e: isinstance(e, Block) and function in _names(e), what=f"block in {function}"
    )
    assert isinstance(block, Block)
    return block


@pytest.mark.serial  # takes every core itself: alone, it knows how busy they are
def test_the_cause_is_right_on_a_machine_whose_cores_are_all_busy(
    target_python: str, tmp_path: Path
) -> None:
    # A burn gets only part of a core; by its CPU share of the wall time it looks like waiting.
    target = Target(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        with every_core_busy():
            # The CPU of real work is an amount: a burn for a wall time would do less of it,
            # and its block would be the machine's.
            burn = _block_in(target, client, "work", "cpu_work")
            sleep = _block_in(target, client, "sleep", "blocking_sleep")
    finally:
        client.close()
        assert target.finish() == 0

    assert burn.runq is not None and sleep.runq is not None
    # A sleeping thread waits for no core, but maybe for one when the sleep ends.
    assert sleep.runq < sleep.duration - 0.04, sleep
    model = Model()
    for event in client.events:
        model.apply(event)
    causes = {
        (r.t, r.location.function.rpartition(".")[2]): r.cause
        for r in model.snapshot().blocks.recent
        if r.location
    }
    assert causes[burn.t, "cpu_work"] == "cpu", burn
    assert causes[sleep.t, "blocking_sleep"] == "sleep", sleep
