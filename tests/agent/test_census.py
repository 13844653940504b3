"""The task census, on real loops: what each task waits on, where, and how long."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from loopscope.agent._census import CensusCollector
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.events import Census, Event, Notice, decode

SRC = str(Path(__file__).resolve().parents[2] / "src")
TIMEOUT = 10.0

Waiter = Callable[[], Coroutine[Any, Any, Any]]
Release = Callable[[], Any]


def line_of(marker: str, path: str = __file__) -> int:
    """The line of ``path`` that ends with the comment ``# <marker>``."""
    with open(path) as f:
        lines = [i for i, text in enumerate(f, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(lines) == 1, f"marker {marker!r} found on lines {lines}"
    return lines[0]


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Let the loop run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def waiting(task: asyncio.Task[Any]) -> bool:
    waiter = task._fut_waiter  # type: ignore[attr-defined]
    return waiter is not None and not waiter.done()


def collector(
    loop: asyncio.AbstractEventLoop, events: list[Event] | None = None, interval: float = 0.5
) -> CensusCollector:
    out: list[Event] = [] if events is None else events
    return CensusCollector(
        LoopContext(loop, id(loop), out.append, Guard(out.append)), interval=interval
    )


async def finish(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------------------------
# One waiting task per kind of wait: (coroutine to run as a task, what ends its wait)


async def case_lock() -> tuple[Waiter, Release]:
    lock = asyncio.Lock()
    await lock.acquire()

    async def waiter() -> None:
        async with lock:  # site: lock
            pass

    return waiter, lock.release


async def case_semaphore() -> tuple[Waiter, Release]:
    semaphore = asyncio.Semaphore(0)

    async def waiter() -> None:
        await semaphore.acquire()  # site: semaphore

    return waiter, semaphore.release


async def case_event() -> tuple[Waiter, Release]:
    event = asyncio.Event()

    async def waiter() -> None:
        await event.wait()  # site: event

    return waiter, event.set


async def case_condition() -> tuple[Waiter, Release]:
    condition = asyncio.Condition()

    async def waiter() -> None:
        async with condition:
            await condition.wait()  # site: condition

    return waiter, lambda: None


async def case_queue_get() -> tuple[Waiter, Release]:
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def waiter() -> None:
        await queue.get()  # site: queue_get

    return waiter, lambda: queue.put_nowait(1)


async def case_queue_put() -> tuple[Waiter, Release]:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(0)

    async def waiter() -> None:
        await queue.put(1)  # site: queue_put

    return waiter, queue.get_nowait


async def case_sleep() -> tuple[Waiter, Release]:
    async def waiter() -> None:
        await asyncio.sleep(60)  # site: sleep

    return waiter, lambda: None


async def case_task() -> tuple[Waiter, Release]:
    other = asyncio.create_task(asyncio.sleep(60))

    async def waiter() -> None:
        await other  # site: task

    return waiter, other.cancel


async def case_gather() -> tuple[Waiter, Release]:
    async def waiter() -> None:
        await asyncio.gather(asyncio.sleep(60), asyncio.sleep(60))  # site: gather

    return waiter, lambda: None


async def case_wait() -> tuple[Waiter, Release]:
    other = asyncio.create_task(asyncio.sleep(60))

    async def waiter() -> None:
        await asyncio.wait([other])  # site: wait

    return waiter, other.cancel


async def case_executor() -> tuple[Waiter, Release]:
    gate = threading.Event()

    async def waiter() -> None:
        await asyncio.get_running_loop().run_in_executor(None, gate.wait)  # site: executor

    return waiter, gate.set


async def case_to_thread() -> tuple[Waiter, Release]:
    gate = threading.Event()

    async def waiter() -> None:
        await asyncio.to_thread(gate.wait)  # site: to_thread

    return waiter, gate.set


async def case_stream_read() -> tuple[Waiter, Release]:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)

    async def waiter() -> None:
        await reader.readline()  # site: stream_read

    def release() -> None:
        writer.close()
        theirs.close()

    return waiter, release


async def case_stream_drain() -> tuple[Waiter, Release]:
    ours, theirs = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=ours)

    async def waiter() -> None:
        # The peer never reads: the kernel buffer fills, then the transport's.
        writer.write(b"x" * 16_000_000)
        await writer.drain()  # site: stream_drain

    def release() -> None:
        writer.transport.abort()
        theirs.close()

    return waiter, release


async def case_socket() -> tuple[Waiter, Release]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)

    async def waiter() -> None:
        await asyncio.get_running_loop().sock_recv(ours, 1)  # site: socket

    def release() -> None:
        theirs.close()
        ours.close()

    return waiter, release


