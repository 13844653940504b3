"""How fully a block is seen: stack samples per block, and the share naming the blocking function,
by the agent alone and by samplers reading the target from outside its GIL beside it.

A target runs under the agent at its defaults. After an idle phase and a loaded phase (the loop
kept busy by many short callbacks, no block), it blocks its loop, in turn, with a 60 ms
pure-Python burn (``burn_python``) and a 60 ms regular expression that backtracks inside the C
regex engine, holding the GIL all along (``regex_block``), a fresh block every 300 ms. For each
variant and kind the report gives the calls' median length, how many blocks the agent reported,
the median (and min..max) of the samples per block, the share of them naming the function, and
the CPU time of the target and of the sampler process in each phase (% of a core).

    .venv/bin/python benchmarks/block_samples.py [--blocks 20] [--ms 60] [--python PATH]
        [--variant agent] [--variant pyspy:500] [--variant pyspy-start] [--variant remote]

Variants:
  agent         the agent alone: the samples are its watchdog's;
  pyspy:RATE    the agent, and `py-spy record --nonblocking` beside it at RATE samples/s (as
                loopscope's py-spy source runs it: back-to-back one-second windows); the samples
                are py-spy's, those inside the agent's block;
  pyspy-start   the agent, and one `py-spy record` (1,000/s) started as the target announces each
                block (the best a sampler started when the heartbeat stalls could do): the samples
                are those of the block; the first sample's delay is the block's length less
                the samples' span;
  remote        the agent, and loopscope's ``remote_stacks`` source: the target's own
                interpreter reading the loop thread (3.14+: ``_remote_debugging``, 3.10-3.13:
                loopscope's ``_unwind``) every 10-20 ms, every 1 ms while one callback holds the
                loop (``remote:MS``: every MS-2*MS ms).

An in-process sampler must hold the GIL to read a stack: a thread that burns Python gives it up
only every switch interval (5 ms), and a C call that holds it never does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET = r"""
import asyncio, json, re, sys, time

MS = float(sys.argv[1]) / 1000
COUNT = int(sys.argv[2])
PHASE = float(sys.argv[3])
PATTERN = re.compile(r"(a+)+$")


def burn_python():
    end = time.perf_counter() + MS
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def regex_block(n):
    return PATTERN.match("a" * n + "b")


def calibrate():
    # The length of input whose backtracking takes closest to MS (each character doubles it;
    # the least of three runs, as other processes take the core now and then).
    n = 16
    while True:
        took = min(timed(n) for _ in range(3))
        if took >= MS / 1.5:
            return n if took < MS * 1.5 else n - 1
        n += 1


def timed(n):
    start = time.perf_counter()
    regex_block(n)
    return time.perf_counter() - start


def say(**fields):
    print(json.dumps(fields), flush=True)


async def worker(end):
    # a short callback at a time: the loop is busy, never blocked
    while time.perf_counter() < end:
        stop = time.perf_counter() + 0.0002
        while time.perf_counter() < stop:
            pass
        await asyncio.sleep(0)


async def main():
    n = calibrate()
    await asyncio.sleep(1.0)  # the agent's start-up work is over
    say(phase="idle", cpu=time.process_time())
    await asyncio.sleep(PHASE)
    say(phase="load", cpu=time.process_time())
    end = time.perf_counter() + PHASE
    await asyncio.gather(*(worker(end) for _ in range(20)))
    say(phase="blocks", cpu=time.process_time())
    for i in range(COUNT * 2):
        kind = "burn_python" if i % 2 == 0 else "regex_block"
        say(about=kind)
        start = time.time()
        t0 = time.perf_counter()
        burn_python() if kind == "burn_python" else regex_block(n)
        say(kind=kind, t=start, took=time.perf_counter() - t0)
        await asyncio.sleep(0.3)
    say(phase="end", cpu=time.process_time())
    await asyncio.sleep(0.5)


asyncio.run(main())
"""

KINDS = ("burn_python", "regex_block")
PHASES = ("idle", "load", "blocks")


@dataclass
class Result:
    """One variant's run: per kind (samples, share naming it) per block; CPU per phase."""

    variant: str
    blocks: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    took: dict[str, list[float]] = field(default_factory=dict)  # each call's length, s
    missed: dict[str, int] = field(default_factory=dict)
    target_cpu: dict[str, float] = field(default_factory=dict)  # % of a core
    sampler_cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""


