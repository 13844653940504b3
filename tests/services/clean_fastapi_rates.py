# expect: clean
"""The twin of blocking_fastapi_rates.py: the same converter, calling the rates service with an
async client (one shared httpx.AsyncClient), so the loop serves other requests while it waits.
Run: python clean_fastapi_rates.py
"""

from contextlib import asynccontextmanager

import _load
import httpx
import uvicorn
from fastapi import FastAPI

RATES_PORT = _load.upstream(0.04, b'{"EURUSD": 1.0842}')
client: httpx.AsyncClient


@asynccontextmanager
async def lifespan(app: FastAPI):
    global client
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{RATES_PORT}", timeout=5) as client:
        yield


app = FastAPI(lifespan=lifespan)


async def fetch_rate(pair: str) -> float:
    response = await client.get(f"/rates/{pair}")
    return float(response.json()[pair])


@app.get("/convert/{amount}")
async def convert(amount: float) -> dict[str, float]:
    return {"usd": amount * await fetch_rate("EURUSD")}


if __name__ == "__main__":
    sock = _load.listen()
    _load.start(sock.getsockname()[1], [{"path": "/convert/{i}", "concurrency": 8, "pause": 0.01}])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