async def case_future() -> tuple[Waiter, Release]:
    future = asyncio.get_running_loop().create_future()

    async def waiter() -> None:
        await future  # site: future

    return waiter, future.cancel


CASES: dict[str, tuple[Callable[[], Awaitable[tuple[Waiter, Release]]], str]] = {
    "lock": (case_lock, "lock"),
    "semaphore": (case_semaphore, "semaphore"),
    "event": (case_event, "event"),
    "condition": (case_condition, "condition"),
    "queue_get": (case_queue_get, "queue_get"),
    "queue_put": (case_queue_put, "queue_put"),
    "sleep": (case_sleep, "sleep"),
    "task": (case_task, "task"),
    "gather": (case_gather, "gather"),
    "wait": (case_wait, "wait"),
    "executor": (case_executor, "executor"),
    "to_thread": (case_to_thread, "executor"),
    "stream_read": (case_stream_read, "stream_read"),
    "stream_drain": (case_stream_drain, "stream_drain"),
    "socket": (case_socket, "socket"),
    "future": (case_future, "future"),
}


@pytest.mark.parametrize("case", CASES)
def test_classifies_the_wait_and_finds_its_site(case: str) -> None:
    make, kind = CASES[case]

    async def main() -> None:
        waiter, release = await make()
        task = asyncio.create_task(waiter())
        await until(lambda: waiting(task), "the task to wait")
        census = collector(asyncio.get_running_loop()).take()
        try:
            mine = [s for s in census.sites if s.function.endswith("waiter")]
            assert len(mine) == 1, census.sites
            site = mine[0]
            assert (site.kind, site.file, site.line) == (kind, __file__, line_of(f"site: {case}"))
            assert site.count == 1
            assert census.by_kind[kind] >= 1
        finally:
            release()
            await finish([task])

    asyncio.run(main())


def test_counts_tasks_by_state() -> None:
    async def main() -> None:
        sleepers = [asyncio.create_task(asyncio.sleep(60)) for _ in range(7)]
        await until(lambda: all(waiting(t) for t in sleepers), "the sleepers to sleep")
        fresh = [asyncio.create_task(asyncio.sleep(0)) for _ in range(3)]  # not started: ready
        census = collector(asyncio.get_running_loop()).take()
        # and main(), which runs the census
        assert census.total == census.inspected == 11
        assert census.by_state == {"waiting": 7, "ready": 3, "running": 1}
        assert census.by_kind == {"sleep": 7}
        assert census.cost > 0
        await finish(sleepers + fresh)

    asyncio.run(main())


def test_aggregates_waiters_by_resource() -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        await lock.acquire()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
        queue.put_nowait(0)
        queue.put_nowait(0)

        async def locker() -> None:
            async with lock:  # resource: lock
                pass

        async def producer() -> None:
            await queue.put(1)  # resource: queue

        tasks = [asyncio.create_task(locker()) for _ in range(4)]
        tasks += [asyncio.create_task(producer()) for _ in range(3)]
        await until(lambda: all(waiting(t) for t in tasks), "the tasks to wait")
        census = collector(asyncio.get_running_loop()).take()
        resources = {r.id: r for r in census.resources}
        assert set(resources) == {id(lock), id(queue)}
        assert (resources[id(lock)].type, resources[id(lock)].label) == ("Lock", "Lock locked")
        assert resources[id(lock)].waiters == 4
        assert resources[id(queue)].label == "Queue maxsize=2 qsize=2"
        assert resources[id(queue)].waiters == 3
        # Where the waiters wait, and on what.
        lock_site, queue_site = resources[id(lock)].site, resources[id(queue)].site
        assert lock_site is not None and queue_site is not None
        assert (lock_site.file, lock_site.line) == (__file__, line_of("resource: lock"))
        assert lock_site.function.endswith("locker")
        assert (queue_site.line, resources[id(queue)].kind) == (
            line_of("resource: queue"),
            "queue_put",
        )
        assert resources[id(lock)].kind == "lock"
        assert census.resources[0].id == id(lock)  # most waiters first
        assert {(s.kind, s.count) for s in census.sites} == {("lock", 4), ("queue_put", 3)}
        await finish(tasks)

    asyncio.run(main())


