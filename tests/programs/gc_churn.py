# expect: gc remember_requests
# seconds: 6
"""A service that keeps a large in-memory index and remembers its recent requests.

Each request and its response refer to each other (a reference cycle), so they are freed only
by the garbage collector; they stay remembered long enough to reach the oldest generation, so
full collections come often, and each one walks the whole index: the loop stalls for tens of
milliseconds at a time. Run it with `python gc_churn.py`.
"""

import asyncio
import collections
import itertools

INDEX_SIZE = 200_000
RECENT = collections.deque(maxlen=50_000)


def build_index():
    return {i: {"id": i, "tags": [i % 7, i % 11]} for i in range(INDEX_SIZE)}


def remember_requests(first, count):
    for i in range(first, first + count):
        request = {"id": i, "path": "/items", "headers": {"n": i}}
        request["response"] = {"request": request, "status": 200}
        RECENT.append(request)


async def serve():
    counter = itertools.count(step=2000)
    while True:
        remember_requests(next(counter), 2000)
        await asyncio.sleep(0.005)


async def heartbeat():
    while True:
        await asyncio.sleep(0.01)


async def main():
    await asyncio.gather(serve(), heartbeat())


if __name__ == "__main__":
    INDEX = build_index()
    asyncio.run(main())
