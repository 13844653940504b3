# expect: executor fetch_profile
"""A service that loads user profiles with a blocking client, through asyncio.to_thread.

Forty requests are in flight at any time, and each load blocks a thread for 50 ms; the
default executor has min(32, CPUs + 4) threads, so most loads wait in its queue far longer
than they run. Run it with `python executor_backlog.py`.
"""

import asyncio
import time


def load_profile_blocking(user_id):
    time.sleep(0.05)  # a blocking database client
    return {"id": user_id, "name": f"user-{user_id}"}


async def fetch_profile(user_id):
    return await asyncio.to_thread(load_profile_blocking, user_id)


async def client(first):
    user_id = first
    while True:
        await fetch_profile(user_id)
        user_id += 1
        await asyncio.sleep(0.005)


async def main():
    await asyncio.gather(*(client(i * 1000) for i in range(40)))


if __name__ == "__main__":
    asyncio.run(main())
