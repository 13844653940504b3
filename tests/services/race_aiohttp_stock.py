# expect: race buy
"""An aiohttp shop keeping its stock in a module-level dict: `buy(item)` tests the count left
with `.get()`, awaits the warehouse, then takes one off. Concurrent orders for the last items
all pass the test and the count goes below zero: the item is sold twice.
Run: python race_aiohttp_stock.py
"""

import asyncio
import random

import _load
from aiohttp import web

STOCK: dict[str, int] = {}


async def reserve_at_warehouse(item: str) -> None:
    await asyncio.sleep(random.uniform(0.005, 0.02))


async def buy(item: str) -> bool:
    if STOCK.get(item, 0) <= 0:
        return False
    await reserve_at_warehouse(item)
    STOCK[item] -= 1
    return True


async def order(request: web.Request) -> web.Response:
    item = request.match_info["item"]
    STOCK.setdefault(item, 2)  # a new item arrives with two in stock
    if not await buy(item):
        return web.json_response({"item": item, "status": "sold out"}, status=409)
    return web.json_response({"item": item, "status": "ordered"})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/items/{item}/order", order)
    return app


if __name__ == "__main__":
    sock = _load.listen()
    plan = {"method": "POST", "path": "/items/lamp-{g}/order", "group": 5, "concurrency": 5}
    _load.start(sock.getsockname()[1], [{**plan, "pause": 0.01}])
    web.run_app(make_app(), sock=sock, print=None)
