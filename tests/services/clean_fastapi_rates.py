# expect: clean
"""The twin of blocking_fastapi_rates.py: the same converter, calling the rates service with an
async client (one shared aiohttp ClientSession), so the loop serves other requests while it waits.
Run: python clean_fastapi_rates.py
"""

from contextlib import asynccontextmanager

import _load
import aiohttp
import uvicorn
from fastapi import FastAPI

RATES_PORT = _load.upstream(0.04, b'{"EURUSD": 1.0842}')
client: aiohttp.ClientSession


@asynccontextmanager
async def lifespan(app: FastAPI):
    global client
    base = f"http://127.0.0.1:{RATES_PORT}"
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=5)) as client:
        yield


app = FastAPI(lifespan=lifespan)


async def fetch_rate(pair: str, order: int) -> float:
    async with client.get(f"/rates/{pair}?order={order}") as response:
        return float((await response.json())[pair])


@app.get("/orders/{order}/convert/{amount}")
async def convert(order: int, amount: float) -> dict[str, float]:
    return {"usd": amount * await fetch_rate("EURUSD", order)}


if __name__ == "__main__":
    sock = _load.listen()
    plan = {"path": "/orders/{i}/convert/100", "concurrency": 8, "pause": 0.01}
    _load.start(sock.getsockname()[1], [plan])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
