# expect: saturation handle_request
# seconds: 6
"""A service whose requests each take a fraction of a millisecond of CPU, at a load that
leaves its loop no idle time.

No single request blocks for long, but a hundred are always in flight: the loop is busy all
the time, and every request waits behind all the others. Run it with `python saturation_cpu.py`.
"""

import asyncio
import hashlib
import json

IN_FLIGHT = 100


async def handle_request(request_id):
    body = json.dumps({"id": request_id, "items": list(range(40))})
    digest = body.encode()
    for _ in range(30):
        digest = hashlib.sha256(digest).digest()
    await asyncio.sleep(0.001)  # the response goes out
    return json.loads(body)["id"], digest


async def accept_requests():
    in_flight = set()
    request_id = 0
    while True:
        while len(in_flight) < IN_FLIGHT:
            request_id += 1
            task = asyncio.create_task(handle_request(request_id))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(accept_requests())
