# expect: clean
"""The twin of exception_unretrieved.py: the metric tasks are kept, and a done callback
retrieves and counts their failures."""

import asyncio

pending: set[asyncio.Task[None]] = set()
failures = 0


async def send_metric(name: str, value: int) -> None:
    await asyncio.sleep(0.001)  # the network call
    if value % 5 == 0:
        raise ConnectionError(f"metrics backend refused {name}={value}")


def metric_sent(task: asyncio.Task[None]) -> None:
    global failures
    pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        failures += 1  # a real program would log it


async def handle_request(i: int) -> None:
    task = asyncio.create_task(send_metric("latency", i))
    pending.add(task)
    task.add_done_callback(metric_sent)
    await asyncio.sleep(0.005)


async def main() -> None:
    i = 0
    while True:
        i += 1
        await handle_request(i)
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main())
