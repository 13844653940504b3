# expect: blocking fetch_rate
"""A FastAPI currency converter whose `async def` endpoint asks the rates service for the rate
locked for each order with a synchronous HTTP client (urllib): each call holds the event loop for
the upstream's 40 ms, and every other request waits behind it.

Reported in public: https://github.com/fastapi/fastapi/issues/2484 (an `async def` endpoint
calling blocking code makes one request wait for another to finish).
Run: python blocking_fastapi_rates.py
"""

import json
import urllib.request

import _load
import uvicorn
from fastapi import FastAPI

app = FastAPI()
RATES_PORT = _load.upstream(0.04, b'{"EURUSD": 1.0842}')


def fetch_rate(pair: str, order: int) -> float:
    url = f"http://127.0.0.1:{RATES_PORT}/rates/{pair}?order={order}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return float(json.load(response)[pair])


@app.get("/orders/{order}/convert/{amount}")
async def convert(order: int, amount: float) -> dict[str, float]:
    return {"usd": amount * fetch_rate("EURUSD", order)}


if __name__ == "__main__":
    sock = _load.listen()
    plan = {"path": "/orders/{i}/convert/100", "concurrency": 8, "pause": 0.01}
    _load.start(sock.getsockname()[1], [plan])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
