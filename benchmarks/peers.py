"""What loopscope costs beside its peers: CPU time per request at a fixed load, in one run.

The target, the load and the CPU accounting are ``benchmarks/overhead.py``'s (an asyncio
HTTP-like server holding 200 sleeping tasks, loaded OPEN LOOP from a separate process; the
target's CPU time per request over all its threads). Each variant is a fresh target process:

- ``plain``: nothing attached;
- ``loopscope``: the agent at its defaults, installed by the launcher ``loopscope run`` uses, a
  client reading every event;
- ``py-spy``: ``py-spy record --nonblocking`` at its default rate (100 Hz), attached from
  outside once the target listens; its own CPU time is counted apart ("external");
- ``aiomonitor``, ``aiomonitor-tf``: ``aiomonitor.start_monitor`` around the loop, at defaults
  and with ``hook_task_factory=True`` (free loopback ports);
- ``asyncio-debug``: ``PYTHONASYNCIODEBUG=1``, ``slow_callback_duration`` 20 ms;
- ``pyinstrument``: its profiler in async mode (``async_mode="enabled"``) around the loop's main
  coroutine, default interval;
- ``yappi``: ``yappi.start()`` on the wall clock (the clock its documentation gives for asyncio).

A peer that is not installed is skipped with the reason printed. Variants run once per round, in
an order reversed every other round; each figure is the median over rounds of the ratio
variant/plain within the round.

    .venv/bin/python benchmarks/peers.py                    # 3 rounds at 2,000 req/s
    .venv/bin/python benchmarks/peers.py --rates 500 2000 --rounds 4
    .venv/bin/python benchmarks/peers.py --peer loopscope --peer yappi

With ``--names``, no load: each peer (loopscope through ``loopscope run --headless --json``)
watches a program whose ``crunch_numbers`` burns the CPU for 50 ms on the loop every 0.5 s, for
6 s, and the peer's own output is read for that function's name and the time it gives it (the
program spent about 0.6 s in it).

    .venv/bin/python benchmarks/peers.py --names
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import pstats
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import overhead  # (the load generator and CPU accounting are overhead.py's)

PEERS = ("loopscope", "py-spy", "aiomonitor", "aiomonitor-tf", "asyncio-debug", "pyinstrument",
         "yappi")  # fmt: skip


# -- The target under a peer (in the measured process) ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _target(peer: str, report: str, body: Callable[[], Any] = overhead._target) -> None:
    """overhead.py's target (or ``body``) with ``peer`` installed around it; the peer's own output
    (when it has one) is written to ``report`` after the target ends, outside the measured
    phases."""
    loop = asyncio.get_running_loop()
    if peer == "asyncio-debug":
        loop.slow_callback_duration = 0.02
        await body()
    elif peer in ("aiomonitor", "aiomonitor-tf"):
        import aiomonitor

        with aiomonitor.start_monitor(
            loop,
            port=_free_port(),
            console_port=_free_port(),
            webui_port=_free_port(),
            hook_task_factory=peer == "aiomonitor-tf",
        ):
            await body()
    elif peer == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
        profiler.start()
        await body()
        profiler.stop()
        Path(report).write_text(profiler.output_text())
    elif peer == "yappi":
        import yappi

        yappi.set_clock_type("wall")
        yappi.start()
        await body()
        yappi.stop()
        yappi.get_func_stats().save(report, type="pstat")
    else:
        await body()


# -- Which peer names the blocking function (--names) ----------------------------------------

BLOCK_S = 0.05
EVERY_S = 0.5
NAMES_S = 6.0


def crunch_numbers() -> int:
    """The blocking function: a pure-Python burn of BLOCK_S on the loop."""
    end = time.perf_counter() + BLOCK_S
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


async def _blocking() -> None:
    """The program --names watches: ``crunch_numbers`` every EVERY_S for NAMES_S."""

    async def handle_report() -> None:
        for _ in range(round(NAMES_S / EVERY_S)):
            crunch_numbers()
            await asyncio.sleep(EVERY_S - BLOCK_S)

    await asyncio.create_task(handle_report())


def _named(peer: str, report: str, stdout: str, stderr: str) -> str:
    """What ``peer``'s own output says of crunch_numbers: the time it gives it, or why not."""
    if peer == "loopscope":
        for finding in json.loads(stdout)["findings"]:
            location = finding.get("location") or {}
            if location.get("function") == "crunch_numbers":
                ev = finding.get("evidence", {})
                return (
                    f"yes: {finding['code']}, {ev.get('count')} blocks, "
                    f"{ev.get('total_s', 0):.2f} s, max {ev.get('max_s', 0) * 1000:.0f} ms"
                )
        return "no"
    if peer == "py-spy":  # collapsed stacks: "frame;frame;... count"
        samples = sum(
            int(line.rsplit(" ", 1)[1])
            for line in Path(report).read_text().splitlines()
            if "crunch_numbers" in line
        )
        return (
            f"yes: {samples} samples (about {samples / 100:.2f} s at 100 Hz)" if samples else "no"
        )
    if peer == "pyinstrument":  # a tree of "seconds function file:line"
        times = re.findall(r"([0-9.]+) crunch_numbers\b", Path(report).read_text())
        return f"yes: {sum(map(float, times)):.2f} s" if times else "no"
    if peer == "yappi":
        stats = pstats.Stats(report).stats  # type: ignore[attr-defined]
        spent = [v[3] for (_, _, name), v in stats.items() if name == "crunch_numbers"]
        return f"yes: {sum(spent):.2f} s" if spent else "no"
    if peer == "asyncio-debug":
        # "Executing <Task ... coro=<handle_report() ...>> took 0.051 seconds"
        slow = re.findall(r"Executing .*?coro=<([\w.<>]+)\(\).*? took ([0-9.]+) seconds", stderr)
        if any("crunch_numbers" in name for name, _ in slow):
            return "yes"
        if slow:
            coroutines = sorted({name for name, _ in slow})
            total = sum(float(t) for _, t in slow)
            said = f"{', '.join(coroutines)} ({len(slow)} times, {total:.2f} s)"
            return f"no: it names the task's coroutine, {said}"
        return "no"
    return "no: it reports nothing of the loop's blocks (tasks and their stacks, on request)"


