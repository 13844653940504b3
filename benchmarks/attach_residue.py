"""What attach/detach cycles leave in a target: its resident memory, and its Python allocations.

A target started from the plain interpreter (no loopscope in its environment) runs an asyncio
loop with 20 tasks ticking every 5 ms. Each cycle attaches (``loopscope.attach.attach``, the
route it picks), reads until the agent's first lag window, detaches and waits for the agent's
socket to go. The target's RSS is read after the checkpoints' cycles; with ``--trace`` the target
also runs ``tracemalloc`` (8 frames) and, at the warm-up checkpoint and at the end, takes a
snapshot on SIGUSR1 after a full collection: their difference is what Python objects the cycles
left, by the line that allocated them.

    .venv/bin/python benchmarks/attach_residue.py [--cycles 60] [--warm 10] [--python 3.12]
    .venv/bin/python benchmarks/attach_residue.py --trace --cycles 25 --warm 5
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loopscope.attach import attach
from loopscope.sources.agent import AgentSource
from pythons import find_pythons

TARGET = """\
import asyncio, gc, os, signal, sys, tracemalloc

OUT = sys.argv[1]
if len(sys.argv) > 2:
    tracemalloc.start(8)
taken = [0]


def snapshot():
    gc.collect()
    taken[0] += 1
    tracemalloc.take_snapshot().dump(f"{OUT}/snap{taken[0]}")
    os.rename(f"{OUT}/snap{taken[0]}", f"{OUT}/snap{taken[0]}.done")


async def tick():
    while True:
        await asyncio.sleep(0.005)


async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, snapshot)
    tasks = [asyncio.create_task(tick()) for _ in range(20)]
    print(os.getpid(), flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
"""

DEADLINE = 30.0


def _wait(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"attach_residue: timed out waiting for {what}")
        time.sleep(0.01)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"attach_residue: no VmRSS for {pid}")


def _cycle(pid: int) -> None:
    attached = attach(pid, timeout=15)
    if attached.route is None:
        raise SystemExit(f"attach_residue: not injected: {attached.how}")
    source = AgentSource(attached.socket_path, connect_timeout=5)
    detached = False
    for event in source.events():
        if event.kind == "lag" and not detached:
            source.detach()
            detached = True
    _wait(lambda: not os.path.exists(attached.socket_path), "the agent's socket to go")


def _snapshot(pid: int, out: Path, n: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    done = out / f"snap{n}.done"
    _wait(done.exists, f"the target's snapshot {n}")
    return tracemalloc.Snapshot.load(str(done))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--warm", type=int, default=10, help="cycles before the first reading")
    parser.add_argument("--python", default="3.12", help="the target's Python version")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the target")
    args = parser.parse_args()
    if not 0 < args.warm < args.cycles:
        parser.error("--warm must be at least 1 and fewer than --cycles")
    python = find_pythons().get(args.python)
    if python is None:
        parser.error(f"no Python {args.python} here (see tests/pythons.py)")
    with tempfile.TemporaryDirectory(prefix="attach-residue-") as tmp:
        out = Path(tmp)
        script = out / "target.py"
        script.write_text(TARGET)
        command = [python, str(script), str(out), *(["trace"] if args.trace else [])]
        target = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert target.stdout is not None
            pid = int(target.stdout.readline())
            print(f"Python {args.python} target, pid {pid}; RSS {_rss_kib(pid)} KiB at start")
            readings: dict[int, int] = {}
            first = None
            for cycle in range(1, args.cycles + 1):
                _cycle(pid)
                if cycle == args.warm and args.trace:
                    first = _snapshot(pid, out, 1)
                if cycle in (1, args.warm, args.cycles) or cycle % 10 == 0:
                    readings[cycle] = _rss_kib(pid)
                    print(f"after {cycle:4d} cycles: RSS {readings[cycle]} KiB", flush=True)
            grown = readings[args.cycles] - readings[args.warm]
            per = grown / (args.cycles - args.warm)
            print(
                f"RSS from cycle {args.warm} to {args.cycles}: {grown:+d} KiB, "
                f"{per:.1f} KiB a cycle"
            )
            if first is not None:
                last = _snapshot(pid, out, 2)
                leave = [tracemalloc.Filter(False, tracemalloc.__file__)]
                first, last = first.filter_traces(leave), last.filter_traces(leave)
                diff = last.compare_to(first, "lineno")
                total = sum(d.size_diff for d in diff)
                print(
                    f"Python allocations from cycle {args.warm} to {args.cycles}: "
                    f"{total / 1024:+.1f} KiB, {total / 1024 / (args.cycles - args.warm):.2f} "
                    "KiB a cycle; the largest by line:"
                )
                for d in diff[:10]:
                    print(f"  {d.size_diff / 1024:+8.1f} KiB {d.count_diff:+6d}  {d.traceback}")
        finally:
            target.kill()
            target.wait()


if __name__ == "__main__":
    main()
