# expect: leak forward_event
# also: contention
"""A FastAPI event intake that forwards each event to a subscriber in a fire-and-forget task.
The subscriber's queue is bounded and the subscriber has stopped reading, so every forwarding
task waits on `queue.put` for ever: the live tasks grow with every request.

Fire-and-forget tasks piling up in a long-running server were reported in public at
https://github.com/PrefectHQ/fastmcp/pull/1343.
Run: python leak_fastapi_events.py
"""

import asyncio

import _load
import uvicorn
from fastapi import FastAPI

app = FastAPI()
subscriber: asyncio.Queue[dict[str, int]] | None = None
background: set[asyncio.Task[None]] = set()


async def forward_event(event: dict[str, int]) -> None:
    global subscriber
    if subscriber is None:
        subscriber = asyncio.Queue(maxsize=10)  # its reader went away
    await subscriber.put(event)


@app.post("/events/{n}")
async def intake(n: int) -> dict[str, str]:
    task = asyncio.create_task(forward_event({"n": n}))
    background.add(task)
    task.add_done_callback(background.discard)
    return {"status": "accepted"}


if __name__ == "__main__":
    sock = _load.listen()
    plan = {"method": "POST", "path": "/events/{i}", "concurrency": 2, "pause": 0.02}
    _load.start(sock.getsockname()[1], [plan])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
