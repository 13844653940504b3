# expect: clean
# A game server that deals hands from one shared random generator: every request calls
# deal(rng) with the same generator, and each call advances it, so the calls look identical
# but each deals a different hand. Nothing is computed twice.
import asyncio
import random


async def deal(rng: random.Random) -> list[int]:
    await asyncio.sleep(rng.uniform(0.05, 0.2))  # the shuffle service
    return rng.sample(range(52), 5)


async def handle(rng: random.Random) -> str:
    hand = await deal(rng)
    return " ".join(map(str, hand))


async def main() -> None:
    rng = random.Random(7)
    pending: set[asyncio.Task[str]] = set()
    while True:
        for _ in range(8):  # about 160 requests a second
            task = asyncio.create_task(handle(rng))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