def test_oldest_wait_grows_and_a_new_wait_starts_afresh() -> None:
    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        lock = asyncio.Lock()
        await lock.acquire()

        async def consumer() -> None:
            while True:
                await queue.get()

        async def locker() -> None:
            await lock.acquire()

        tasks = [asyncio.create_task(consumer()), asyncio.create_task(locker())]
        await until(lambda: all(waiting(t) for t in tasks), "the tasks to wait")
        census = collector(asyncio.get_running_loop())

        def oldest(c: Census, kind: str) -> float:
            (site,) = [s for s in c.sites if s.kind == kind]
            return site.oldest

        first = census.take()
        await asyncio.sleep(0.05)  # let the waits age
        second = census.take()
        assert oldest(second, "lock") >= oldest(first, "lock") + 0.05
        assert oldest(second, "queue_get") >= oldest(first, "queue_get") + 0.05
        assert second.resources[0].oldest >= 0.05

        # The consumer gets an item and waits again at the same line: a new wait.
        queue.put_nowait(1)
        await until(lambda: queue.empty() and waiting(tasks[0]), "the consumer to wait again")
        third = census.take()
        assert oldest(third, "queue_get") < 0.05
        assert oldest(third, "lock") >= oldest(second, "lock")
        await finish(tasks)

    asyncio.run(main())


def test_samples_many_tasks_and_scales_the_counts() -> None:
    async def main() -> None:
        sleepers = [asyncio.create_task(asyncio.sleep(60)) for _ in range(3000)]
        await until(lambda: all(waiting(t) for t in sleepers), "the sleepers to sleep")
        census = collector(asyncio.get_running_loop())
        census._state_sample = 500
        census._walk_sample = 50
        census._random = random.Random(1)
        result = census.take()
        assert result.inspected <= 500
        assert abs(result.total - 3001) <= 300
        assert abs(result.by_state["waiting"] - 3000) <= 300
        assert abs(result.by_kind["sleep"] - 3000) <= 300
        (site,) = result.sites
        assert abs(site.count - 3000) <= 300
        await finish(sleepers)

    asyncio.run(main())


def test_emits_a_census_every_interval_until_stopped() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        events: list[Event] = []
        census = collector(loop, events, interval=0.01)
        sleeper = asyncio.create_task(asyncio.sleep(60))
        census.start()
        await until(lambda: len(events) >= 3, "three censuses")
        census.stop()
        census.stop()  # idempotent
        seen = len(events)
        await asyncio.sleep(0.05)  # several intervals: nothing more comes
        assert len(events) == seen
        assert all(isinstance(e, Census) and e.loop == id(loop) for e in events)
        # the sleeper, and main() polling (asleep too, or just woken up)
        censuses = [e for e in events if isinstance(e, Census)]
        assert all(e.total == 2 and e.by_kind.get("sleep", 0) >= 1 for e in censuses)
        await finish([sleeper])

    asyncio.run(main())


def test_a_failing_census_is_disabled_and_the_program_runs_on() -> None:
    class BrokenTask(asyncio.Task):  # type: ignore[type-arg]
        def get_coro(self) -> Any:
            raise RuntimeError("no coroutine for you")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(lambda loop, coro, **kw: BrokenTask(coro, loop=loop, **kw))
        events: list[Event] = []
        census = collector(loop, events, interval=0.01)
        census.start()
        broken = asyncio.create_task(asyncio.sleep(0.05, result=42))
        await until(lambda: any(isinstance(e, Notice) for e in events), "the guard's notice")
        (notice,) = events
        assert isinstance(notice, Notice)
        assert "census" in notice.message and "no coroutine for you" in notice.message
        census.stop()
        return await broken

    assert asyncio.run(main()) == 42


# ---------------------------------------------------------------------------------------------
# Every supported interpreter

