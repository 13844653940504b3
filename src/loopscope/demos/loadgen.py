"""Load for the demo service: concurrent keep-alive clients over loopback, bounded in time
and count.

Most clients browse items, fill carts and submit jobs with a short think time; a few play a
dashboard that asks for ``/report`` twice a second, and one reloads ``/config`` now and then.
Stops after ``--duration`` seconds or ``--max-requests`` requests, or when the service is gone.

Standard library only; started by the demo service as ``python loadgen.py --port PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str
) -> int:
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: demo\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(
        int(line.partition(":")[2])
        for line in lines[1:]
        if line.partition(":")[0].strip().lower() == "content-length"
    )
    await reader.readexactly(length)
    return status


def next_request(role: str) -> tuple[str, str, float]:
    """(method, path, think time) for a client playing ``role``."""
    if role == "dashboard":
        return "GET", "/report", random.uniform(0.4, 0.6)
    if role == "admin":
        return "GET", "/config", random.uniform(1.5, 2.5)
    pick = random.random()
    think = random.uniform(0.01, 0.05)
    if pick < 0.6:
        return "GET", f"/items/{random.randint(1, 500)}", think
    if pick < 0.8:
        return "POST", f"/cart/SKU-{random.randint(0, 20):03d}", think
    return "POST", "/jobs", think


async def client(role: str, port: int, deadline: float, budget: list[int], stats: Stats) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats.errors += 1
        return
    try:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            method, path, think = next_request(role)
            started = time.monotonic()
            status = await request(reader, writer, method, path)
            stats.requests += 1
            stats.latencies.append(time.monotonic() - started)
            if status != 200:
                stats.errors += 1
            await asyncio.sleep(think)
    except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
        stats.errors += 1  # the service went away: this client is done
    finally:
        writer.close()


async def main(port: int, clients: int, duration: float, max_requests: int) -> None:
    stats = Stats()
    deadline = time.monotonic() + duration
    budget = [max_requests]
    roles = ["admin"] + ["dashboard"] * max(1, clients // 8)
    roles += ["shopper"] * max(0, clients - len(roles))
    await asyncio.gather(*(client(role, port, deadline, budget, stats) for role in roles))
    latencies = sorted(stats.latencies) or [0.0]
    print(
        f"load generator: {stats.requests} requests, {stats.errors} errors, "
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms",
        flush=True,
    )


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load for the loopscope demo service.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--max-requests", type=int, default=500_000)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):  # stopped along with the service
        asyncio.run(main(args.port, args.clients, args.duration, args.max_requests))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
