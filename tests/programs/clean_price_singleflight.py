# expect: clean
# seconds: 8
# The quote service of duplicate_price_stampede.py, done right: concurrent requests for a
# symbol share one upstream call (single flight), and a price is reused for five seconds (a TTL
# cache).
import asyncio
import random
import time

SYMBOLS = ("ACME", "GLOBEX", "INITECH")
UPSTREAM_LATENCY = 0.25
TTL = 5.0

_in_flight: dict[str, asyncio.Future[float]] = {}
_cache: dict[str, tuple[float, float]] = {}  # symbol -> (time fetched, price)


async def fetch_price(symbol: str) -> float:
    """Asks the upstream price API (simulated: it answers after UPSTREAM_LATENCY)."""
    await asyncio.sleep(UPSTREAM_LATENCY)
    return 100.0 + (sum(map(ord, symbol)) % 50)


async def cached_price(symbol: str) -> float:
    hit = _cache.get(symbol)
    if hit is not None and time.monotonic() - hit[0] < TTL:
        return hit[1]
    future = _in_flight.get(symbol)
    if future is None:
        future = _in_flight[symbol] = asyncio.ensure_future(fetch_price(symbol))
        future.add_done_callback(lambda f: _store(symbol, f))
    return await asyncio.shield(future)


def _store(symbol: str, future: asyncio.Future[float]) -> None:
    del _in_flight[symbol]
    if not future.cancelled() and future.exception() is None:
        _cache[symbol] = (time.monotonic(), future.result())


async def handle_quote(request_id: int, symbol: str) -> str:
    price = await cached_price(symbol)
    return f"{request_id} {symbol} {price:.2f}"


async def main() -> None:
    served = 0
    pending: set[asyncio.Task[str]] = set()
    request_id = 0
    while True:
        for _ in range(6):
            request_id += 1
            task = asyncio.create_task(handle_quote(request_id, random.choice(SYMBOLS)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(0.05)
        served += 6
        if served % 1200 == 0:
            print(f"{served} requests", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
