"""What the agent costs a program: CPU time per request at fixed offered loads.

The measured process (the *target*) is an asyncio HTTP-like server that holds 200 sleeping tasks
besides its connections. Each run of it goes through these phases, measured one after the other:

- ``idle``: no load; the target's CPU time over the phase, as a share of one core, from
  ``--settle`` seconds after the start (5 s: the agent's start-up work, its scan of the modules
  and its passes slowing down on an idle loop, is over by then);
- ``500/s``, ``2000/s``, ``5000/s``: a fixed offered load sent OPEN LOOP by a separate load
  generator process over ``--conns`` loopback connections: request ``i`` is due at ``t0 + i/rate``
  whether or not earlier answers came back (several may be in flight on a connection). Reported:
  the target's CPU time per request (all its threads, from ``/proc/PID/task/*/schedstat``, in
  nanoseconds), and p50/p99 latency measured from each request's scheduled send time, so a
  stalled server cannot hide its stall by slowing the sender down;
- ``saturation``: closed-loop clients as fast as the server answers; requests per second (for
  information: on a shared machine it says as much about the neighbours as about the agent).

A second process measures ``churn``: batches of 200 short tasks created and awaited; tasks per CPU
second of the process.

Every variant (plain, the agent at defaults, and with ``--shares`` the agent with each collector
turned off in turn) is run once per round, the variants' order reversed every other round
(ABAB...BA), and the agent runs are installed the real way: the launcher ``loopscope run`` uses,
a client connected and reading every event. Each figure is the median over rounds of the ratio
agent/plain *within the round* (each agent run against the plain run beside it), so drift in the
machine's speed falls on both alike; the spread of those ratios (min..max) says how noisy the
machine was.

    .venv/bin/python benchmarks/overhead.py                  # 4 rounds, plain vs defaults
    .venv/bin/python benchmarks/overhead.py --shares         # + each collector off in turn
    .venv/bin/python benchmarks/overhead.py --quick          # 2 short rounds
    .venv/bin/python benchmarks/overhead.py --collectors=-census   # any $LOOPSCOPE_COLLECTORS
    .venv/bin/python benchmarks/overhead.py --loop uvloop    # target and churn on uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROWS = 100  # ~100 us of work per request: the server, not the client, is the bottleneck
SLEEPERS = 200
REQUEST = b"GET /items/42 HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n"
BEFORE = "before"  # the variant of the agent copy given by --before, at its defaults
COLLECTORS = ("lag", "blocks", "census", "lifecycle", "tasks", "races", "duplicates", "gc",
              "executor")  # fmt: skip


# -- The target (the measured process) ---------------------------------------------------------


def _render(item: int) -> bytes:
    """A handler's modest work: about a hundred microseconds of building a response body."""
    rows = [{"id": item * 10 + i, "name": f"item-{i}", "price": i * 1.5} for i in range(ROWS)]
    return json.dumps({"item": item, "rows": rows, "total": sum(r["price"] for r in rows)}).encode()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            body = _render(int(path.rsplit(b"/", 1)[1]))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
        pass  # a client gone, or not ours (anything may connect to a loopback port)
    finally:
        writer.close()


async def _target() -> None:
    """Serve until stdin closes; print the port first."""
    loop = asyncio.get_running_loop()
    sleepers = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(SLEEPERS)]
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    closed = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: closed.done() or closed.set_result(None))
    await closed
    loop.remove_reader(sys.stdin.fileno())
    server.close()
    for task in sleepers:
        task.cancel()
    await asyncio.gather(*sleepers, return_exceptions=True)


async def _saturated(seconds: float, warmup: float, conns: int) -> dict[str, float]:
    """The server saturated by closed-loop clients in a child process, as one program (what
    ``benchmarks/pyspy_cost.py`` measures): requests answered in the measured window."""
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    load = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "load", "--rate", "0", "--port",
        str(server.sockets[0].getsockname()[1]), "--seconds", str(seconds), "--warmup",
        str(warmup), "--conns", str(conns),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await load.communicate()
    server.close()
    return {"ops": json.loads(out.strip().splitlines()[-1])["answered"], "seconds": seconds}