def descendants_cpu(exclude: int) -> float:
    """CPU seconds of this process's children, reaped or alive, and theirs, but ``exclude``."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(x) for x in fields[11:15]) / ticks
    total = 0.0
    for pid, t in times.items():
        p, seen = pid, 0
        while p in parents and p != os.getpid() and seen < 50:
            p, seen = parents[p], seen + 1
        if p == os.getpid() and pid != exclude and not _under(pid, exclude, parents):
            total += t
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + usage.ru_utime + usage.ru_stime


def _under(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    while pid in parents and pid != 1:
        pid = parents[pid]
        if pid == ancestor:
            return True
    return False


def _expand(events: list[Any]) -> Iterator[tuple[float, tuple[Any, ...]]]:
    """(time, callback frames) of each sample in `ExternalSamples` events."""
    for e in events:
        start = e.t - e.window
        for offset, which in zip(e.offsets_ms, e.which, strict=False):
            frames = e.stacks[which].frames if 0 <= which < len(e.stacks) else ()
            yield start + offset / 1000, frames


def run(args: argparse.Namespace, variant: str) -> Result:
    from loopscope.attach import inspect
    from loopscope.events import Block, ExternalSamples
    from loopscope.runner import launcher_path
    from loopscope.sources.agent import AgentSource
    from loopscope.sources.merge import MergedSource
    from loopscope.sources.pyspy import PySpySource, find_pyspy
    from loopscope.sources.remote_stacks import RemoteStacksSource

    result = Result(variant)
    with tempfile.TemporaryDirectory(prefix="loopscope-bench-") as tmp:
        script = Path(tmp) / "blocks.py"
        script.write_text(TARGET)
        socket_path = Path(tmp) / "agent.sock"
        env = dict(os.environ, LOOPSCOPE_SOCKET=str(socket_path))
        env.pop("LOOPSCOPE_COLLECTORS", None)
        argv = [args.python, str(launcher_path()), str(script), str(args.ms), str(args.blocks)]
        process = subprocess.Popen(
            [*argv, str(args.phase)], stdout=subprocess.PIPE, env=env, text=True
        )
        alive: Callable[[], bool] = lambda: process.poll() is None  # noqa: E731
        agent = AgentSource(socket_path, alive=alive)
        sources: list[Any] = [agent]
        if variant.startswith("pyspy:"):
            rate = float(variant.split(":", 1)[1])
            sources.append(PySpySource(process.pid, blocks=False, interval=1 / rate, alive=alive))
        elif variant.startswith("remote"):
            # the wrapper (tests/pythons.py) runs the interpreter in place: wait for it
            deadline = time.monotonic() + 10
            info = inspect(process.pid)
            while info.python is None and time.monotonic() < deadline:
                time.sleep(0.05)
                info = inspect(process.pid)
            idle = float(variant.split(":", 1)[1]) / 1000 if ":" in variant else None
            sources.append(
                RemoteStacksSource(info, alive=alive)
                if idle is None
                else RemoteStacksSource(info, idle=idle, alive=alive)
            )
        merged = MergedSource(sources, leader=agent)
        blocks: list[Block] = []
        external: list[ExternalSamples] = []
        states: list[str] = []

        def read() -> None:
            for event in merged.events():
                if isinstance(event, Block):
                    blocks.append(event)
                elif isinstance(event, ExternalSamples):
                    external.append(event)
                elif getattr(event, "kind", "") == "source_state":
                    states.append(f"{event.source}: {event.state} {event.detail}")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        runs: list[dict[str, Any]] = []
        marks: dict[str, tuple[float, float, float]] = {}  # phase -> (wall, target, sampler)
        started: list[tuple[str, subprocess.Popen[str], Path]] = []
        assert process.stdout is not None
        for line in process.stdout:
            if not line.startswith("{"):
                continue
            item = json.loads(line)
            if "phase" in item:
                marks[item["phase"]] = (time.monotonic(), item["cpu"], descendants_cpu(process.pid))
            elif "about" in item and variant == "pyspy-start":
                out = Path(tmp) / f"start-{len(started)}.txt"
                command = [
                    find_pyspy() or "py-spy", "record", "--nonblocking", "--idle",
                    "--format", "raw", "--rate", "1000", "--duration", "1",
                    "--pid", str(process.pid), "--output", str(out),
                ]  # fmt: skip
                spy = subprocess.Popen(
                    command,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                started.append((item["about"], spy, out))
            elif "kind" in item:
                runs.append(item)
        process.wait(30)
        spied: list[list[str]] = []  # pyspy-start: each block's py-spy output
        for _, spy, out in started:
            spy.wait(10)
            spied.append(out.read_text().splitlines() if out.exists() else [])
        reader.join(15)
        result.note = "; ".join(s for s in states if not s.startswith("agent"))
    for a, b in zip(PHASES, (*PHASES[1:], "end"), strict=True):
        if a in marks and b in marks:
            wall = marks[b][0] - marks[a][0]
            result.target_cpu[a] = 100 * (marks[b][1] - marks[a][1]) / wall
            result.sampler_cpu[a] = 100 * (marks[b][2] - marks[a][2]) / wall
    samples = list(_expand(external))
    result.blocks = {kind: [] for kind in KINDS}
    result.missed = dict.fromkeys(KINDS, 0)
    result.took = {kind: [r["took"] for r in runs if r["kind"] == kind] for kind in KINDS}
    for i, r in enumerate(runs):
        kind = r["kind"]
        # The block that holds the call: it starts at most a few ms before it.
        found = [b for b in blocks if b.t - 0.01 <= r["t"] <= b.t + b.duration]
        if variant == "pyspy-start":
            lines = spied[i]
            counts = [(ln, int(ln.rsplit(" ", 1)[1])) for ln in lines if ln.strip()]
            naming = sum(n for ln, n in counts if kind in ln.rsplit(" ", 1)[0])
            result.blocks[kind].append((naming, 1.0 if naming else 0.0))
            continue
        if not found:
            result.missed[kind] += 1
            continue
        block = found[0]
        if variant == "agent":
            naming = sum(
                s.count for s in block.stacks if any(f.function.endswith(kind) for f in s.frames)
            )
            n = block.samples
        else:
            inside = [fr for t, fr in samples if block.t <= t <= block.t + block.duration]
            n = len(inside)
            naming = sum(1 for fr in inside if any(f.function.endswith(kind) for f in fr))
        result.blocks[kind].append((n, naming / n if n else 0.0))
    return result


def report(args: argparse.Namespace, results: list[Result]) -> None:
    print(
        f"{args.blocks} blocks of each kind, {args.ms:g} ms each, the agent at its defaults; "
        f"Python {args.version}; load average {os.getloadavg()[0]:.1f} at the end"
    )
    head = "samples per block: median (min..max)"
    print(f"{'variant':<12} {'block':<12} {'ms':>5} {'reported':>8} {head:>38} {'naming':>7}")
    for r in results:
        for kind in KINDS:
            seen = r.blocks.get(kind, [])
            ms = statistics.median(r.took[kind]) * 1000 if r.took.get(kind) else 0.0
            if not seen:
                print(f"{r.variant:<12} {kind:<12} {ms:>5.0f} {0:>8}")
                continue
            samples = [s for s, _ in seen]
            total = sum(samples)
            naming = sum(s * share for s, share in seen) / total if total else 0.0
            spread = f"{statistics.median(samples):g} ({min(samples)}..{max(samples)})"
            print(
                f"{r.variant:<12} {kind:<12} {ms:>5.0f} {len(seen):>8} {spread:>38} {naming:>7.0%}"
            )
    print()
    print("CPU, % of a core: target (all its threads) / sampler processes, per phase")
    print(f"{'variant':<12} " + " ".join(f"{p:>16}" for p in PHASES))
    for r in results:
        cells = [
            f"{r.target_cpu[p]:5.1f} / {r.sampler_cpu[p]:5.1f}" if p in r.target_cpu else "-"
            for p in PHASES
        ]
        print(f"{r.variant:<12} " + " ".join(f"{c:>16}" for c in cells))
    for r in results:
        if r.note:
            print(f"{r.variant}: {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=20, help="blocks of each kind")
    parser.add_argument("--ms", type=float, default=60.0, help="each block's length")
    parser.add_argument("--phase", type=float, default=3.0, help="idle and loaded phases, s")
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured")
    parser.add_argument(
        "--variant", action="append", help="agent, pyspy:RATE, pyspy-start, remote (repeat)"
    )
    args = parser.parse_args()
    args.version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    results = [run(args, v) for v in args.variant or ["agent"]]
    report(args, results)


if __name__ == "__main__":
    main()
