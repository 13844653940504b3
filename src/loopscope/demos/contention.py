"""Contention: a lock held across a slow await, and a connection pool that is too small.

``quote_price`` refreshes the exchange rates (a 100 ms call) while holding ``rates_lock``,
so quotes are served one at a time, ten a second, and every other quote waits in line.
``list_orders`` takes one of 2 database connections (a Semaphore) for a 50 ms query while
two dozen clients ask for orders.

Fixed: the rates are fetched outside the lock, which only guards the update (no await inside);
the pool has as many connections as there are concurrent requests.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from loopscope.demos.base import Damage, add_damage
from loopscope.demos.catalog import SYMBOLS

RATES_SECONDS = 0.1
QUERY_SECONDS = 0.05


async def fetch_rates() -> dict[str, float]:
    await asyncio.sleep(RATES_SECONDS)  # the rates service
    return {symbol: 1.0 + n / 10 for n, symbol in enumerate(SYMBOLS)}


async def run_query() -> list[int]:
    await asyncio.sleep(QUERY_SECONDS)  # the database
    return list(range(10))


class Quotes:
    def __init__(self, pool_size: int) -> None:
        self.rates: dict[str, float] = {}
        self.rates_lock = asyncio.Lock()
        self.pool = asyncio.Semaphore(pool_size)
        self.longest_wait = 0.0

    async def quote_price(self, symbol: str) -> float:
        asked = time.monotonic()
        async with self.rates_lock:
            self._waited(asked)
            self.rates = await fetch_rates()  # the lock is held for the whole call
            return self.rates[symbol]

    async def quote_price_fixed(self, symbol: str) -> float:
        rates = await fetch_rates()
        async with self.rates_lock:  # only the update, no await inside
            self.rates.update(rates)
            return self.rates[symbol]

    async def list_orders(self) -> list[int]:
        asked = time.monotonic()
        async with self.pool:
            self._waited(asked)
            return await run_query()

    def _waited(self, since: float) -> None:
        self.longest_wait = max(self.longest_wait, time.monotonic() - since)

    def damage(self) -> Damage:
        ms = self.longest_wait * 1000
        if ms < 50:
            return Damage(
                f"no queueing: the longest wait for the lock or the pool was {ms:.0f} ms", 0
            )
        return Damage(f"QUEUEING: a request waited {ms:.0f} ms for the lock or the pool", ms)


def install(app: web.Application, fixed: bool) -> None:
    quotes = Quotes(pool_size=64 if fixed else 2)
    quote = quotes.quote_price_fixed if fixed else quotes.quote_price

    async def quote_handler(request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if symbol not in SYMBOLS:
            raise web.HTTPNotFound()
        return web.json_response({"symbol": symbol, "price": await quote(symbol)})

    async def orders(request: web.Request) -> web.Response:
        return web.json_response({"orders": await quotes.list_orders()})

    app.router.add_get("/quote/{symbol}", quote_handler)
    app.router.add_get("/orders", orders)
    add_damage(app, quotes.damage)
