# expect: race reserve
# Orders reserve items from a module-level stock table: `reserve` reads the count left, awaits
# the warehouse, then stores the count it read minus one. Concurrent orders for the same item
# oversell it.
import asyncio
import random

STOCK = {"apples": 10**9, "pears": 10**9}


async def ask_warehouse(item: str) -> None:
    await asyncio.sleep(random.uniform(0.005, 0.02))


async def reserve(item: str) -> None:
    left = STOCK[item]
    await ask_warehouse(item)
    STOCK[item] = left - 1


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
