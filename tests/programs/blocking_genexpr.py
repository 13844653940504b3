# expect: blocking build_leaderboard
# A leaderboard service that ranks players in a generator expression on the loop thread: the
# time is spent in build_leaderboard.<locals>.<genexpr>, and the finding names the function
# that contains it.
import asyncio
import math

PLAYERS = 400_000


def build_leaderboard() -> float:
    return max(math.log1p(i * 37 % 1000) * math.sqrt(i) for i in range(PLAYERS))


async def handle(request_id: int) -> float:
    await asyncio.sleep(0.005)  # read the request
    return build_leaderboard()


async def main() -> None:
    while True:
        await asyncio.gather(*(handle(i) for i in range(2)))
        await asyncio.sleep(0.1)


asyncio.run(main())
