# expect: duplicate load_tenants
"""A FastAPI service whose every request awaits the same slow upstream call,
`load_tenants("eu-west")`, to find its tenant: dozens of identical calls are in flight at once,
each taking 200 ms, where one would serve them all.
Run: python duplicate_fastapi_tenants.py
"""

import asyncio

import _load
import uvicorn
from fastapi import FastAPI, HTTPException

app = FastAPI()


async def load_tenants(region: str) -> dict[str, dict[str, str]]:
    await asyncio.sleep(0.2)  # the tenant directory, far away
    return {f"t{n}": {"id": f"t{n}", "region": region} for n in range(50)}


@app.get("/tenants/{tenant}/settings")
async def route(tenant: str) -> dict[str, str]:
    tenants = await load_tenants("eu-west")
    if tenant not in tenants:
        raise HTTPException(404, "no such tenant")
    return tenants[tenant]


if __name__ == "__main__":
    sock = _load.listen()
    plan = {"path": "/tenants/t{k}/settings", "mod": 50, "concurrency": 20, "pause": 0.02}
    _load.start(sock.getsockname()[1], [plan])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
