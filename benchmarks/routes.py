"""What naming routes costs the census: reading a task's route from its await chain, beside
walking that chain (which the census does anyway), per task, on real servers.

A FastAPI service on uvicorn and an aiohttp server (a sub-application) run in this process with
``--requests`` requests of each pending (their handlers sleep), plus the servers' own tasks.
For every task the benchmark times, over ``--rounds`` rounds, the census's chain walk
(`await_chain`) and the route read (`route_of`, on the chain already walked), and prints the
median per task of each, for the tasks serving a request and for the others, side by side.

    .venv/bin/python benchmarks/routes.py [--requests 200] [--rounds 50]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time

import uvicorn
from aiohttp import web
from fastapi import APIRouter, FastAPI

from loopscope.agent._routes import route_of
from loopscope.agent._taskpass import await_chain

api = FastAPI()
invoices = APIRouter(prefix="/api")
release = asyncio.Event()


@invoices.get("/invoices/{cid}")
async def invoice(cid: int) -> dict[str, int]:
    await release.wait()
    return {"cid": cid}


api.include_router(invoices)


async def stock(request: web.Request) -> web.Response:
    await release.wait()
    return web.Response(text="ok")


async def _send(port: int, path: str) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    return writer


def _median_us(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e6:6.2f} us" if times else "     -"


async def main(requests: int, rounds: int) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(api, loop="asyncio", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    shop, sub = web.Application(), web.Application()
    sub.router.add_get("/stock/{item}", stock)
    shop.add_subapp("/shop", sub)
    runner = web.AppRunner(shop)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    shop_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    while not server.started:
        await asyncio.sleep(0.01)
    writers = [await _send(sock.getsockname()[1], f"/api/invoices/{i}") for i in range(requests)]
    writers += [await _send(shop_port, f"/shop/stock/{i}") for i in range(requests)]
    await asyncio.sleep(0.5)  # every request reaches its handler

    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    walks: dict[bool, list[float]] = {True: [], False: []}
    reads: dict[bool, list[float]] = {True: [], False: []}
    routes: dict[str, int] = {}
    for _ in range(rounds):
        for task in tasks:
            t0 = time.perf_counter()
            chain = await_chain(task.get_coro())
            t1 = time.perf_counter()
            route = route_of(frame for frame, _ in reversed(chain))
            t2 = time.perf_counter()
            served = route is not None
            walks[served].append(t1 - t0)
            reads[served].append(t2 - t1)
            if route is not None and _ == 0:
                routes[route] = routes.get(route, 0) + 1
    print(f"Python {sys.version.split()[0]}, {len(tasks)} tasks, {rounds} rounds")
    print(f"routes found: {routes}")
    print(f"{'tasks':<24} {'n':>5}  {'await_chain':>11}  {'route_of':>11}")
    for served, label in ((True, "serving a request"), (False, "other")):
        n = len(walks[served]) // rounds
        print(f"{label:<24} {n:>5}  {_median_us(walks[served])}  {_median_us(reads[served])}")

    release.set()
    for writer in writers:
        writer.close()
    server.should_exit = True
    await serving
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="pending requests per server")
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
