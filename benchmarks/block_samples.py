"""How fully a block is seen: stack samples per block, and the share naming the blocking function.

A target runs under the agent at its defaults and blocks its loop, in turn, with a 60 ms
pure-Python burn (``burn_python``) and a 60 ms regular expression that backtracks inside the C
regex engine, holding the GIL all along (``regex_block``), a fresh block every 300 ms. For each
kind the report gives how many blocks the agent reported, the median (and min..max) of stack
samples per block, and the share of the samples whose stack names the function.

    .venv/bin/python benchmarks/block_samples.py [--blocks 20] [--ms 60]

An in-process sampler must hold the GIL to read a stack: a thread that burns Python gives it up
only every switch interval (5 ms), and a C call that holds it never does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

TARGET = r"""
import asyncio, json, re, sys, time

MS = float(sys.argv[1]) / 1000
COUNT = int(sys.argv[2])
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
    # The length of input whose backtracking takes about MS.
    n = 16
    while True:
        start = time.perf_counter()
        regex_block(n)
        took = time.perf_counter() - start
        if took >= MS / 2:
            return n + (1 if took < MS * 0.75 else 0)
        n += 1


async def main():
    n = calibrate()
    await asyncio.sleep(1.0)  # the agent's start-up work is over
    for i in range(COUNT * 2):
        kind = "burn_python" if i % 2 == 0 else "regex_block"
        start = time.time()
        t0 = time.perf_counter()
        burn_python() if kind == "burn_python" else regex_block(n)
        print(json.dumps({"kind": kind, "t": start, "took": time.perf_counter() - t0}), flush=True)
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.5)


asyncio.run(main())
"""


def run(args: argparse.Namespace) -> dict[str, list[tuple[int, float]]]:
    """Per kind, (samples, share naming the function) of each block the agent reported."""
    from loopscope.events import Block
    from loopscope.runner import launcher_path
    from loopscope.sources.agent import AgentSource

    with tempfile.TemporaryDirectory(prefix="loopscope-bench-") as tmp:
        script = Path(tmp) / "blocks.py"
        script.write_text(TARGET)
        socket_path = Path(tmp) / "agent.sock"
        env = dict(os.environ, LOOPSCOPE_SOCKET=str(socket_path))
        env.pop("LOOPSCOPE_COLLECTORS", None)
        process = subprocess.Popen(
            [args.python, str(launcher_path()), str(script), str(args.ms), str(args.blocks)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        blocks: list[Block] = []
        source = AgentSource(socket_path, alive=lambda: process.poll() is None)

        def read() -> None:
            for event in source.events():
                if isinstance(event, Block):
                    blocks.append(event)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        out, _ = process.communicate(timeout=120)
        reader.join(10)
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result: dict[str, list[tuple[int, float]]] = {"burn_python": [], "regex_block": []}
    missed = dict.fromkeys(result, 0)
    for r in runs:
        # The block that holds the call: it starts at most a few ms before it.
        found = [b for b in blocks if b.t - 0.01 <= r["t"] <= b.t + b.duration]
        if not found:
            missed[r["kind"]] += 1
            continue
        block = found[0]
        naming = sum(
            s.count for s in block.stacks if any(f.function.endswith(r["kind"]) for f in s.frames)
        )
        share = naming / block.samples if block.samples else 0.0
        result[r["kind"]].append((block.samples, share))
    for kind, n in missed.items():
        if n:
            print(f"{kind}: {n} blocks not reported")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=20, help="blocks of each kind")
    parser.add_argument("--ms", type=float, default=60.0, help="each block's length")
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured")
    args = parser.parse_args()
    result = run(args)
    print(f"{args.blocks} blocks of each kind, {args.ms:g} ms each, the agent at its defaults")
    head = "samples per block: median (min..max)"
    print(f"{'block':<12} {'reported':>8} {head:>38} {'naming':>8}")
    for kind, seen in result.items():
        if not seen:
            print(f"{kind:<12} {0:>8}")
            continue
        samples = [s for s, _ in seen]
        total = sum(samples)
        naming = sum(s * share for s, share in seen) / total if total else 0.0
        spread = f"{statistics.median(samples):g} ({min(samples)}..{max(samples)})"
        print(f"{kind:<12} {len(seen):>8} {spread:>38} {naming:>7.0%}")


if __name__ == "__main__":
    main()
