# expect: clean
# seconds: 10
"""The twin of variability_bursts.py: the same deliveries, spread evenly over time.

About as many deliveries to 2,000 subscribers a second, but they start in
small batches every 10 ms instead of 2,000 at once, so no callback waits behind a burst.
Run it with `python clean_bursts.py`.
"""

import asyncio
import zlib

SUBSCRIBERS = 2000
BATCH = 40


async def deliver(subscriber, message):
    frame = zlib.crc32(message) ^ subscriber
    payload = message + frame.to_bytes(4, "little")
    await asyncio.sleep(1.0)  # waiting for the subscriber's acknowledgement
    return len(payload)


async def broadcast():
    pending = set()
    sequence = 0
    while True:
        sequence += 1
        message = f"update {sequence}".encode() * 8
        for first in range(0, SUBSCRIBERS, BATCH):
            for subscriber in range(first, first + BATCH):
                task = asyncio.create_task(deliver(subscriber, message))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(0.01)


async def steady_traffic():
    while True:
        await asyncio.sleep(0.01)


async def main():
    await asyncio.gather(broadcast(), steady_traffic())


if __name__ == "__main__":
    asyncio.run(main())
