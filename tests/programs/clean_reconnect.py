# expect: clean
# The twin of race_reconnect.py: the same requests and expiring connection, but connecting holds
# the client's lock, and the check is made again once the lock is held.
import asyncio
import itertools
import random

opened = itertools.count(1)


async def connect() -> int:
    await asyncio.sleep(random.uniform(0.2, 0.4))
    return next(opened)


class Client:
    def __init__(self) -> None:
        self.conn: int | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> int:
        async with self._lock:
            if self.conn is None:
                self.conn = await connect()
            return self.conn

    async def expire(self) -> None:
        while True:
            await asyncio.sleep(random.uniform(0.1, 0.3))
            self.conn = None


async def requests(client: Client) -> None:
    while True:
        await client.connection()
        await asyncio.sleep(random.uniform(0.0, 0.01))


async def main() -> None:
    client = Client()
    tasks = [asyncio.create_task(client.expire())]
    tasks += [asyncio.create_task(requests(client)) for _ in range(8)]
    await asyncio.sleep(300)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
