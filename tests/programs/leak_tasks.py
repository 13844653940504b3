# expect: leak watch_connection
# seconds: 8
"""A task leak: each connection starts a heartbeat watcher that nobody stops when the
connection ends, so the live tasks grow by one per connection."""

import asyncio
import random


async def watch_connection(conn_id: int) -> None:
    while True:
        await asyncio.sleep(30)  # heartbeat, for a connection long gone
        print("still watching", conn_id)


async def handle_connection(conn_id: int) -> None:
    asyncio.create_task(watch_connection(conn_id))  # noqa: RUF006 - the bug: never stopped
    await asyncio.sleep(random.uniform(0.05, 0.15))  # serve the connection


async def main() -> None:
    conn_id = 0
    handlers: set[asyncio.Task[None]] = set()
    while True:
        conn_id += 1
        task = asyncio.create_task(handle_connection(conn_id))
        handlers.add(task)
        task.add_done_callback(handlers.discard)
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main())