def names(args: argparse.Namespace) -> None:
    """Each peer's own output on a program that blocks in crunch_numbers."""
    print(
        f"Python {sys.version.split()[0]}; crunch_numbers burns {BLOCK_S * 1000:.0f} ms on the "
        f"loop every {EVERY_S:g} s for {NAMES_S:g} s (about {NAMES_S / EVERY_S * BLOCK_S:.1f} s)"
    )
    for peer in args.peer or PEERS:
        reason = missing(peer)
        if reason:
            print(f"{peer:<14} skipped: {reason}")
            continue
        with tempfile.TemporaryDirectory(prefix="loopscope-peers-") as tmp:
            report = str(Path(tmp) / "report")
            env = _environment(peer)
            target = [__file__, "--role", "names-target", "--under", peer, "--report", report]
            if peer == "loopscope":
                command = [sys.executable, "-m", "loopscope", "run", "--headless", "--json",
                           "--python", args.python, *target]  # fmt: skip
            elif peer == "py-spy":
                command = [str(_pyspy()), "record", "--format", "raw", "--output", report,
                           "--nonblocking", "--", args.python, *target]  # fmt: skip
            else:
                command = [args.python, *target]
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
            if done.returncode != 0:
                raise SystemExit(
                    f"peers: {peer} failed ({done.returncode}):\n{done.stderr[-2000:]}"
                )
            print(f"{peer:<14} {_named(peer, report, done.stdout, done.stderr)}", flush=True)


# -- The driver ---------------------------------------------------------------------------------


def _pyspy() -> str | None:
    from loopscope.sources.pyspy import find_pyspy

    return find_pyspy()


def _environment(peer: str) -> dict[str, str]:
    """The target's environment under ``peer``: asyncio's debug mode only for its own variant."""
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    if peer == "asyncio-debug":
        env["PYTHONASYNCIODEBUG"] = "1"
    return env


def missing(peer: str) -> str | None:
    """Why ``peer`` cannot be measured here, or None."""
    if peer == "py-spy" and _pyspy() is None:
        return "no py-spy binary (beside this interpreter, or on PATH)"
    module = {"aiomonitor": "aiomonitor", "aiomonitor-tf": "aiomonitor",
              "pyinstrument": "pyinstrument", "yappi": "yappi"}.get(peer)  # fmt: skip
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install -e '.[dev]')"
    return None


