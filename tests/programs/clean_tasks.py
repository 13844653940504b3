# expect: clean
# seconds: 8
"""The twin of leak_tasks.py: each connection stops its heartbeat watcher when it ends."""

import asyncio
import random


async def watch_connection(conn_id: int) -> None:
    while True:
        await asyncio.sleep(30)  # heartbeat
        print("still watching", conn_id)


async def handle_connection(conn_id: int) -> None:
    watcher = asyncio.create_task(watch_connection(conn_id))
    try:
        await asyncio.sleep(random.uniform(0.05, 0.15))  # serve the connection
    finally:
        watcher.cancel()


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
