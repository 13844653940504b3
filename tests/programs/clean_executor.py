# expect: clean
"""The twin of executor_backlog.py: the same loads, through an executor sized for them.

Forty requests are in flight and each load blocks a thread for 50 ms, so the program gives the
loop a default executor of 48 threads: no load waits for a thread. Run it with
`python clean_executor.py`.
"""

import asyncio
import concurrent.futures
import time

CONCURRENCY = 40


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
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENCY + 8)
    asyncio.get_running_loop().set_default_executor(pool)
    await asyncio.gather(*(client(i * 1000) for i in range(CONCURRENCY)))


if __name__ == "__main__":
    asyncio.run(main())
