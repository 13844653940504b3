# expect: duplicate fetch_price
# seconds: 8
# A quote service: every request for a symbol calls the upstream price API itself. Requests for
# the few popular symbols arrive faster than the API answers, so many identical
# `fetch_price(symbol)` calls are in flight at once, each paying the full upstream latency.
# Twin: clean_price_singleflight.py.
import asyncio
import random

SYMBOLS = ("ACME", "GLOBEX", "INITECH")
UPSTREAM_LATENCY = 0.25  # the price API's answer time, seconds


async def fetch_price(symbol: str) -> float:
    """Asks the upstream price API (simulated: it answers after UPSTREAM_LATENCY)."""
    await asyncio.sleep(UPSTREAM_LATENCY)
    return 100.0 + (sum(map(ord, symbol)) % 50)


async def handle_quote(request_id: int, symbol: str) -> str:
    price = await fetch_price(symbol)  # no cache: every request asks upstream
    return f"{request_id} {symbol} {price:.2f}"


async def main() -> None:
    served = 0
    pending: set[asyncio.Task[str]] = set()
    request_id = 0
    while True:
        for _ in range(6):  # about 120 requests a second
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
