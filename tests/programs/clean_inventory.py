# expect: clean
# The twin of race_inventory.py: the same orders, but the stock is updated atomically once the
# warehouse has answered (no await between the read and the write).
import asyncio
import random

STOCK = {"apples": 10**9, "pears": 10**9}


async def ask_warehouse(item: str) -> None:
    await asyncio.sleep(random.uniform(0.005, 0.02))


async def reserve(item: str) -> None:
    await ask_warehouse(item)
    STOCK[item] -= 1


async def orders(item: str) -> None:
    while True:
        await reserve(item)
        await asyncio.sleep(random.uniform(0.0, 0.01))


async def main() -> None:
    tasks = [asyncio.create_task(orders(item)) for item in ("apples", "pears") for _ in range(4)]
    await asyncio.sleep(300)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
