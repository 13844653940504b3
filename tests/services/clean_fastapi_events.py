# expect: clean
"""The twin of leak_fastapi_events.py: the same intake and forwarding tasks, but the subscriber
reads its queue, so each forwarding task ends as soon as its event is queued.
Run: python clean_fastapi_events.py
"""

import asyncio
from contextlib import asynccontextmanager

import _load
import uvicorn
from fastapi import FastAPI

subscriber: asyncio.Queue[dict[str, int]]
background: set[asyncio.Task[None]] = set()
received = 0


async def read_events() -> None:
    global received
    while True:
        await subscriber.get()
        received += 1


@asynccontextmanager
async def lifespan(app: FastAPI):
    global subscriber
    subscriber = asyncio.Queue(maxsize=10)
    reader = asyncio.create_task(read_events())
    yield
    reader.cancel()


app = FastAPI(lifespan=lifespan)


async def forward_event(event: dict[str, int]) -> None:
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
