# expect: blocking price_portfolio
"""A quote service whose handler prices a portfolio in pure Python on the loop thread."""

import asyncio
import math


def price_portfolio(positions: int) -> float:
    total = 0.0
    for i in range(positions):
        total += math.sqrt(i) * math.log1p(i)
    return total


async def handle(request_id: int) -> float:
    await asyncio.sleep(0.005)  # read the request
    return price_portfolio(120_000)


async def main() -> None:
    while True:
        await asyncio.gather(*(handle(i) for i in range(4)))
        await asyncio.sleep(0.02)


asyncio.run(main())
