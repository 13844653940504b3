# expect: blocking fetch_rate
"""A handler that calls another service with a synchronous HTTP client (urllib)."""

import asyncio
import http.server
import threading
import time
import urllib.request


class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(0.04)  # the other service takes its time (in its own thread)
        body = b"1.0842"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def start_rates_service() -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def fetch_rate(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/rate/EURUSD", timeout=5) as r:
        return float(r.read())


async def convert(port: int, amount: float) -> float:
    await asyncio.sleep(0.002)
    return amount * fetch_rate(port)


async def main() -> None:
    port = start_rates_service()
    while True:
        await asyncio.gather(*(convert(port, float(i)) for i in range(3)))
        await asyncio.sleep(0.02)


asyncio.run(main())
