"""A race: the stock is read, the order is saved (an ``await``), then the stock is written.

Two buyers of the same item read the same stock, both save their order, and both write
``stock - 1``: one sale is lost from the stock, so the shop sells more than it has. Nothing
fails and no error is logged; only the numbers are wrong, and only under concurrent load.

Fixed: check and take the stock with no ``await`` in between (an atomic update on the loop),
then save the order. (``async with lock:`` around read, await and write also works, but holds
every other buyer of every item for the whole database round trip.)
"""

from __future__ import annotations

import asyncio
import random

from aiohttp import web

from loopscope.demos.base import Damage, add_damage
from loopscope.demos.catalog import ITEMS

INITIAL_STOCK = 1_000_000


async def save_order(item: str, quantity: int) -> None:
    """The order row goes to the database: a round trip of a few tens of milliseconds."""
    await asyncio.sleep(random.uniform(0.02, 0.04))


class Inventory:
    def __init__(self) -> None:
        self.stock = dict.fromkeys(ITEMS, INITIAL_STOCK)
        self.sold = 0  # units sold, counted where each sale succeeds

    async def reserve_stock(self, item: str, quantity: int) -> bool:
        stock = self.stock[item]
        if stock < quantity:
            return False
        await save_order(item, quantity)
        self.stock[item] = stock - quantity  # written from a read taken before the await
        self.sold += quantity
        return True

    async def reserve_stock_atomically(self, item: str, quantity: int) -> bool:
        if self.stock[item] < quantity:
            return False
        self.stock[item] -= quantity  # checked and taken with no await in between
        self.sold += quantity
        await save_order(item, quantity)
        return True

    def damage(self) -> Damage:
        taken = INITIAL_STOCK * len(self.stock) - sum(self.stock.values())
        lost = self.sold - taken
        if lost == 0:
            return Damage(f"stock right: {self.sold} sold, stock fell by {taken}", 0)
        return Damage(
            f"OVERSOLD {lost} units: {self.sold} sold, but stock fell by only {taken} "
            f"({lost} lost updates)",
            lost,
        )


def install(app: web.Application, fixed: bool) -> None:
    inventory = Inventory()
    reserve = inventory.reserve_stock_atomically if fixed else inventory.reserve_stock

    async def buy(request: web.Request) -> web.Response:
        item = request.match_info["item"]
        if item not in inventory.stock:
            raise web.HTTPNotFound()
        if not await reserve(item, 1):
            return web.json_response({"error": "sold out"}, status=409)
        return web.json_response({"item": item, "left": inventory.stock[item]})

    app.router.add_post("/buy/{item}", buy)
    add_damage(app, inventory.damage)
