# expect: clean
# A scoreboard that records every player's points: the same call, record("ann", 10), arrives
# many times at once, but each one appends a score. Calls that change shared state through a
# method (append, setdefault) are updates, not work a cache could share.
import asyncio
import random

SCORES: dict[str, list[int]] = {}
PLAYERS = ("ann", "bob", "cyd")


async def record(name: str, points: int) -> None:
    await asyncio.sleep(random.uniform(0.05, 0.2))  # validate the game's result
    SCORES.setdefault(name, []).append(points)


async def play(name: str) -> None:
    await record(name, 10)


async def main() -> None:
    pending: set[asyncio.Task[None]] = set()
    while True:
        for _ in range(8):  # about 160 results a second, for three players
            task = asyncio.create_task(play(random.choice(PLAYERS)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
