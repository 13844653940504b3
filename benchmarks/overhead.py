"""The agent's overhead on a loaded asyncio program: throughput with and without it.

Two workloads, each run in a fresh process per measurement:

- ``http``: an HTTP-like request/response loop over loopback, a server and ``--clients``
  keep-alive clients on one event loop (the loop is saturated: every cycle the agent costs shows);
- ``churn``: task churn, batches of short tasks created and awaited.

Each workload is measured without the agent (A) and with it (B), installed the real way (the
launcher ``loopscope run`` uses, with a client connected and reading every event), alternating
A/B then B/A over several rounds so that drift in the machine's speed falls on both alike.

    .venv/bin/python benchmarks/overhead.py [--rounds 5] [--seconds 3]
    .venv/bin/python benchmarks/overhead.py --workloads churn --collectors all \\
        --collectors=-lifecycle

``--collectors`` measures several agent variants (each a ``$LOOPSCOPE_COLLECTORS`` value) side by
side with the plain run, rotating their order over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# -- The workloads (run in the measured process) ----------------------------------------------

ROWS = 100  # ~100 us of work per request: the server, not the client, is the bottleneck
REQUEST = b"GET /items/42 HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n"


def _render(item: int) -> bytes:
    """A handler's modest work: a few dozen microseconds of building a response body."""
    rows = [{"id": item * 10 + i, "name": f"item-{i}", "price": i * 1.5} for i in range(ROWS)]
    return json.dumps({"item": item, "rows": rows, "total": sum(r["price"] for r in rows)}).encode()


async def _http_server(seconds: float, warmup: float, clients: int) -> int:
    """The measured process: an HTTP-like server under load from a separate client process.

    The clients run in their own (never instrumented) process so that only the server's loop is
    measured, and so that the server, doing real work per request, is what limits throughput.
    """

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                body = _render(int(path.rsplit(b"/", 1)[1]))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    load = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--workload",
        "http-clients",
        "--port",
        str(port),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--clients",
        str(clients),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await load.communicate()
    server.close()
    return int(json.loads(out)["ops"])


async def _http_clients(port: int, seconds: float, warmup: float, clients: int) -> int:
    counted = [0]
    measuring = asyncio.Event()
    done = asyncio.Event()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not done.is_set():
            writer.write(REQUEST)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.rsplit(b"Content-Length: ", 1)[1].split(b"\r")[0]))
            if measuring.is_set():
                counted[0] += 1
        writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(warmup)
    measuring.set()
    await asyncio.sleep(seconds)
    measuring.clear()
    done.set()
    await asyncio.gather(*tasks)
    return counted[0]


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


def workload_main(args: argparse.Namespace) -> None:
    if args.workload == "http":
        work = _http_server(args.seconds, args.warmup, args.clients)
    elif args.workload == "http-clients":
        work = _http_clients(args.port, args.seconds, args.warmup, args.clients)
    else:
        ops, cpu = asyncio.run(_churn(args.seconds, args.warmup))
        print(json.dumps({"ops": ops, "seconds": args.seconds, "cpu": cpu}), flush=True)
        return
    print(json.dumps({"ops": asyncio.run(work), "seconds": args.seconds}), flush=True)


# -- The driver ---------------------------------------------------------------------------


