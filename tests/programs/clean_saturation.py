# expect: clean
# seconds: 6
"""The twin of saturation_cpu.py: the same requests, at a load the loop can carry.

Requests arrive at a steady 400 a second, a fraction of what one loop can serve, so the loop
stays mostly idle and no request waits behind many others. Run it with
`python clean_saturation.py`.
"""

import asyncio
import hashlib
import json

PER_SECOND = 400


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
        for _ in range(PER_SECOND // 100):
            request_id += 1
            task = asyncio.create_task(handle_request(request_id))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(accept_requests())
