# expect: clean
"""The twin of blocking_cpu, blocking_http and blocking_sleep, done right: CPU work and the
sync HTTP client run in threads, waits are asyncio.sleep."""

import asyncio
import http.server
import itertools
import math
import threading
import time
import urllib.request


class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(0.04)
        body = b"1.0842"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def price_portfolio(positions: int) -> float:
    total = 0.0
    for i in range(positions):
        total += math.sqrt(i) * math.log1p(i)
    return total


def fetch_rate(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/rate/EURUSD", timeout=5) as r:
        return float(r.read())


async def handle(port: int, request_id: int) -> float:
    await asyncio.sleep(0.05)  # the printer, waited for without blocking
    rate = await asyncio.to_thread(fetch_rate, port)
    return rate * await asyncio.to_thread(price_portfolio, 20_000)


async def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    ids = itertools.count()
    while True:
        await asyncio.gather(*(handle(port, next(ids)) for _ in range(4)))
        await asyncio.sleep(0.02)


asyncio.run(main())
