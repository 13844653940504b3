"""Loop-thread time of the duplicates collector's passes, with 1,000 and 10,000 live tasks.

Each task runs ``handle(request_id, symbol)`` -> ``fetch_price(symbol)`` and waits; the symbols
repeat (``--symbols`` of them), so there are groups to find. A pass fingerprints the coroutines
it has not seen before, which costs more than looking up one it knows: the first passes (cold
caches, a sample picked for the budget) and later ones (the sample has grown on cached
coroutines) are reported apart, with the sample size the collector settled on.

    .venv/bin/python benchmarks/duplicates.py [--tasks 1000 10000] [--passes 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from loopscope.agent._duplicates import DuplicatesCollector
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.events import Duplicates, Event


async def fetch_price(symbol: str) -> float:
    await asyncio.sleep(3600)
    return 1.0


async def handle(request_id: int, symbol: str) -> float:
    return await fetch_price(symbol)


async def measure(tasks: int, passes: int, symbols: int) -> None:
    running = [asyncio.create_task(handle(i, f"S{i % symbols}")) for i in range(tasks)]
    await asyncio.sleep(0.2)  # every task reaches its wait
    events: list[Event] = []
    collector = DuplicatesCollector(
        LoopContext(asyncio.get_running_loop(), 0, events.append, Guard(events.append))
    )
    costs, cpu, samples = [], [], []
    for _ in range(passes):
        started, started_cpu = time.perf_counter(), time.thread_time()
        collector._pass()  # as the timer runs it (garbage collection put off)
        costs.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
        samples.append(collector._sample)
        await asyncio.sleep(0)
    passes_seen = [e for e in events if isinstance(e, Duplicates)]
    groups = max((len(e.groups) for e in passes_seen), default=0)
    reported = [e.cost for e in passes_seen]
    first, rest, rest_cpu = costs[:5], costs[5:], cpu[5:]
    print(
        f"{tasks:>6} tasks: first 5 passes median {_ms(statistics.median(first))} "
        f"(max {_ms(max(first))}); later: wall median {_ms(statistics.median(rest))}, "
        f"p90 {_ms(sorted(rest)[int(len(rest) * 0.9)])}, max {_ms(max(rest))}; CPU median "
        f"{_ms(statistics.median(rest_cpu))}, p90 {_ms(sorted(rest_cpu)[int(len(rest) * 0.9)])};"
        f" reported cost median {_ms(statistics.median(reported))}; sample "
        f"{samples[4]} -> {samples[-1]}; groups {groups}"
    )
    collector.stop()
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--passes", type=int, default=40)
    parser.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args(argv)
    for n in args.tasks:
        asyncio.run(measure(n, args.passes, args.symbols))


if __name__ == "__main__":
    main()
