# expect: contention refresh_profile
"""Lock contention: every request refreshes a cache entry under one lock, and awaits the slow
fetch while holding it, so the other requests queue behind the lock."""

import asyncio
import random

lock = asyncio.Lock()
cache: dict[int, dict[str, int]] = {}


async def fetch_profile(user: int) -> dict[str, int]:
    await asyncio.sleep(0.05)  # a network call
    return {"user": user}


async def refresh_profile(user: int) -> None:
    async with lock:
        cache[user] = await fetch_profile(user)


async def client(i: int) -> None:
    while True:
        await refresh_profile(i % 7)
        await asyncio.sleep(random.uniform(0.0, 0.01))


async def main() -> None:
    await asyncio.gather(*(client(i) for i in range(20)))


if __name__ == "__main__":
    asyncio.run(main())
