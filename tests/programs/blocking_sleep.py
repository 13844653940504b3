# expect: blocking wait_for_printer
"""A handler that waits with time.sleep instead of asyncio.sleep."""

import asyncio
import time


def wait_for_printer() -> None:
    time.sleep(0.05)


async def print_label(n: int) -> None:
    await asyncio.sleep(0.001)
    wait_for_printer()


async def main() -> None:
    while True:
        await asyncio.gather(*(print_label(i) for i in range(3)))
        await asyncio.sleep(0.03)


asyncio.run(main())
