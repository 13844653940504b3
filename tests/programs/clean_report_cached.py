# expect: clean
# seconds: 8
# The reporting endpoint of duplicate_report_recompute.py, done right: the daily report is built
# once and kept for a minute (a TTL cache); requests in between reuse it.
import asyncio
import hashlib
import time

TTL = 60.0
_reports: dict[str, tuple[float, str]] = {}


def _crunch(period: str) -> str:
    """The report's computation: about 50-100 ms of CPU in a thread."""
    digest = period.encode()
    for _ in range(150_000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


async def build_report(period: str) -> str:
    return await asyncio.to_thread(_crunch, period)


async def cached_report(period: str) -> str:
    hit = _reports.get(period)
    if hit is not None and time.monotonic() - hit[0] < TTL:
        return hit[1]
    report = await build_report(period)
    _reports[period] = (time.monotonic(), report)
    return report


class Request:
    def __init__(self, user: str) -> None:
        self.user = user


async def handle_report(request: Request) -> str:
    report = await cached_report("daily")
    return f"{request.user}: {report[:8]}"


async def main() -> None:
    users = ("ann", "bob", "cyd")
    served = 0
    while True:
        for user in users:
            await asyncio.create_task(handle_report(Request(user)))
            served += 1
            await asyncio.sleep(0.005)
        if served % 600 == 0:
            print(f"{served} reports", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
