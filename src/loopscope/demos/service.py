"""A small shop service under load, with handlers that block the event loop.

An asyncio server speaking just enough HTTP/1.1 on 127.0.0.1 (an ephemeral port). Most handlers
behave: they await a simulated database, update a cart under a Lock, or hand jobs to workers
through a Queue. Two do not: ``/report`` renders a report with ~50 ms of CPU work on the loop
thread, and ``/config`` reads its configuration with a blocking ``time.sleep``. Under load every
other request waits behind them.

The service starts its own load generator (``loadgen.py``, a separate process talking to it over
loopback) and ends when the load generator is done, or on SIGINT/SIGTERM.

Standard library only, so it runs on any interpreter:

    python -m loopscope.demos.service [--duration S] [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import sys
import time
from pathlib import Path

REPORT_ROUNDS = 200  # ~50 ms of CPU on a current machine

# (order id, sku, quantity, unit price)
_orders = [(i, f"SKU-{i % 97:03d}", 1 + i % 5, round(3.5 + (i % 40) * 1.25, 2)) for i in range(400)]


def render_report() -> bytes:
    """The sales report, computed from scratch on every request, on the loop thread."""
    totals: dict[str, float] = {}
    digest = hashlib.sha256()
    for round_ in range(REPORT_ROUNDS):
        for order_id, sku, qty, price in _orders:
            amount = qty * price * (1 + round_ % 3 / 100)
            totals[sku] = totals.get(sku, 0.0) + amount
            digest.update(f"{order_id}:{amount:.4f}".encode())
    top = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:5]
    return json.dumps({"top": top, "checksum": digest.hexdigest()}).encode()


def load_config() -> bytes:
    """Reads the configuration "from a slow disk", synchronously."""
    time.sleep(0.03)
    return json.dumps({"currency": "EUR", "tax": 0.2}).encode()


class Shop:
    def __init__(self, workers: int = 4) -> None:
        self.cart: dict[str, int] = {}
        self.cart_lock = asyncio.Lock()
        self.jobs: asyncio.Queue[dict[str, int]] = asyncio.Queue(maxsize=64)
        self.done_jobs = 0
        self.requests = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._workers = [
            asyncio.create_task(self._worker(), name=f"job-worker-{n}") for n in range(workers)
        ]

    async def fetch_item(self, item: int) -> bytes:
        await asyncio.sleep(random.uniform(0.002, 0.01))  # the database round trip
        return json.dumps({"item": item, "stock": item * 7 % 13}).encode()

    async def add_to_cart(self, sku: str) -> bytes:
        async with self.cart_lock:
            count = self.cart.get(sku, 0)
            await asyncio.sleep(0.001)  # write-through to the session store
            self.cart[sku] = count + 1
            return json.dumps({"sku": sku, "count": count + 1}).encode()

    async def submit_job(self, size: int) -> bytes:
        await self.jobs.put({"size": size})
        return json.dumps({"queued": self.jobs.qsize()}).encode()

    async def _worker(self) -> None:
        while True:
            job = await self.jobs.get()
            await asyncio.sleep(0.002 * job["size"])
            self.done_jobs += 1
            self.jobs.task_done()

    async def handle(self, method: str, path: str) -> tuple[int, bytes]:
        self.requests += 1
        if path == "/report":
            return 200, render_report()
        if path == "/config":
            return 200, load_config()
        if path.startswith("/items/"):
            return 200, await self.fetch_item(int(path.rsplit("/", 1)[1] or 0))
        if path.startswith("/cart/") and method == "POST":
            return 200, await self.add_to_cart(path.rsplit("/", 1)[1])
        if path == "/jobs" and method == "POST":
            return 200, await self.submit_job(random.randint(1, 5))
        if path == "/health":
            return 200, b'{"ok": true}'
        return 404, b'{"error": "not found"}'

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                try:
                    status, body = await self.handle(method, path)
                except ValueError:
                    status, body = 400, b'{"error": "bad request"}'
                reason = b"OK" if status == 200 else b"Error"
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n" % (status, reason)
                    + b"Content-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            ValueError,
            asyncio.LimitOverrunError,
        ):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: end the connection quietly
        finally:
            self._connections.discard(task)
            writer.close()

    async def close(self) -> None:
        if self._connections:  # the clients are gone, so these end on their own
            await asyncio.wait(set(self._connections), timeout=1.0)
        for connection in set(self._connections):
            connection.cancel()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


async def main(duration: float, clients: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    shop = Shop()
    server = await asyncio.start_server(shop.serve_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"demo service listening on 127.0.0.1:{port}", flush=True)

    loadgen = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("loadgen.py")),
        "--port",
        str(port),
        "--clients",
        str(clients),
        "--duration",
        str(duration),
    )
    load_done = asyncio.ensure_future(loadgen.wait())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load_done, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not load_done.done():
        loadgen.terminate()
        await load_done
    stopped.cancel()

    server.close()
    await shop.close()
    await server.wait_closed()
    print(f"demo service served {shop.requests} requests, ran {shop.done_jobs} jobs", flush=True)
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopscope.demos.service",
        description="A demo asyncio service under load whose handlers block the loop.",
    )
    parser.add_argument(
        "--duration", type=float, default=120.0, help="seconds of load (default 120)"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    args = parser.parse_args(argv)
    return asyncio.run(main(args.duration, args.clients))


if __name__ == "__main__":
    sys.exit(cli())
