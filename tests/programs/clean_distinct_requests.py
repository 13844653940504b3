# expect: clean
# seconds: 8
# An order service under load: many requests in flight at once, all running the same handler
# and the same database call, but each for a different order. Nothing is computed twice.
import asyncio
import itertools
import random


async def load_order(order_id: int) -> dict[str, object]:
    """The database call (simulated: 50-300 ms)."""
    await asyncio.sleep(random.uniform(0.05, 0.3))
    return {"id": order_id, "total": order_id % 97}


async def handle_order(order_id: int) -> str:
    order = await load_order(order_id)
    return f"order {order['id']}: {order['total']}"


async def main() -> None:
    ids = itertools.count(1)
    pending: set[asyncio.Task[str]] = set()
    while True:
        for _ in range(8):  # about 160 requests a second
            task = asyncio.create_task(handle_order(next(ids)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