TARGET = """
import asyncio, importlib, json, socket, sys, threading, types

# Load the agent's modules under a private package name, as a target without loopscope does.
package = types.ModuleType("_ls_agent")
package.__path__ = [sys.argv[1]]
sys.modules["_ls_agent"] = package
census_module = importlib.import_module("_ls_agent._census")
events = importlib.import_module("_ls_agent.events")
Guard = importlib.import_module("_ls_agent._guard").Guard
LoopContext = importlib.import_module("_ls_agent._periodic").LoopContext


async def main():
    loop = asyncio.get_running_loop()
    lock = asyncio.Lock()
    await lock.acquire()
    queue = asyncio.Queue()
    full = asyncio.Queue(maxsize=1)
    full.put_nowait(0)
    event = asyncio.Event()
    semaphore = asyncio.Semaphore(0)
    gate = threading.Event()
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    sleeper = asyncio.create_task(asyncio.sleep(60))

    async def w_lock():
        await lock.acquire()  # target: lock
    async def w_queue_get():
        await queue.get()  # target: queue_get
    async def w_queue_put():
        await full.put(1)  # target: queue_put
    async def w_sleep():
        await asyncio.sleep(60)  # target: sleep
    async def w_task():
        await sleeper  # target: task
    async def w_event():
        await event.wait()  # target: event
    async def w_semaphore():
        await semaphore.acquire()  # target: semaphore
    async def w_gather():
        await asyncio.gather(asyncio.sleep(60))  # target: gather
    async def w_executor():
        await loop.run_in_executor(None, gate.wait)  # target: executor
    async def w_stream_read():
        await reader.readline()  # target: stream_read

    tasks = [asyncio.create_task(f()) for f in (
        w_lock, w_queue_get, w_queue_put, w_sleep, w_task, w_event, w_semaphore, w_gather,
        w_executor, w_stream_read,
    )]
    for _ in range(1000):
        await asyncio.sleep(0.001)
        if all(t._fut_waiter is not None for t in tasks):
            break
    out = []
    context = LoopContext(loop, id(loop), out.append, Guard(out.append))
    census = census_module.CensusCollector(context)
    print(events.encode(census.take()), flush=True)
    gate.set()
    writer.close()
    theirs.close()
    for t in tasks + [sleeper]:
        t.cancel()
    await asyncio.gather(*tasks, sleeper, return_exceptions=True)

asyncio.run(main())
"""


def test_classifies_on_every_interpreter(target_python: str, tmp_path: Path) -> None:
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    agent_dir = os.path.join(SRC, "loopscope", "agent")
    done = subprocess.run(
        [target_python, str(script), agent_dir],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert done.returncode == 0, done.stderr
    census = decode(done.stdout.strip().splitlines()[-1])
    assert isinstance(census, Census)
    sites = {s.function.rpartition(".")[2]: s for s in census.sites}
    kinds = ["lock", "queue_get", "queue_put", "sleep", "task", "event", "semaphore", "gather"]
    kinds += ["executor", "stream_read"]
    for kind in kinds:
        site = sites[f"w_{kind}"]
        expected = (kind, str(script), line_of(f"target: {kind}", str(script)))
        assert (site.kind, site.file, site.line) == expected, site
    assert census.by_state["waiting"] >= len(kinds)
    assert {r.type for r in census.resources} == {"Lock", "Queue", "Event", "Semaphore"}
    by_kind = {r.kind: r for r in census.resources}
    for kind in ("lock", "queue_get", "queue_put", "event", "semaphore"):
        site = by_kind[kind].site
        assert site is not None and site.function.rpartition(".")[2] == f"w_{kind}", by_kind
        assert site.line == line_of(f"target: {kind}", str(script))


def sync_endpoint(gate: threading.Event) -> None:  # site: anyio hand-off
    gate.wait(10)


def test_waits_for_anyios_worker_threads_name_the_function_handed_to_them() -> None:
    # A Starlette `def` endpoint waits in anyio's plumbing (its CapacityLimiter, its hand-off to
    # a worker thread), with no application frame above: the site is the function it runs.
    to_thread = pytest.importorskip("anyio.to_thread", reason="anyio is not installed")

    async def main() -> None:
        to_thread.current_default_thread_limiter().total_tokens = 1
        gate = threading.Event()
        tasks = [
            asyncio.create_task(to_thread.run_sync(functools.partial(sync_endpoint, gate)))
            for _ in range(3)
        ]
        await until(lambda: all(waiting(t) for t in tasks), "the calls to wait")
        census = collector(asyncio.get_running_loop()).take()
        try:
            mine = [s for s in census.sites if s.function == "sync_endpoint"]
            assert len(mine) == 1, census.sites
            site = mine[0]
            assert (site.kind, site.file, site.line) == (
                "executor",
                __file__,
                line_of("site: anyio hand-off"),
            )
            assert site.count == 3  # one running in the thread, two waiting for the limiter
        finally:
            gate.set()
            await finish(tasks)

    asyncio.run(main())
