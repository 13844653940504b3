# expect: clean
# The twin of race_watched.py: the same watched counter, but `record` awaits first and then
# reads and writes the count with no await in between, so watch() sees no stale write.
import asyncio
import random

try:
    import loopscope
except ImportError:  # run without loopscope installed: nothing is watched
    loopscope = None


class Counter:
    def __init__(self) -> None:
        self.hits = 0

    def current(self) -> int:
        return self.hits

    async def record(self) -> None:
        await asyncio.sleep(random.uniform(0.001, 0.01))
        self.hits = self.current() + 1


async def visitor(counter: Counter) -> None:
    while True:
        await counter.record()
        await asyncio.sleep(random.uniform(0.0, 0.01))


async def main() -> None:
    counter = Counter()
    if loopscope is not None:
        counter = loopscope.watch(counter, "hits")
    tasks = [asyncio.create_task(visitor(counter)) for _ in range(6)]
    await asyncio.sleep(300)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
