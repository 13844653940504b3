"""What the gc and executor collectors cost, per collection and per work item, side by side.

- gc: young collections (``gc.collect(0)`` on a small heap, the common case) with and without
  the agent's callback in ``gc.callbacks``: the callback's cost per collection;
- executor: ``await loop.run_in_executor(None, f)`` for a trivial ``f``, 50 in flight, with and
  without the agent's wrappers (the loop's ``run_in_executor`` and the executor's ``submit``):
  their cost per work item;
- anyio: ``await anyio.to_thread.run_sync(f)`` (what Starlette and FastAPI do for each ``def``
  endpoint), 50 in flight, with and without the agent's wrapper of anyio's backend.

Alternating A/B over several rounds, median per variant.

    .venv/bin/python benchmarks/timing_costs.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable

from loopscope.agent._executor import ExecutorCollector
from loopscope.agent._gc import GcMonitor
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.events import Event

COLLECTIONS = 20_000
ITEMS = 20_000


def _discard(event: Event) -> None:
    pass


def gc_cost(with_callback: bool) -> float:
    """Seconds per young collection."""
    monitor = GcMonitor(_discard, Guard(_discard))
    if with_callback:
        monitor.acquire()
    try:
        started = time.perf_counter()
        for _ in range(COLLECTIONS):
            gc.collect(0)
        return (time.perf_counter() - started) / COLLECTIONS
    finally:
        if with_callback:
            monitor.release()


def executor_cost(wrapped: bool) -> float:
    """Seconds of loop time per work item."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, int)  # the executor exists from here
        collector = ExecutorCollector(
            LoopContext(loop, 1, _discard, Guard(_discard)), interval=3600
        )
        if wrapped:
            collector.start()  # wraps run_in_executor
            collector._tick()  # finds and wraps the default executor
        try:
            started = time.perf_counter()
            for _ in range(ITEMS // 50):
                await asyncio.gather(*(loop.run_in_executor(None, int) for _ in range(50)))
            return (time.perf_counter() - started) / ITEMS
        finally:
            collector.stop()

    return asyncio.run(main())


def anyio_cost(wrapped: bool) -> float:
    """Seconds of loop time per work item, through anyio's worker threads."""
    import anyio.to_thread

    async def main() -> float:
        loop = asyncio.get_running_loop()
        await anyio.to_thread.run_sync(int)  # the worker threads and the limiter exist
        collector = ExecutorCollector(
            LoopContext(loop, 1, _discard, Guard(_discard)), interval=3600
        )
        if wrapped:
            collector._watch_anyio()
        try:
            started = time.perf_counter()
            for _ in range(ITEMS // 50):
                await asyncio.gather(*(anyio.to_thread.run_sync(int) for _ in range(50)))
            return (time.perf_counter() - started) / ITEMS
        finally:
            collector.stop()

    return asyncio.run(main())


def compare(name: str, measure: Callable[[bool], float], rounds: int) -> None:
    without: list[float] = []
    with_: list[float] = []
    for i in range(rounds):
        for on in (False, True) if i % 2 == 0 else (True, False):
            (with_ if on else without).append(measure(on))
    a, b = statistics.median(without), statistics.median(with_)
    print(
        f"{name}: {a * 1e6:.2f} us without, {b * 1e6:.2f} us with "
        f"(+{(b - a) * 1e6:.2f} us, {(b / a - 1) * 100:+.1f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    compare("gc: per young collection", gc_cost, args.rounds)
    compare("executor: per work item", executor_cost, args.rounds)
    compare("anyio: per work item", anyio_cost, args.rounds)


if __name__ == "__main__":
    main()
