# expect: clean
# seconds: 8
# A worker pool: eight identical workers share one job queue and loop forever. They all run
# `worker(jobs)` with the same argument, but each job they take is different work.
import asyncio
import itertools


async def process(job: int) -> int:
    await asyncio.sleep(0.02 + (job % 5) * 0.01)
    return job * 2


async def worker(jobs: asyncio.Queue[int]) -> None:
    while True:
        job = await jobs.get()
        try:
            await process(job)
        finally:
            jobs.task_done()


async def poll_forever() -> None:
    while True:
        await asyncio.sleep(0.1)


async def main() -> None:
    jobs: asyncio.Queue[int] = asyncio.Queue(maxsize=100)
    workers = [asyncio.create_task(worker(jobs)) for _ in range(8)]
    idle = [asyncio.create_task(poll_forever()) for _ in range(4)]  # long-lived and identical
    counter = itertools.count()
    try:
        while True:
            for _ in range(20):
                await jobs.put(next(counter))
            await asyncio.sleep(0.05)
    finally:
        for task in workers + idle:
            task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
