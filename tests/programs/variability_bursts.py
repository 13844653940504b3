# expect: variability deliver
# also: gc blocking
# seconds: 10
"""A notification service that fans each message out to 2,000 subscribers at once.

Campaigns come every three seconds; during one, a message goes out every eighth of a second,
and a task is created per subscriber, all in one go. The loop is idle most of the time, but
each burst holds every other callback back for a while: lag is low at the median and high at
the 99th percentile. Run it with `python variability_bursts.py`.
"""

import asyncio
import zlib

SUBSCRIBERS = 2000
MESSAGES_PER_CAMPAIGN = 8


async def deliver(subscriber, message):
    frame = zlib.crc32(message) ^ subscriber
    payload = message + frame.to_bytes(4, "little")
    await asyncio.sleep(1.0)  # waiting for the subscriber's acknowledgement
    return len(payload)


async def broadcast():
    pending = set()
    sequence = 0
    while True:
        for _ in range(MESSAGES_PER_CAMPAIGN):
            sequence += 1
            message = f"update {sequence}".encode() * 8
            for subscriber in range(SUBSCRIBERS):
                task = asyncio.create_task(deliver(subscriber, message))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(0.125)
        await asyncio.sleep(2.0)


async def steady_traffic():
    while True:
        await asyncio.sleep(0.01)


async def main():
    await asyncio.gather(broadcast(), steady_traffic())


if __name__ == "__main__":
    asyncio.run(main())
