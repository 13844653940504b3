# expect: clean
"""The twin of contention_lock.py: the slow fetch happens outside the lock, which only guards
the quick write to the cache."""

import asyncio
import random

lock = asyncio.Lock()
cache: dict[int, dict[str, int]] = {}


async def fetch_profile(user: int) -> dict[str, int]:
    await asyncio.sleep(0.05)  # a network call
    return {"user": user}


async def refresh_profile(user: int) -> None:
    profile = await fetch_profile(user)
    async with lock:
        cache[user] = profile


async def client(i: int) -> None:
    while True:
        await refresh_profile(i % 7)
        await asyncio.sleep(random.uniform(0.0, 0.01))


async def main() -> None:
    await asyncio.gather(*(client(i) for i in range(20)))


if __name__ == "__main__":
    asyncio.run(main())
