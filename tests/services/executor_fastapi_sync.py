# expect: executor customer
# also: variability
"""A FastAPI service with synchronous (`def`) endpoints that call the CRM with a blocking HTTP
client. Starlette runs each `def` endpoint in one of anyio's worker threads, at most 40 at once
(anyio's default CapacityLimiter). Sixty requests in flight, each holding a thread for 100 ms:
twenty wait for a thread at any moment, and their wait grows with the load, while the event loop
itself looks idle.

Reported in public: https://github.com/fastapi/fastapi/issues/4221 (threads of sync endpoints)
and https://github.com/encode/starlette/issues/1724 (the 40-thread limit of anyio).
Run: python executor_fastapi_sync.py
"""

import json
import urllib.request

import _load
import uvicorn
from fastapi import FastAPI

app = FastAPI()
CRM_PORT = _load.upstream(0.1, b'{"name": "Ada", "tier": "gold"}')


def fetch_customer(cid: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{CRM_PORT}/customers/{cid}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.load(response))


@app.get("/customers/{cid}")
def customer(cid: int) -> dict[str, str]:
    return {"id": str(cid), **fetch_customer(cid)}


if __name__ == "__main__":
    sock = _load.listen()
    _load.start(sock.getsockname()[1], [{"path": "/customers/{i}", "concurrency": 60}])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