async def _churn(seconds: float, warmup: float, batch: int = 200) -> tuple[int, float]:
    """(tasks created in the measured window, CPU seconds the process used meanwhile)."""

    async def short(i: int) -> int:
        await asyncio.sleep(0)
        return i

    created = 0
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + seconds
    cpu_from = None
    while True:
        now = time.perf_counter()
        if now >= end:
            return created, time.process_time() - (cpu_from or 0.0)
        if cpu_from is None and now >= measure_from:
            cpu_from = time.process_time()
        await asyncio.gather(*[asyncio.create_task(short(i)) for i in range(batch)])
        if now >= measure_from:
            created += batch


# -- The load generator (a process of its own, never instrumented) ----------------------------


async def _load(
    port: int, rate: float, seconds: float, warmup: float, conns: int
) -> dict[str, Any]:
    """Open loop at ``rate`` (closed loop when 0); prints ``measuring`` and ``done`` as the
    measured window starts and ends, returns the window's answers and latencies."""
    loop = asyncio.get_running_loop()
    pairs = [await asyncio.open_connection("127.0.0.1", port) for _ in range(conns)]
    t0 = loop.time() + 0.05
    m_from, m_to = t0 + warmup, t0 + warmup + seconds
    latencies: list[float] = []
    answered = [0]
    stop = asyncio.Event()

    async def read(reader: asyncio.StreamReader, due: list[float], sent: asyncio.Event) -> None:
        while True:
            while not due:
                if stop.is_set():
                    return
                sent.clear()
                await sent.wait()
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.rsplit(b"Content-Length: ", 1)[1].split(b"\r")[0]))
            scheduled = due.pop(0)
            if m_from <= scheduled < m_to:
                latencies.append(loop.time() - scheduled)
                answered[0] += 1

    dues: list[list[float]] = [[] for _ in pairs]
    sents = [asyncio.Event() for _ in pairs]

    async def closed_loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (sent := loop.time()) < m_to:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.rsplit(b"Content-Length: ", 1)[1].split(b"\r")[0]))
            if m_from <= sent:
                latencies.append(loop.time() - sent)
                answered[0] += 1

    readers = (
        [
            asyncio.create_task(read(r, d, s))
            for (r, _), d, s in zip(pairs, dues, sents, strict=True)
        ]
        if rate > 0
        else []
    )

    marks = asyncio.create_task(_marks(loop, m_from, m_to))
    if rate > 0:
        n = 0
        while True:
            now = loop.time()
            if now >= m_to:
                break
            while t0 + n / rate <= now:
                i = n % conns
                dues[i].append(t0 + n / rate)
                pairs[i][1].write(REQUEST)
                sents[i].set()
                n += 1
            await asyncio.sleep(max(0.0, t0 + n / rate - loop.time()))
    else:
        await asyncio.gather(*(closed_loop(r, w) for r, w in pairs))
    await marks
    stop.set()
    for s in sents:
        s.set()
    await asyncio.wait_for(asyncio.gather(*readers), 30)
    for _, writer in pairs:
        writer.close()
    latencies.sort()
    return {
        "answered": answered[0],
        "seconds": seconds,
        "p50": _pct(latencies, 0.50),
        "p99": _pct(latencies, 0.99),
    }


async def _marks(loop: asyncio.AbstractEventLoop, m_from: float, m_to: float) -> None:
    await asyncio.sleep(max(0.0, m_from - loop.time()))
    print("measuring", flush=True)
    await asyncio.sleep(max(0.0, m_to - loop.time()))
    print("done", flush=True)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


# -- The driver --------------------------------------------------------------------------------


