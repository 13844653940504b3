# expect: clean
"""The twin of duplicate_fastapi_tenants.py: the same service, but the tenant directory is
loaded once and shared: concurrent requests await the one call in flight, and its answer is kept
for a few seconds.
Run: python clean_fastapi_tenants.py
"""

import asyncio
import time

import _load
import uvicorn
from fastapi import FastAPI, HTTPException

app = FastAPI()
TTL_S = 5.0
_cache: dict[str, tuple[float, asyncio.Task[dict[str, dict[str, str]]]]] = {}


async def load_tenants(region: str) -> dict[str, dict[str, str]]:
    await asyncio.sleep(0.2)  # the tenant directory, far away
    return {f"t{n}": {"id": f"t{n}", "region": region} for n in range(50)}


def tenants_of(region: str) -> asyncio.Task[dict[str, dict[str, str]]]:
    """One load per region at a time, kept for TTL_S seconds."""
    now = time.monotonic()
    entry = _cache.get(region)
    if entry is None or now - entry[0] > TTL_S:
        entry = _cache[region] = (now, asyncio.ensure_future(load_tenants(region)))
    return entry[1]


@app.get("/tenants/{tenant}/settings")
async def route(tenant: str) -> dict[str, str]:
    tenants = await asyncio.shield(tenants_of("eu-west"))
    if tenant not in tenants:
        raise HTTPException(404, "no such tenant")
    return tenants[tenant]


if __name__ == "__main__":
    sock = _load.listen()
    plan = {"path": "/tenants/t{k}/settings", "mod": 50, "concurrency": 20, "pause": 0.02}
    _load.start(sock.getsockname()[1], [plan])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
