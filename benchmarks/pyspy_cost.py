"""What sampling with py-spy costs: the target's throughput with and without the py-spy source,
and py-spy's own CPU time, side by side in one run.

The target is the ``http`` workload of ``benchmarks/overhead.py`` (an HTTP-like server whose
loop is saturated by 32 keep-alive clients in a separate process), without the agent. Each
variant runs in a fresh process: plain, then the py-spy source exactly as loopscope runs it, in
an order reversed every other round so that drift in the machine's speed falls on all alike:

- ``record:S``: back-to-back ``py-spy record --nonblocking`` windows sampling every S seconds,
  as beside the agent (``attach``, ``run --pyspy``); the default ``record:0.02``;
- ``dump:S``: ``py-spy dump --nonblocking`` every S seconds, as without the agent
  (``attach --no-inject``).

py-spy's CPU time is what the py-spy processes used (the children of this process, less the
target's own).

    .venv/bin/python benchmarks/pyspy_cost.py [--rounds 6] [--seconds 4] \
        [--variant record:0.02 --variant dump:0.02 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

OVERHEAD = Path(__file__).with_name("overhead.py")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(variant: str | None, args: argparse.Namespace) -> tuple[float, float, float, int]:
    """(responses per second, responses per CPU second of the target, py-spy CPU seconds per
    second, samples taken) of one run: the target alone if ``variant`` is None, else with the
    py-spy source as ``variant`` says ("record:0.02", "dump:0.05")."""
    from loopscope.sources.pyspy import PySpySource

    before = _children_cpu()
    process = subprocess.Popen(
        [args.python, str(OVERHEAD), "--workload", "http", "--seconds", str(args.seconds),
         "--warmup", str(args.warmup), "--clients", str(args.clients)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    source = None
    reader = None
    if variant is not None:
        time.sleep(min(0.5, args.warmup / 2))  # let the interpreter start before py-spy looks
        mode, interval = variant.split(":")
        # (the dump mode finds blocks too: it is the mode without the agent)
        source = PySpySource(process.pid, interval=float(interval), blocks=mode == "dump")
        events = source.events()

        def read() -> None:
            for event in events:
                if event.kind == "source_state" and event.state == "unavailable":  # type: ignore[attr-defined]
                    raise SystemExit(f"py-spy could not sample: {event.detail}")  # type: ignore[attr-defined]

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if source is not None and reader is not None:
        source.close()
        reader.join(10)
    if process.returncode != 0:
        raise SystemExit(f"the workload failed (exit code {process.returncode})")
    elapsed = args.seconds + args.warmup
    target_cpu = usage.ru_utime + usage.ru_stime
    pyspy_cpu = max(0.0, _children_cpu() - before - target_cpu)
    result = json.loads(out.strip().splitlines()[-1])
    samples = source.samples if source is not None else 0
    # (the target's CPU time includes its load generator's, a child it waited for)
    return (
        result["ops"] / result["seconds"],
        result["ops"] / target_cpu,
        pyspy_cpu / elapsed,
        samples,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured")
    parser.add_argument(
        "--variant",
        action="append",
        metavar="MODE:S",
        help="record:S or dump:S, S seconds between samples (repeatable; default: record at "
        "the source's default interval)",
    )
    args = parser.parse_args()
    from loopscope.sources.pyspy import DEFAULT_INTERVAL

    intervals: list[str | None] = [None, *(args.variant or [f"record:{DEFAULT_INTERVAL:g}"])]
    print(
        f"{os.cpu_count()} CPUs; {args.rounds} rounds x {args.seconds:g} s (after "
        f"{args.warmup:g} s warm-up); http with {args.clients} clients; "
        f"default: record every {DEFAULT_INTERVAL * 1000:g} ms"
    )
    rates: dict[str | None, list[float]] = {i: [] for i in intervals}
    per_cpu: dict[str | None, list[float]] = {i: [] for i in intervals}
    cpus: dict[str | None, list[float]] = {i: [] for i in intervals}
    for round_ in range(args.rounds):
        cells = []
        for interval in intervals if round_ % 2 == 0 else intervals[::-1]:
            rate, rate_cpu, cpu, samples = measure(interval, args)
            rates[interval].append(rate)
            per_cpu[interval].append(rate_cpu)
            cpus[interval].append(cpu)
            label = "plain" if interval is None else interval
            extra = "" if interval is None else f" (py-spy {cpu:.0%} of a core, {samples} samples)"
            cells.append(f"{label} {rate:>8,.0f}/s{extra}")
        print(f"round {round_ + 1}  " + "   ".join(cells), flush=True)
    print()
    plain = statistics.median(rates[None])
    plain_cpu = statistics.median(per_cpu[None])
    print(f"plain (median) {plain:>8,.0f}/s, {plain_cpu:,.0f} per CPU s")
    for interval in intervals[1:]:
        assert interval is not None
        rate = statistics.median(rates[interval])
        rate_cpu = statistics.median(per_cpu[interval])
        print(
            f"py-spy {interval}: {rate:>8,.0f}/s "
            f"(slowdown {(1 - rate / plain) * 100:.1f}%), {rate_cpu:,.0f} per CPU s "
            f"(loss {(1 - rate_cpu / plain_cpu) * 100:.1f}%), py-spy "
            f"{statistics.median(cpus[interval]):.0%} of a core (medians)"
        )


if __name__ == "__main__":
    main()