def measure(peer: str, args: argparse.Namespace) -> dict[str, float]:
    """The figures of one target process under ``peer`` ("plain" for none)."""
    if peer == "loopscope":
        run = overhead._Run(["--role", "target"], "all", args.python)
        out = overhead.measure_phases(run.process, args)
        run.finish()
        return out
    with tempfile.TemporaryDirectory(prefix="loopscope-peers-") as tmp:
        report = str(Path(tmp) / "report")
        env = _environment(peer)
        errors = open(Path(tmp) / "stderr", "w+")  # noqa: SIM115  (closed below)
        process = subprocess.Popen(
            [args.python, __file__, "--role", "target", "--under", peer, "--report", report],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            text=True,
        )
        spies: list[subprocess.Popen[bytes]] = []
        on_start: Callable[[int], Any] | None = None
        if peer == "py-spy":

            def on_start(pid: int) -> list[int]:
                spy = subprocess.Popen(
                    [str(_pyspy()), "record", "--nonblocking", "--format", "raw", "--output",
                     report, "--pid", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                spies.append(spy)
                time.sleep(0.5)  # py-spy reads the interpreter's layout before it samples
                return [spy.pid]

        try:
            out = overhead.measure_phases(process, args, on_start)
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its report and exits
            process.communicate(timeout=120)
            for spy in spies:
                spy.wait(30)
        errors.seek(0)
        tail = errors.read()[-2000:]
        errors.close()
        if process.returncode != 0:
            raise SystemExit(f"the target under {peer} failed ({process.returncode}):\n{tail}")
        if peer in ("py-spy", "pyinstrument", "yappi") and not Path(report).stat().st_size:
            raise SystemExit(f"{peer} wrote no report: it did not profile")
        return out


def drive(args: argparse.Namespace) -> None:
    peers = []
    for peer in args.peer or PEERS:
        reason = missing(peer)
        if reason:
            print(f"skipped {peer}: {reason}")
        else:
            peers.append(peer)
    variants = ["plain", *peers]
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; {args.rounds} rounds; {args.seconds:g} s per load phase "
        f"after {args.warmup:g} s, {args.conns} connections, {overhead.SLEEPERS} sleeping tasks"
    )
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for v in variants if round_ % 2 == 0 else variants[::-1]:
            figures = measure(v, args)
            rows[v].append(figures)
            print(
                f"round {round_ + 1} {v:<14} idle {figures['idle']:6.3f}% "
                + " ".join(
                    f"{r}/s {figures[f'cpu{r}']:5.1f} us/req (+{figures[f'ext{r}']:.1f} ext) "
                    f"p99 {figures[f'p99_{r}']:6.1f} ms"
                    for r in args.rates
                ),
                flush=True,
            )
    print()
    plain = rows["plain"]
    print("Plain, median over rounds: " + "; ".join(
        f"{r}/s: {statistics.median(p[f'cpu{r}'] for p in plain):.0f} us CPU per request"
        for r in args.rates))  # fmt: skip
    print("Ratios variant/plain within each round, median (min..max); 'total' adds the CPU of")
    print("an external profiler's own process to the target's")
    header = ["variant", "idle %core"]
    for r in args.rates:
        header += [f"CPU/req {r}/s", f"total {r}/s", f"p99 {r}/s"]
    print(" | ".join(header))
    for v in variants[1:]:
        idle = [a["idle"] for a in rows[v]]
        cells = [v, f"{statistics.median(idle):.3f}"]
        for r in args.rates:
            pairs = list(zip(rows[v], plain, strict=True))
            for ratios in (
                [a[f"cpu{r}"] / p[f"cpu{r}"] for a, p in pairs],
                [(a[f"cpu{r}"] + a[f"ext{r}"]) / p[f"cpu{r}"] for a, p in pairs],
                [a[f"p99_{r}"] / p[f"p99_{r}"] for a, p in pairs],
            ):
                cells.append(
                    f"{statistics.median(ratios):.3f} ({min(ratios):.2f}..{max(ratios):.2f})"
                )
        print(" | ".join(cells))
    spread = [
        max(p[f"cpu{r}"] for p in plain) / min(p[f"cpu{r}"] for p in plain) - 1 for r in args.rates
    ]
    print(
        "plain runs' own spread (max/min - 1) of CPU per request: "
        + ", ".join(f"{r}/s {s:.1%}" for r, s in zip(args.rates, spread, strict=True))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds from start to the idle phase"
    )
    parser.add_argument("--idle-seconds", type=float, default=2.0)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--rates", type=int, nargs="+", default=[2000])
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured")
    parser.add_argument(
        "--peer", action="append", choices=PEERS, help="measure only these (repeatable)"
    )
    parser.add_argument(
        "--names", action="store_true", help="which peer names the blocking function (no load)"
    )
    parser.add_argument("--role", choices=["target", "names-target"], help=argparse.SUPPRESS)
    parser.add_argument("--under", default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.no_saturation = True
    if args.role == "target":
        asyncio.run(_target(args.under, args.report or os.devnull))
    elif args.role == "names-target":
        asyncio.run(_target(args.under, args.report or os.devnull, _blocking))
    elif args.names:
        names(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
