# expect: blocking metrics
# cause: cpu
# seconds: 10
"""An aiohttp service whose `/metrics` handler renders its Prometheus registry on the loop:
`generate_latest` formats every series in Python, and with many series each scrape stalls the
loop for a few tens of milliseconds, once a second. Modelled on a review of ROCm/ATOM pull
request 2186: an `async def` metrics route calling the exporter's `render()` synchronously, "a
contiguous ~30 ms stall once per second, on the same loop that delivers SSE chunks".

The stall is Python code, so it hands the GIL over like any: its cause is CPU work, not C code
holding the GIL. At one scrape a second the loop is calm between them, and a profiler that
looks at it every few tens of milliseconds misses some stalls whole; those must not be taken
for C code holding the GIL.
Run: python blocking_aiohttp_metrics.py
"""

import asyncio
import gc
import random
import time

import _load
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest

REGISTRY = CollectorRegistry()
QUEUE_DEPTH = Gauge(
    "shard_queue_depth",
    "Requests queued per shard and route",
    ["shard", "route"],
    registry=REGISTRY,
)
RENDER_S = 0.03  # about this long a render, on the machine it runs on, when nothing else runs
ROUTES = 50


def render_s() -> float:
    """The shortest of three renders: what the render costs, not how busy the machine is."""
    took = []
    for _ in range(3):
        start = time.perf_counter()
        generate_latest(REGISTRY)
        took.append(time.perf_counter() - start)
    return min(took)


def add_shards(start: int, end: int) -> None:
    for shard in range(start, end):
        for route in range(ROUTES):
            QUEUE_DEPTH.labels(str(shard), f"/api/v1/r{route}").set(random.random())


def grow_registry() -> None:
    """Add series until one render takes about RENDER_S."""
    shards = 40
    add_shards(0, shards)
    while (took := render_s()) < RENDER_S:
        more = max(1, int(shards * (RENDER_S / took - 1.0)))
        add_shards(shards, shards + more)
        shards += more


async def item(request: web.Request) -> web.Response:
    await asyncio.sleep(random.uniform(0.001, 0.005))  # the item store
    return web.json_response({"item": request.match_info["item"]})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), content_type="text/plain")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/items/{item}", item)
    app.router.add_get("/metrics", metrics)
    return app


if __name__ == "__main__":
    grow_registry()
    # The registry's series stay for good: kept out of the collector's scans, as a long-lived
    # service's start-up state often is, so that the stalls are the renders' own.
    gc.freeze()
    sock = _load.listen()
    _load.start(
        sock.getsockname()[1],
        [
            {"method": "GET", "path": "/items/{k}", "mod": 100, "concurrency": 4, "pause": 0.02},
            {"method": "GET", "path": "/metrics", "concurrency": 1, "pause": 1.2},
        ],
    )
    web.run_app(make_app(), sock=sock, print=None)
