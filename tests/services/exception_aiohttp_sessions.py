# expect: exception fetch_quote
# also: blocking
"""A quote poller on anyio task groups and the aiohttp client that creates a `ClientSession` for
every request and never closes it: each one leaves an open connector behind, a new connection
per request, and an "Unclosed client session" error through the loop's exception handler.

Reported in public: https://github.com/aio-libs/aiohttp/issues/4342 (a session created per
request in a loop, "Unclosed client session").
Run: python exception_aiohttp_sessions.py
"""

import time

import _load
import aiohttp
import anyio

QUOTES_PORT = _load.upstream(0.01, b'{"price": 101.5}')
SYMBOLS = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"]
MAX_SECONDS = 120.0
MAX_REQUESTS = 100_000


async def fetch_quote(symbol: str) -> float:
    session = aiohttp.ClientSession()
    async with session.get(f"http://127.0.0.1:{QUOTES_PORT}/quotes/{symbol}") as response:
        return float((await response.json())["price"])


async def poll(symbol: str, deadline: float, done: list[int]) -> None:
    while time.monotonic() < deadline and done[0] < MAX_REQUESTS:
        await fetch_quote(symbol)
        done[0] += 1
        await anyio.sleep(0.02)


async def main() -> None:
    deadline = time.monotonic() + MAX_SECONDS
    done = [0]
    async with anyio.create_task_group() as group:
        for symbol in SYMBOLS:
            for _ in range(2):
                group.start_soon(poll, symbol, deadline, done)


if __name__ == "__main__":
    anyio.run(main)
