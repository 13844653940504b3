# expect: clean
# seconds: 6
"""The twin of gc_churn.py: the same index and the same requests remembered, done right.

The index is frozen once built (`gc.freeze()`), so collections no longer walk it, and request
records are tuples of plain values, which the collector stops tracking: full collections are
rare and short. Run it with `python clean_gc.py`.
"""

import asyncio
import collections
import gc
import itertools

INDEX_SIZE = 200_000
RECENT = collections.deque(maxlen=50_000)


def build_index():
    return {i: {"id": i, "tags": [i % 7, i % 11]} for i in range(INDEX_SIZE)}


def remember_requests(first, count):
    for i in range(first, first + count):
        RECENT.append((i, "/items", i, i))


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
    gc.freeze()
    asyncio.run(main())
