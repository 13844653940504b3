# expect: exception send_metric
"""Unretrieved task exceptions: each request sends a metric in a fire-and-forget task, and
when the metrics backend refuses, nobody ever sees the error."""

import asyncio


async def send_metric(name: str, value: int) -> None:
    await asyncio.sleep(0.001)  # the network call
    if value % 5 == 0:
        raise ConnectionError(f"metrics backend refused {name}={value}")


async def handle_request(i: int) -> None:
    asyncio.create_task(send_metric("latency", i))  # noqa: RUF006 - the bug: nobody awaits it
    await asyncio.sleep(0.005)


async def main() -> None:
    i = 0
    while True:
        i += 1
        await handle_request(i)
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main())
