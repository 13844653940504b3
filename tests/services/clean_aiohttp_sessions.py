# expect: clean
"""The twin of exception_aiohttp_sessions.py: the same poller, with one `ClientSession` for the
whole program, closed when it ends; its connections are reused.
Run: python clean_aiohttp_sessions.py
"""

import time

import _load
import aiohttp
import anyio

QUOTES_PORT = _load.upstream(0.01, b'{"price": 101.5}')
SYMBOLS = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"]
MAX_SECONDS = 120.0
MAX_REQUESTS = 100_000


async def fetch_quote(session: aiohttp.ClientSession, symbol: str) -> float:
    async with session.get(f"http://127.0.0.1:{QUOTES_PORT}/quotes/{symbol}") as response:
        return float((await response.json())["price"])


async def poll(session: aiohttp.ClientSession, symbol: str, deadline: float, done: list[int]):
    while time.monotonic() < deadline and done[0] < MAX_REQUESTS:
        await fetch_quote(session, symbol)
        done[0] += 1
        await anyio.sleep(0.02)


async def main() -> None:
    deadline = time.monotonic() + MAX_SECONDS
    done = [0]
    async with aiohttp.ClientSession() as session, anyio.create_task_group() as group:
        for symbol in SYMBOLS:
            for _ in range(2):
                group.start_soon(poll, session, symbol, deadline, done)


if __name__ == "__main__":
    anyio.run(main)