def target_cpu(pid: int, *, main: bool = True) -> float:
    """CPU seconds used so far by every live thread of ``pid`` (nanosecond resolution); with
    ``main`` False, by every thread but the main one (the agent's threads: the workload has
    none of its own)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        if not main and tid == str(pid):
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # exited meanwhile
    return total / 1e9


def _cpu_or_zero(pid: int) -> float:
    try:
        return target_cpu(pid)
    except OSError:
        return 0.0  # gone


def _drain(
    socket_path: Path, alive: Any, counts: dict[str, int], connect_timeout: float = 15.0
) -> threading.Thread:
    from loopscope.sources.agent import AgentSource

    source = AgentSource(socket_path, alive=alive, connect_timeout=connect_timeout)

    def read() -> None:
        for event in source.events():
            counts[event.kind] = counts.get(event.kind, 0) + 1

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


class _Run:
    """One process of the workload, plain (``collectors`` None) or under the agent; the agent
    is the one beside this script's loopscope, or the copy at ``before`` (the ``before``
    variant), and the process runs under ``wrapper`` (valgrind) if given."""

    def __init__(
        self,
        argv: list[str],
        collectors: str | None,
        python: str,
        *,
        before: str | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        from loopscope.runner import launcher_path

        self.counts: dict[str, int] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="loopscope-bench-")
        socket_path = Path(self._tmp.name) / "agent.sock"
        env = dict(os.environ, LOOPSCOPE_SOCKET=str(socket_path))
        env.pop("LOOPSCOPE_COLLECTORS", None)
        if collectors is not None and collectors not in ("all", BEFORE):
            env["LOOPSCOPE_COLLECTORS"] = collectors
        launcher = launcher_path()
        if collectors == BEFORE:
            if before is None:
                raise SystemExit("overhead: the 'before' variant needs --before DIR")
            launcher = Path(before) / "_launch.py"
        prefix = [python, str(launcher)] if collectors is not None else [python]
        self.process = subprocess.Popen(
            [*(wrapper or []), *prefix, __file__, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.reader = (
            _drain(
                socket_path,
                lambda: self.process.poll() is None,
                self.counts,
                connect_timeout=600.0 if wrapper else 15.0,
            )
            if collectors is not None
            else None
        )
        self.collectors = collectors

    def finish(self) -> str:
        out, _ = self.process.communicate(timeout=60)
        if self.reader is not None:
            self.reader.join(10)
        self._tmp.cleanup()
        if self.process.returncode != 0:
            raise SystemExit(f"a workload failed (exit code {self.process.returncode})")
        if self.collectors is not None and self.counts.get("hello", 0) != 1:
            raise SystemExit("the agent never said hello: the agent runs did not measure it")
        return out


def measure_server(collectors: str | None, args: argparse.Namespace) -> dict[str, float]:
    """The figures of one target process through every phase."""
    run = _Run(["--role", "target", "--loop", args.loop], collectors, args.python,
               before=args.before)  # fmt: skip
    out = measure_phases(run.process, args)
    run.finish()  # closes stdin: the target ends
    out["events"] = sum(run.counts.values())
    return out


def measure_phases(
    process: subprocess.Popen[str],
    args: argparse.Namespace,
    on_start: Any = None,
    others: tuple[int, ...] = (),
) -> dict[str, float]:
    """The figures of one target process (``--role target``, started, its port not read yet)
    through every phase; ``on_start(pid)`` is called once its port is printed (an external
    profiler attaches then). The CPU time of the processes ``others`` (returned by ``on_start``)
    is measured over each load phase too: ``ext<rate>``, microseconds per request."""
    assert process.stdout is not None and process.stdin is not None
    port = int(process.stdout.readline())
    pid = process.pid
    if on_start is not None:
        others = tuple(on_start(pid))
    out: dict[str, float] = {}
    time.sleep(args.settle)  # start-up work (the agent's module scan) is not the steady state
    cpu0 = target_cpu(pid)
    time.sleep(args.idle_seconds)
    out["idle"] = (target_cpu(pid) - cpu0) / args.idle_seconds * 100  # % of a core
    for rate in [*args.rates, *([] if getattr(args, "no_saturation", False) else [0])]:
        seconds = args.seconds if rate else args.seconds / 2
        load = subprocess.Popen(
            [args.python, __file__, "--role", "load", "--port", str(port), "--rate", str(rate),
             "--seconds", str(seconds), "--warmup", str(args.warmup), "--conns",
             str(args.conns)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert load.stdout is not None
        marks = {}
        for line in load.stdout:
            if line.strip() in ("measuring", "done"):
                marks[line.strip()] = target_cpu(pid)
                marks[line.strip() + " threads"] = target_cpu(pid, main=False)
                marks[line.strip() + " others"] = sum(_cpu_or_zero(o) for o in others)
                if line.strip() == "done":
                    break
        result = json.loads(load.stdout.read().strip().splitlines()[-1])
        load.wait()
        answered = result["answered"]
        if rate:
            if answered < 0.9 * rate * seconds:
                print(f"  (only {answered} of {rate * seconds:.0f} requests answered at {rate}/s)")
            out[f"cpu{rate}"] = (marks["done"] - marks["measuring"]) / max(1, answered) * 1e6
            threads = marks["done threads"] - marks["measuring threads"]
            out[f"threads{rate}"] = threads / max(1, answered) * 1e6
            ext = marks["done others"] - marks["measuring others"]
            out[f"ext{rate}"] = ext / max(1, answered) * 1e6
            out[f"p50_{rate}"] = result["p50"] * 1e3
            out[f"p99_{rate}"] = result["p99"] * 1e3
        else:
            out["saturation"] = answered / seconds
    return out


def measure_churn(collectors: str | None, args: argparse.Namespace) -> float:
    """Tasks created per CPU second of a churning process."""
    argv = ["--role", "churn", "--seconds", str(args.seconds), "--warmup",
            str(args.churn_warmup), "--loop", args.loop]  # fmt: skip
    run = _Run(argv, collectors, args.python, before=args.before)
    result = json.loads(run.finish().strip().splitlines()[-1])
    return float(result["ops"] / result["cpu"])


def drive(args: argparse.Namespace) -> None:
    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"Python {version}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{args.rounds} rounds; {args.seconds:g} s per load phase after {args.warmup:g} s, "
        f"{args.conns} connections; idle over {args.idle_seconds:g} s with {SLEEPERS} tasks"
    )
    variants: list[str | None] = [None, *args.collectors]
    if args.before:
        variants.append(BEFORE)
    if args.shares:
        variants += [f"-{name}" for name in COLLECTORS]
    rows: dict[str | None, list[dict[str, float]]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        order = variants if round_ % 2 == 0 else variants[::-1]
        for v in order:
            figures = measure_server(v, args)
            figures["churn"] = measure_churn(v, args) if not args.no_churn else float("nan")
            rows[v].append(figures)
            print(
                f"round {round_ + 1} {_label(v):<16} idle {figures['idle']:6.3f}% "
                + " ".join(
                    f"{r}/s {figures[f'cpu{r}']:5.0f} us/req p99 {figures[f'p99_{r}']:6.1f} ms"
                    for r in args.rates
                )
                + f" sat {figures['saturation']:6.0f}/s churn {figures['churn']:7.0f}/cpu-s",
                flush=True,
            )
    print()
    _report(rows, variants, args)


def _report(
    rows: dict[str | None, list[dict[str, float]]],
    variants: list[str | None],
    args: argparse.Namespace,
) -> None:
    plain = rows[None]
    keys = [f"cpu{r}" for r in args.rates]
    print("Plain, median over rounds: idle {:.3f}% of a core; ".format(
        statistics.median(p["idle"] for p in plain))
        + "; ".join(
            f"{r}/s: {statistics.median(p[f'cpu{r}'] for p in plain):.0f} us CPU per request, "
            f"p50 {statistics.median(p[f'p50_{r}'] for p in plain):.2f} ms, "
            f"p99 {statistics.median(p[f'p99_{r}'] for p in plain):.2f} ms"
            for r in args.rates
        )
        + f"; saturation {statistics.median(p['saturation'] for p in plain):.0f}/s")  # fmt: skip
    print()
    print("Ratios agent/plain within each round: median (min..max over rounds)")
    header = ["variant", "idle %core", *(f"CPU/req {r}/s" for r in args.rates)]
    header += [f"p99 {r}/s" for r in args.rates] + ["saturation", "churn", "events"]
    print(" | ".join(header))
    for v in variants[1:]:
        cells = [_label(v)]
        idle = [a["idle"] for a in rows[v]]
        cells.append(f"{statistics.median(idle):.3f} ({min(idle):.3f}..{max(idle):.3f})")
        for key in [*keys, *(f"p99_{r}" for r in args.rates), "saturation", "churn"]:
            ratios = [a[key] / p[key] for a, p in zip(rows[v], plain, strict=True) if p[key]]
            if key == "churn":  # tasks per CPU second: higher is cheaper
                ratios = [1 / x for x in ratios if x]
            if not ratios:
                cells.append("-")
                continue
            cells.append(f"{statistics.median(ratios):.3f} ({min(ratios):.2f}..{max(ratios):.2f})")
        cells.append(f"{statistics.median(a['events'] for a in rows[v]):.0f}")
        print(" | ".join(cells))
    # The agent's own threads (watchdog, server, scanner): their CPU time per request measured
    # directly, a floor under the agent's cost that the machine's noise moves far less.
    print("\nThe agent's threads alone, CPU per request, median over rounds (share of plain's):")
    for v in variants[1:]:
        cells = []
        for r in args.rates:
            own = statistics.median(a[f"threads{r}"] for a in rows[v])
            base = statistics.median(p[f"cpu{r}"] for p in plain)
            cells.append(f"{r}/s {own:.2f} us ({own / base:.1%})")
        print(f"{_label(v)}: " + ", ".join(cells))
    # Noise: how far two plain rounds differ, the floor under any ratio above.
    if len(plain) > 1:
        spread = [
            max(p[k] for p in plain) / min(p[k] for p in plain) - 1 for k in keys if k in plain[0]
        ]
        cells = [f"{r}/s {s * 100:.1f}%" for r, s in zip(args.rates, spread, strict=True)]
        print("\nplain runs' own spread (max/min - 1) of CPU per request: " + ", ".join(cells))
    print("churn is CPU per task (agent/plain); saturation is requests per second (agent/plain)")


# -- Instructions under callgrind ---------------------------------------------------------------


def _callgrind_run(collectors: str | None, args: argparse.Namespace) -> list[list[int]]:
    """Instructions of each thread (the loop thread first) of one target run under callgrind,
    in windows of ``--cg-seconds`` each after ``--settle`` seconds of idleness, with N, N, 2N
    and N requests sent open loop (callgrind's counters dumped and zeroed at each window's
    start and end, so start-up is left out). The first window warms up (the agent's passes,
    slowed down while idle, come back to their pace): not returned."""
    with tempfile.TemporaryDirectory(prefix="loopscope-cg-") as tmp:
        out = os.path.join(tmp, "cg.out")
        wrapper = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
                   f"--callgrind-out-file={out}", f"--log-file={out}.log"]  # fmt: skip
        run = _Run(["--role", "target", "--loop", args.loop], collectors, args.python,
                   before=args.before, wrapper=wrapper)  # fmt: skip
        assert run.process.stdout is not None
        port = int(run.process.stdout.readline())
        time.sleep(args.settle)

        def dump() -> None:
            subprocess.run(["callgrind_control", "-d", str(run.process.pid)], check=True,
                           capture_output=True)  # fmt: skip

        dump()  # start-up and the idle settling: not counted
        for requests in (n := args.cg_requests, n, 2 * n, n):
            load = subprocess.run(
                [args.python, __file__, "--role", "load", "--port", str(port), "--rate",
                 str(requests / args.cg_seconds), "--seconds", str(args.cg_seconds),
                 "--warmup", "0", "--conns", str(args.conns)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            answered = json.loads(load.stdout.strip().splitlines()[-1])["answered"]
            if answered != requests:
                print(f"  ({answered} of {requests} requests answered in the window)")
            dump()
        run.finish()
        windows = []
        for number in (3, 4, 5):
            counts = []
            for path in sorted(glob.glob(f"{out}.{number}-*")):
                with open(path) as f:
                    found = re.search(r"^(?:summary|totals):\s+(\d+)", f.read(), re.M)
                counts.append(int(found.group(1)) if found else 0)
                if args.cg_keep:
                    os.makedirs(args.cg_keep, exist_ok=True)
                    name = f"{_label(collectors)}-{number}{path[len(out) + 2 :]}"
                    shutil.copy(path, os.path.join(args.cg_keep, name))
            windows.append(counts)
        return windows


def drive_callgrind(args: argparse.Namespace) -> None:
    """Instructions per request: windows of one run answering N and 2N requests in the same
    wall time, so what the agent does per second (its timers, its threads' wake-ups) is about
    the same in both and the difference is what each request costs."""
    n = args.cg_requests
    print(
        f"callgrind, {args.python}; load average {os.getloadavg()[0]:.1f}; {n} and {2 * n} "
        f"requests over {args.cg_seconds:g} s after {args.settle:g} s idle"
    )
    variants: list[str | None] = [None, *args.collectors]
    if args.before:
        variants.append(BEFORE)
    if args.shares:
        variants += [f"-{name}" for name in COLLECTORS]
    per_request: dict[str | None, tuple[float, float]] = {}
    for v in variants:
        low, high, again = _callgrind_run(v, args)
        loop_thread = (high[0] - (low[0] + again[0]) / 2) / n
        others = (sum(high[1:]) - (sum(low[1:]) + sum(again[1:])) / 2) / n
        per_request[v] = (loop_thread, others)
        print(
            f"{_label(v):<22} loop thread {loop_thread:9.0f} instructions/request"
            f" (windows of N, 2N, N: {low[0] / 1e6:.1f}M {high[0] / 1e6:.1f}M"
            f" {again[0] / 1e6:.1f}M);  other threads {others:8.0f}/request"
            f" ({sum(low[1:]) / 1e6:.1f}M {sum(high[1:]) / 1e6:.1f}M {sum(again[1:]) / 1e6:.1f}M)",
            flush=True,
        )
    if None in per_request:
        base = per_request[None][0]
        print("\nloop thread, instructions per request, against plain:")
        for v in variants[1:]:
            mine = per_request[v][0]
            print(f"{_label(v):<22} {mine / base:.3f}  ({mine - base:+.0f})")


def _label(collectors: str | None) -> str:
    if collectors is None:
        return "plain"
    if collectors == BEFORE:
        return "before"
    return "agent" if collectors == "all" else f"agent[{collectors}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument(
        "--churn-warmup",
        type=float,
        default=2.0,
        help="seconds of churn before it is measured: the lifecycle collector counts every "
        "task for its first second, then samples (0.5 measures that start too)",
    )
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds from start to the idle phase"
    )
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--rates", type=int, nargs="+", default=[500, 2000, 5000])
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured")
    parser.add_argument("--quick", action="store_true", help="2 rounds of short phases")
    parser.add_argument("--shares", action="store_true", help="also each collector off in turn")
    parser.add_argument("--no-churn", action="store_true")
    parser.add_argument(
        "--collectors",
        action="append",
        metavar="SPEC",
        help="an agent variant measured side by side (repeatable), a $LOOPSCOPE_COLLECTORS "
        "value: all (the default), lag,blocks, -lifecycle, ... (write --collectors=-lifecycle)",
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="an agent package directory (a copy of an earlier "
        "src/loopscope/agent) measured side by side at its defaults, as the variant 'before'",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="instructions per request under valgrind's callgrind instead of CPU time",
    )
    parser.add_argument("--cg-requests", type=int, default=100, help="N (and 2N) requests")
    parser.add_argument("--cg-seconds", type=float, default=5.0, help="over this many seconds")
    parser.add_argument("--cg-keep", metavar="DIR", help="keep callgrind's files here")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the target's and the churn's event loop: asyncio's, or uvloop's (what uvicorn "
        "runs when it is installed; the interpreter measured must have it)",
    )
    parser.add_argument("--role", choices=["target", "churn", "load"], help=argparse.SUPPRESS)
    # The saturated server as one program, for benchmarks/pyspy_cost.py.
    parser.add_argument("--workload", choices=["http"], help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.collectors = args.collectors or ["all"]
    if args.workload == "http":
        result = asyncio.run(_saturated(args.seconds, args.warmup, args.clients or args.conns))
        print(json.dumps(result), flush=True)
    elif args.role == "target":
        _runner(args.loop)(_target())
    elif args.role == "churn":
        ops, cpu = _runner(args.loop)(_churn(args.seconds, args.warmup))
        print(json.dumps({"ops": ops, "cpu": cpu}), flush=True)
    elif args.role == "load":
        result = asyncio.run(_load(args.port, args.rate, args.seconds, args.warmup, args.conns))
        print(json.dumps(result), flush=True)
    elif args.callgrind:
        drive_callgrind(args)
    else:
        if args.quick:
            args.rounds, args.seconds, args.idle_seconds = 2, 1.5, 1.5
        if args.loop == "uvloop":
            found = subprocess.run([args.python, "-c", "import uvloop"], capture_output=True)
            if found.returncode != 0:
                raise SystemExit(f"overhead: --loop uvloop: {args.python} has no uvloop")
        drive(args)


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    """asyncio.run, or uvloop.run."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run
    return asyncio.run


if __name__ == "__main__":
    main()
