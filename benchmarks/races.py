"""Cost of race evidence: the source scan, and the runtime detector's pass.

1. Scan: `scan_source` over a set of files (default: the standard library's asyncio package and
   loopscope's own source, read as if they were the application's): total time, time per 1,000
   lines, and the longest single parse in CPU time (the parser holds the GIL for that long).
2. Pass: a loop with N tasks, a quarter of them suspended inside race windows (a few objects
   shared by many tasks), the rest sleeping elsewhere; the loop-thread time of one
   `RaceCollector.take()`, wall and CPU (median and max of the passes after the first).

    .venv/bin/python benchmarks/races.py [--tasks 1000,10000] [--passes 20] [FILE...]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import statistics
import sys
import time
from pathlib import Path

from loopscope.agent import _racescan
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.agent._races import RaceCollector, RaceScanner
from loopscope.agent._racescan import scan_source


def scan(files: list[Path]) -> None:
    longest = 0.0
    original = ast.parse

    def timed_parse(*args: object, **kwargs: object) -> ast.Module:
        nonlocal longest
        started = time.thread_time()  # CPU time: a busy machine's preemption left out
        try:
            return original(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            longest = max(longest, time.thread_time() - started)

    _racescan.ast.parse = timed_parse  # type: ignore[attr-defined]
    lines = functions = windows = 0
    started = time.perf_counter()
    try:
        for file in files:
            source = file.read_text()
            lines += source.count("\n")
            found, n = scan_source(source, str(file))
            functions += n
            windows += len(found)
    finally:
        _racescan.ast.parse = original  # type: ignore[attr-defined]
    took = time.perf_counter() - started
    print(
        f"scan: {len(files)} files, {lines} lines, {functions} async functions, "
        f"{windows} windows: {took * 1000:.1f} ms "
        f"({took * 1000 / max(1, lines) * 1000:.2f} ms per 1,000 lines, "
        f"{took * 1000 / max(1, len(files)):.2f} ms per file); "
        f"longest parse {longest * 1000:.2f} ms of CPU"
    )


class Account:
    def __init__(self) -> None:
        self.balance = 0

    async def withdraw(self, gate: asyncio.Event) -> None:
        balance = self.balance
        await gate.wait()
        self.balance = balance - 1


async def elsewhere(gate: asyncio.Event) -> None:
    await gate.wait()


async def passes(n: int, count: int) -> None:
    gate = asyncio.Event()
    accounts = [Account() for _ in range(10)]
    tasks = [
        asyncio.create_task(accounts[i % 10].withdraw(gate) if i % 4 == 0 else elsewhere(gate))
        for i in range(n)
    ]
    await asyncio.sleep(0.05)
    index: dict[tuple[str, str], tuple[_racescan.Window, ...]] = {}
    for window in scan_source(Path(__file__).read_text(), __file__)[0]:
        key = (window.span.file, window.name)
        index[key] = (*index.get(key, ()), window)
    loop = asyncio.get_running_loop()
    events: list[object] = []
    guard = Guard(events.append)
    scanner = RaceScanner(events.append, guard, ())
    scanner.index = index
    collector = RaceCollector(LoopContext(loop, id(loop), events.append, guard), scanner)
    costs = []
    cpu = []
    groups = inspected = 0
    for _ in range(count):
        started, started_cpu = time.perf_counter(), time.thread_time()
        collector.take()
        costs.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
        groups, inspected = collector.last_crowded, collector.last_inspected
        await asyncio.sleep(0)
    costs, cpu = costs[1:], cpu[1:]
    print(
        f"pass, {n} tasks: median {statistics.median(costs) * 1000:.3f} ms, "
        f"max {max(costs) * 1000:.3f} ms (CPU: median {statistics.median(cpu) * 1000:.3f} ms, "
        f"max {max(cpu) * 1000:.3f} ms); last pass inspected {inspected} tasks, "
        f"{groups} windows with 2+ tasks"
    )
    gate.set()
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="1000,10000")
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    files = args.files or sorted(Path(asyncio.__file__).parent.glob("*.py")) + sorted(
        (Path(__file__).parents[1] / "src" / "loopscope").rglob("*.py")
    )
    print(f"Python {sys.version.split()[0]}")
    scan(files)
    for n in (int(x) for x in args.tasks.split(",")):
        asyncio.run(passes(n, args.passes))


if __name__ == "__main__":
    main()
