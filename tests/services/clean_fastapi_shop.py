# expect: clean
"""A well-behaved FastAPI shop: many identical product GETs (the same popular product, read from
an async store) and order-creating POSTs, concurrently. Identical requests are what a web service
receives, and each POST creates a new order: neither is repeated work, and nothing here races or
blocks.
Run: python clean_fastapi_shop.py
"""

import asyncio
import itertools

import _load
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI()
PRODUCTS = {pid: {"id": pid, "name": f"product {pid}", "price": 10.0 + pid} for pid in range(20)}
ORDERS: dict[int, dict[str, object]] = {}
order_ids = itertools.count(1)


class OrderIn(BaseModel):
    pid: int
    quantity: int = 1


async def read_product(pid: int) -> dict[str, object] | None:
    await asyncio.sleep(0.005)  # the product store
    return PRODUCTS.get(pid)


async def store_order(order: dict[str, object]) -> None:
    await asyncio.sleep(0.01)  # the order database


@app.get("/products/{pid}")
async def product(pid: int) -> dict[str, object]:
    found = await read_product(pid)
    if found is None:
        raise HTTPException(404, "no such product")
    return found


@app.post("/orders")
async def order(body: OrderIn) -> dict[str, object]:
    oid = next(order_ids)
    placed = {"id": oid, "pid": body.pid, "quantity": body.quantity}
    await store_order(placed)
    ORDERS[oid] = placed
    return placed


if __name__ == "__main__":
    sock = _load.listen()
    plan = [
        {"path": "/products/1", "concurrency": 12, "pause": 0.01},
        {"method": "POST", "path": "/orders", "body": {"pid": 1}, "concurrency": 12, "pause": 0.01},
    ]
    _load.start(sock.getsockname()[1], plan)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
