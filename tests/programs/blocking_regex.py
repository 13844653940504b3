# expect: blocking check_coupon
# cause: gil
# A checkout service that validates coupon codes with a regular expression that backtracks
# catastrophically on some inputs. The regular expression engine is C code that holds the GIL
# for the whole match: no Python frame runs and no sampler thread gets the GIL, while the loop
# thread's CPU clock advances. The cause is C code holding the GIL, not I/O.
import asyncio
import re
import time

COUPON = re.compile(r"^(\w+\s?)*$")


def matches_for(seconds: float) -> str:
    """A code that takes about ``seconds`` to reject on this machine."""
    n = 10
    while True:
        code = "a" * n + "!"
        start = time.perf_counter()
        COUPON.match(code)
        if time.perf_counter() - start >= seconds:
            return code
        n += 1


def check_coupon(code: str) -> bool:
    return COUPON.match(code) is not None


async def handle(code: str) -> bool:
    await asyncio.sleep(0.2)  # read the order
    return check_coupon(code)


async def main() -> None:
    bad = await asyncio.to_thread(matches_for, 0.08)  # calibrated off the loop
    while True:
        await handle(bad)


asyncio.run(main())
