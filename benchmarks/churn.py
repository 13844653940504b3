"""What the agent costs a program that creates and finishes many short tasks, per task.

Each variant runs in a fresh child process: batches of ``--batch`` short tasks (one
``sleep(0)`` each) created and gathered, ``--tasks`` in all, on one loop, plain or with the agent
installed in-process with the given collectors. Two ways to count the cost:

- ``--callgrind`` (repeatable on a loaded machine): the child runs under
  ``valgrind --tool=callgrind`` twice, with ``--tasks`` and twice as many; the difference in the
  loop thread's instructions, divided by the extra tasks, is the instructions per task (start-up
  and the agent's own threads left out: their wake-ups follow wall time, which valgrind
  stretches).
- otherwise: the loop thread's CPU time per task, variants alternated over ``--rounds``, median.

    python benchmarks/churn.py --callgrind
    python benchmarks/churn.py --rounds 7 --tasks 200000
    python benchmarks/churn.py --variants plain,lifecycle,all
    python benchmarks/churn.py --settle 3 --tasks 1000000   # once the agent has settled
    python benchmarks/churn.py --callgrind --work iterations --tasks 20000   # per loop turn
    python benchmarks/churn.py --loop uvloop --settle 3 --tasks 1000000   # uvicorn's loop
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


async def _run(tasks: int, batch: int) -> None:
    async def short(i: int) -> int:
        await asyncio.sleep(0)
        return i

    for _ in range(tasks // batch):
        await asyncio.gather(*[asyncio.create_task(short(i)) for i in range(batch)])


async def _iterate(iterations: int, batch: int) -> None:
    """``iterations`` turns of the loop, each running one callback and nothing else (what the
    agent costs each iteration: its selector wrapper)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [iterations]

    def turn() -> None:
        left[0] -= 1
        if left[0] > 0:
            loop.call_soon(turn)
        else:
            done.set_result(None)

    loop.call_soon(turn)
    await done


WORK = {"tasks": _run, "iterations": _iterate}


def child(
    variant: str,
    tasks: int,
    batch: int,
    work: str = "tasks",
    src: str = SRC,
    settle: float = 0.0,
    kind: str = "asyncio",
) -> None:
    sys.path.insert(0, src)
    if kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    if variant != "plain":
        from loopscope.agent import _core

        sock = os.path.join(tempfile.mkdtemp(prefix="churn"), "agent.sock")
        _core.install(loop, socket_path=sock, collectors=None if variant == "all" else variant)
    run = WORK[work]

    async def measure() -> float:
        # One run of the loop: the agent observes a loop from each start, so a loop started
        # again would have its collectors' first seconds in the measured run.
        await run(batch * 20, batch)  # warm-up
        settled = time.monotonic() + settle
        while time.monotonic() < settled:  # past the agent's first seconds (see --settle)
            await run(batch * 20, batch)
        cpu = time.thread_time()
        await run(tasks, batch)
        return time.thread_time() - cpu

    cpu = loop.run_until_complete(measure())
    print(json.dumps({"cpu": cpu, "tasks": tasks}), flush=True)
    if variant != "plain":
        _core.uninstall()
    loop.close()


def _child_args(variant: str, args: argparse.Namespace) -> list[str]:
    """The child's command line; ``before`` or ``before:SPEC`` runs the agent of ``--before``
    (all collectors, or SPEC)."""
    src = SRC
    if variant == "before" or variant.startswith("before:"):
        if not args.before:
            raise SystemExit("churn: the 'before' variants need --before SRC")
        src, variant = args.before, variant.partition(":")[2] or "all"
    return [sys.executable, __file__, f"--child={variant}", "--src", src, "--batch",
            str(args.batch), "--work", args.work, "--settle", str(args.settle),
            "--loop", args.loop]  # fmt: skip


def _cpu(variant: str, args: argparse.Namespace) -> float:
    out = subprocess.run(
        [*_child_args(variant, args), "--tasks", str(args.tasks)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    figures = json.loads(out.strip().splitlines()[-1])
    return float(figures["cpu"]) / figures["tasks"]


def _instructions(variant: str, tasks: int, args: argparse.Namespace) -> int:
    """Instructions of the loop thread (callgrind's thread 1) for one child run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}", *_child_args(variant, args), "--tasks", str(tasks)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        files = sorted(glob.glob(out + "*"))
        main = [f for f in files if f.endswith("-01")] or files
        with open(main[0]) as f:
            text = f.read()
        found = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(
            r"^totals:\s+(\d+)", text, re.M
        )
        if found is None:
            raise SystemExit(f"churn: no instruction count in {main[0]}")
        return int(found.group(1))


def _check_variants(variants: list[str]) -> None:
    sys.path.insert(0, SRC)
    from loopscope.agent._core import parse_collectors

    for v in variants:
        if v in ("plain", "before") or v.startswith("before:"):
            continue
        try:
            parse_collectors(v)
        except ValueError as e:
            raise SystemExit(f"churn: variant {v!r}: {e}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        default="plain,all",
        help="plain, all, or collectors specs ('lifecycle'); ';'-separated if a spec has commas",
    )
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds of the same work, not measured, before the measured run: the cost once "
        "the lifecycle collector samples (it counts every task for its first second or so)",
    )
    parser.add_argument(
        "--work",
        choices=sorted(WORK),
        default="tasks",
        help="what --tasks counts: short tasks, or bare loop iterations (one callback each)",
    )
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="a src/ directory of an earlier loopscope: the variants "
        "'before' (its agent at defaults) and 'before:SPEC' run it side by side",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop: asyncio's, or uvloop's (what uvicorn runs when it is installed)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--src", default=SRC, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tasks, args.batch, args.work, args.src, args.settle, args.loop)
        return
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise SystemExit("churn: --loop uvloop needs uvloop installed") from None
    variants = [v for v in args.variants.split(";" if ";" in args.variants else ",") if v]
    _check_variants(variants)
    results: dict[str, float] = {}
    if args.callgrind:
        for v in variants:
            low = _instructions(v, args.tasks, args)
            high = _instructions(v, 2 * args.tasks, args)
            results[v] = (high - low) / args.tasks
            unit = args.work.rstrip("s")
            print(f"{v:>12}: {results[v]:8.0f} instructions per {unit}", flush=True)
        unit = "instructions"
    else:
        runs: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                runs[v].append(_cpu(v, args))
        for v in variants:
            results[v] = statistics.median(runs[v])
            spread = f"{min(runs[v]) * 1e6:.2f}..{max(runs[v]) * 1e6:.2f}"
            print(f"{v:>12}: {results[v] * 1e6:6.2f} us per task (loop thread; {spread})")
        unit = "CPU"
    if "plain" in results:
        for v in variants:
            if v != "plain":
                print(
                    f"{v:>12}: {results[v] / results['plain']:.3f} x plain's {unit} per "
                    + args.work.rstrip("s")
                )


if __name__ == "__main__":
    main()
