# expect: clean
"""The twin of executor_fastapi_sync.py: the same CRM lookups under the same load, but the
endpoint is `async def` and calls the CRM with a shared async client, so no request waits for a
thread.
Run: python clean_fastapi_sync.py
"""

from contextlib import asynccontextmanager

import _load
import aiohttp
import uvicorn
from fastapi import FastAPI

CRM_PORT = _load.upstream(0.1, b'{"name": "Ada", "tier": "gold"}')
client: aiohttp.ClientSession


@asynccontextmanager
async def lifespan(app: FastAPI):
    global client
    base = f"http://127.0.0.1:{CRM_PORT}"
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as client:
        yield


app = FastAPI(lifespan=lifespan)


async def fetch_customer(cid: int) -> dict[str, str]:
    async with client.get(f"/customers/{cid}") as response:
        return dict(await response.json())


@app.get("/customers/{cid}")
async def customer(cid: int) -> dict[str, str]:
    return {"id": str(cid), **await fetch_customer(cid)}


if __name__ == "__main__":
    sock = _load.listen()
    _load.start(sock.getsockname()[1], [{"path": "/customers/{i}", "concurrency": 60}])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
