# expect: duplicate build_report
# seconds: 8
# A reporting endpoint that rebuilds the same daily report for every request. Requests come one
# after another (a dashboard polled by a few users in turn), never two at once, but each one
# recomputes the identical `build_report("daily")` - 50-100 ms of work in a thread - though the
# report changes once a day. Twin: clean_report_cached.py.
import asyncio
import hashlib


def _crunch(period: str) -> str:
    """The report's computation: about 50-100 ms of CPU in a thread."""
    digest = period.encode()
    for _ in range(150_000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


async def build_report(period: str) -> str:
    return await asyncio.to_thread(_crunch, period)


class Request:
    def __init__(self, user: str) -> None:
        self.user = user


async def handle_report(request: Request) -> str:
    report = await build_report("daily")  # rebuilt for every request
    return f"{request.user}: {report[:8]}"


async def main() -> None:
    users = ("ann", "bob", "cyd")
    served = 0
    while True:
        # One request at a time, each served in its own task, as a server would.
        for user in users:
            await asyncio.create_task(handle_report(Request(user)))
            served += 1
            await asyncio.sleep(0.005)
        if served % 60 == 0:
            print(f"{served} reports", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