def _drain(socket_path: Path, alive: object, counts: dict[str, int]) -> threading.Thread:
    from loopscope.sources.agent import AgentSource

    source = AgentSource(socket_path, alive=alive)  # type: ignore[arg-type]

    def read() -> None:
        for event in source.events():
            counts[event.kind] = counts.get(event.kind, 0) + 1

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def measure(
    name: str, collectors: str | None, args: argparse.Namespace
) -> tuple[float, float | None, int]:
    """(operations per second, operations per CPU second of the process where the workload
    reports it, events the client received) of one fresh process: without the agent if
    ``collectors`` is None, else with it running those collectors."""
    with_agent = collectors is not None
    from loopscope.runner import launcher_path

    workload = [
        __file__,
        "--workload",
        name,
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
        "--clients",
        str(args.clients),
    ]
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="loopscope-bench-") as tmp:
        socket_path = Path(tmp) / "agent.sock"
        env = dict(os.environ, LOOPSCOPE_SOCKET=str(socket_path))
        env.pop("LOOPSCOPE_COLLECTORS", None)
        if collectors is not None and collectors != "all":
            env["LOOPSCOPE_COLLECTORS"] = collectors
        argv = (
            [args.python, str(launcher_path()), *workload]
            if with_agent
            else [
                args.python,
                *workload,
            ]
        )
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)
        reader = _drain(socket_path, lambda: process.poll() is None, counts) if with_agent else None
        out, _ = process.communicate(timeout=args.seconds + args.warmup + 60)
        if reader is not None:
            reader.join(10)
    if process.returncode != 0:
        raise SystemExit(f"the {name} workload failed (exit code {process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    if with_agent and counts.get("hello", 0) != 1:
        raise SystemExit("the agent never said hello: the B runs did not measure the agent")
    cpu = result.get("cpu")
    per_cpu = result["ops"] / cpu if cpu else None
    return result["ops"] / result["seconds"], per_cpu, sum(counts.values())


def drive(args: argparse.Namespace) -> None:
    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"Python {version}, {os.cpu_count()} CPUs; {args.rounds} rounds x {args.seconds:g} s "
        f"(after {args.warmup:g} s warm-up); http with {args.clients} clients"
    )
    # None: without the agent; otherwise the agent with these collectors ($LOOPSCOPE_COLLECTORS).
    variants: list[str | None] = [None, *args.collectors]
    results: dict[tuple[str, str | None], list[float]] = {}
    per_cpu: dict[tuple[str, str | None], list[float]] = {}
    for round_ in range(args.rounds):
        order = variants if round_ % 2 == 0 else variants[::-1]
        for name in args.workloads:
            cells = []
            for collectors in order:
                rate, rate_cpu, events = measure(name, collectors, args)
                results.setdefault((name, collectors), []).append(rate)
                if rate_cpu is not None:
                    per_cpu.setdefault((name, collectors), []).append(rate_cpu)
                cells.append(
                    f"{_label(collectors, args)} {rate:>10,.0f}/s"
                    + (f" ({events} events)" if collectors is not None else "")
                )
            print(f"round {round_ + 1} {name:<6} " + "   ".join(cells), flush=True)
    print()
    width = max(len(_label(c, args)) for c in variants) + len(" (median)")
    print(
        f"{'workload':<8} {'plain (median)':>16} {'agent':<{width}} {'':>10} {'ratio':>7} "
        f"{'loss':>7}   {'loss per CPU s':>14}"
    )
    for name in args.workloads:
        plain = statistics.median(results[(name, None)])
        plain_cpu = per_cpu.get((name, None))
        for collectors in args.collectors:
            agent = statistics.median(results[(name, collectors)])
            ratio = agent / plain
            loss = (1 - ratio) * 100
            label = f"{_label(collectors, args)} (median)"
            # Operations per CPU second of the whole process (all its threads): not moved by
            # other processes taking the cores, as throughput is on a shared machine.
            agent_cpu = per_cpu.get((name, collectors))
            cpu_loss = (
                f"{(1 - statistics.median(agent_cpu) / statistics.median(plain_cpu)) * 100:>13.1f}%"
                if plain_cpu and agent_cpu
                else f"{'-':>14}"
            )
            print(
                f"{name:<8} {plain:>14,.0f}/s {label:<{width}} {agent:>8,.0f}/s "
                f"{ratio:>7.3f} {loss:>6.1f}%   {cpu_loss}"
            )


def _label(collectors: str | None, args: argparse.Namespace) -> str:
    if collectors is None:
        return "plain"
    if args.collectors == ["all"]:
        return "agent"
    return f"agent[{collectors}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured")
    parser.add_argument(
        "--workloads", nargs="+", default=["http", "churn"], choices=["http", "churn"]
    )
    parser.add_argument(
        "--collectors",
        action="append",
        metavar="SPEC",
        help="an agent variant measured side by side with the others (repeatable), a "
        "$LOOPSCOPE_COLLECTORS value: all (the default), none, lag,blocks, -lifecycle, ... "
        "(write --collectors=-lifecycle for a value starting with -)",
    )
    parser.add_argument(
        "--workload", choices=["http", "http-clients", "churn"], help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.collectors = args.collectors or ["all"]
    if args.workload:
        workload_main(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
