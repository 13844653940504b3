"""The executor collector on the pools beside the default executor, in this process: a
ThreadPoolExecutor passed to ``run_in_executor``, and anyio's worker threads (what Starlette and
FastAPI run ``def`` endpoints in). Each is reported as its own pool, with its waits, the function
submitted and what its busy threads run; stopping takes every wrapper out."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from loopscope.agent._executor import ANYIO, ExecutorCollector
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.events import Event, ExecutorSample, Notice

TIMEOUT = 10.0


def lookup(gate: threading.Event) -> int:
    gate.wait(TIMEOUT)
    return 1


def test_a_pool_passed_to_run_in_executor_is_its_own_pool() -> None:
    events: list[Event] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="db")
    gate = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        collector = ExecutorCollector(
            LoopContext(loop, 1, events.append, Guard(events.append)), interval=0.02
        )
        collector.start()
        # Wrapped on the loop's class, not the loop: an instance attribute would slow the loop.
        assert "run_in_executor" in vars(type(loop))
        futures = [loop.run_in_executor(pool, lookup, gate) for _ in range(6)]
        deadline = loop.time() + TIMEOUT
        # Two threads busy in `lookup`, four items waiting: the collector sees both.
        while not any(
            isinstance(e, ExecutorSample) and e.queued == 4 and e.running for e in events
        ):
            assert loop.time() < deadline, "the pool's backlog was never reported"
            await asyncio.sleep(0.01)
        gate.set()
        assert sum(await asyncio.gather(*futures)) == 6
        collector.stop()
        assert "run_in_executor" not in vars(type(loop))
        assert type(loop).run_in_executor is asyncio.BaseEventLoop.run_in_executor
        assert "submit" not in vars(pool)

    try:
        asyncio.run(main())
    finally:
        gate.set()
        pool.shutdown()
    samples = [e for e in events if isinstance(e, ExecutorSample)]
    assert {e.pool for e in samples} == {"ThreadPoolExecutor 'db' (max_workers=2)"}
    busy = next(e for e in samples if e.queued == 4 and e.running)
    assert (busy.max_workers, busy.busy) == (2, 2)
    assert [(r.function, r.count) for r in busy.running] == [("lookup", 2)]
    assert sum(e.submitted for e in samples) == 6
    assert [s.work for e in samples for s in e.submitters] == ["lookup"]
    assert not [e for e in events if isinstance(e, Notice)]


def test_anyio_worker_threads_are_watched_and_named_by_the_function_they_run() -> None:
    to_thread = pytest.importorskip("anyio.to_thread", reason="anyio is not installed")
    from anyio._backends._asyncio import AsyncIOBackend

    original = vars(AsyncIOBackend)["run_sync_in_worker_thread"]
    events: list[Event] = []
    gate = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        to_thread.current_default_thread_limiter().total_tokens = 2
        collector = ExecutorCollector(
            LoopContext(loop, 1, events.append, Guard(events.append)), interval=0.02
        )
        collector.start()
        deadline = loop.time() + TIMEOUT
        while vars(AsyncIOBackend)["run_sync_in_worker_thread"] is original:
            assert loop.time() < deadline, "anyio's backend was never wrapped"
            await asyncio.sleep(0.01)
        calls = [asyncio.ensure_future(to_thread.run_sync(lookup, gate)) for _ in range(5)]
        while not any(
            isinstance(e, ExecutorSample) and e.queued == 3 and e.running for e in events
        ):
            assert loop.time() < deadline, "the backlog of anyio's threads was never reported"
            await asyncio.sleep(0.01)
        gate.set()
        assert sum(await asyncio.gather(*calls)) == 5
        while sum(e.started for e in events if isinstance(e, ExecutorSample)) < 5:
            assert loop.time() < deadline, "the waits were never all reported"
            await asyncio.sleep(0.01)
        collector.stop()

    try:
        asyncio.run(main())
    finally:
        gate.set()
    assert vars(AsyncIOBackend)["run_sync_in_worker_thread"] is original
    samples = [e for e in events if isinstance(e, ExecutorSample)]
    assert {e.pool for e in samples} == {ANYIO}
    busy = next(e for e in samples if e.queued == 3 and e.running)
    assert (busy.max_workers, busy.busy) == (2, 2)
    assert [(r.function, r.count) for r in busy.running] == [("lookup", 2)]
    assert sum(e.submitted for e in samples) == 5
    assert {s.function for e in samples for s in e.submitters} == {"lookup"}
    assert sum(e.started for e in samples) == 5
    assert max(e.wait_max for e in samples) > 0.0
    assert not [e for e in events if isinstance(e, Notice)]
