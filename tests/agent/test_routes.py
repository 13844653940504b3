"""Routes as the web framework names them (``GET /invoices/{cid}``), on real servers: FastAPI on
uvicorn (a router with a prefix), Starlette (a route in a mount), and aiohttp's server (a
sub-application), all in one target process that loads itself over loopback. A block carries the
route of the request it stalled, the census the routes of the pending requests, where they wait
and the application functions they wait in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import SRC, Client

from loopscope.events import AwaitSite, Block, Census

pytest.importorskip("fastapi", reason="the web stack is a dev dependency of loopscope")
pytest.importorskip("aiohttp", reason="the web stack is a dev dependency of loopscope")

TARGET = r"""
import asyncio, os, socket, time
import uvicorn
from aiohttp import web
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
import loopscope.agent

api = FastAPI()
invoices = APIRouter(prefix="/api")


@invoices.get("/invoices/{cid}")
async def invoice(cid: int):
    await asyncio.sleep(0.4)
    return {"cid": cid}


@api.post("/render/{name}")
async def render(name: str):
    time.sleep(0.05)
    return {}


api.include_router(invoices)


async def seat(request):
    await asyncio.sleep(0.4)
    return JSONResponse({})


seats = Starlette(routes=[Mount("/v1", routes=[Route("/seats/{row}", seat, methods=["PUT"])])])


async def stock(request):
    await asyncio.sleep(0.4)
    return web.Response(text="ok")


async def report(request):
    time.sleep(0.05)
    return web.Response(text="ok")


async def serve_asgi(app):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, loop="asyncio", log_level="warning"))
    asyncio.create_task(server.serve(sockets=[sock]))
    return sock.getsockname()[1]


async def request(port, method, path, n):
    for i in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"{method} {path.format(i=i)} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        writer.write((head + "Connection: close\r\n\r\n").encode())
        await reader.read()
        writer.close()


async def main():
    loopscope.agent.install(socket_path=os.environ["SOCKET"])
    api_port = await serve_asgi(api)
    seats_port = await serve_asgi(seats)
    shop = web.Application()
    sub = web.Application()
    sub.router.add_get("/stock/{item}", stock)
    sub.router.add_post("/report/{kind}", report)
    shop.add_subapp("/shop", sub)
    runner = web.AppRunner(shop)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    shop_port = site._server.sockets[0].getsockname()[1]
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    plan = [
        (api_port, "GET", "/api/invoices/{i}", 4),
        (api_port, "POST", "/render/r{i}", 1),
        (seats_port, "PUT", "/v1/seats/{i}", 3),
        (shop_port, "GET", "/shop/stock/{i}", 2),
        (shop_port, "POST", "/shop/report/{i}", 1),
    ]
    while True:
        await asyncio.gather(
            *(request(port, m, p, 40) for port, m, p, n in plan for _ in range(n))
        )


asyncio.run(main())
"""


# A Starlette app behind an ASGI middleware that does synchronous work before the router has
# matched the request: a block that begins outside the route and ends in its endpoint.
MIDDLEWARE_TARGET = r"""
import asyncio, os, socket, time
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import loopscope.agent


def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Audit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            burn(0.03)  # the audit line, formatted before routing
        await self.app(scope, receive, send)


async def export(request):
    burn(0.06)
    return JSONResponse({})


app = Audit(Starlette(routes=[Route("/exports/{name}", export)]))


async def main():
    loopscope.agent.install(socket_path=os.environ["SOCKET"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, loop="asyncio", log_level="warning"))
    asyncio.create_task(server.serve(sockets=[sock]))
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    port = sock.getsockname()[1]
    for i in range(1000):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /exports/e{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await reader.read()
        writer.close()
        await asyncio.sleep(0.1)


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    yield from _serve(tmp_path_factory.mktemp("routes"), TARGET)


@pytest.fixture
def middleware_events(tmp_path: Path) -> Iterator[Client]:
    yield from _serve(tmp_path, MIDDLEWARE_TARGET)


def _serve(tmp: Path, source: str) -> Iterator[Client]:
    script = tmp / "target.py"
    script.write_text(source)
    socket_path = str(tmp / "agent.sock")
    env = dict(os.environ, PYTHONPATH=SRC, SOCKET=socket_path)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    client = None
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"ready", proc.stderr.read() if proc.stderr else line
        client = Client(socket_path)
        yield client
    finally:
        if client is not None:
            client.close()
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _blocks_of(client: Client, route: str) -> Block:
    block = client.wait_for(
        lambda e: isinstance(e, Block) and e.route == route, what=f"a block of {route}"
    )
    assert isinstance(block, Block)
    return block


def test_a_block_carries_the_route_of_the_request_it_stalled(events: Client) -> None:
    fastapi = _blocks_of(events, "POST /render/{name}")
    assert any(f.function == "render" for s in fastapi.stacks for f in s.frames)
    aiohttp = _blocks_of(events, "POST /shop/report/{kind}")
    assert any(f.function == "report" for s in aiohttp.stacks for f in s.frames)
    # Blocks outside any request's frames carry none.
    assert all(
        e.route in ("POST /render/{name}", "POST /shop/report/{kind}", None)
        for e in events.events
        if isinstance(e, Block)
    )


def test_a_block_that_begins_before_the_route_is_matched_carries_it(
    middleware_events: Client,
) -> None:
    # The first samples are in the middleware, before the router; the later ones in the
    # endpoint, where the scope holds the route.
    block = _blocks_of(middleware_events, "GET /exports/{name}")
    functions = {f.function for s in block.stacks for f in s.frames}
    assert {"Audit.__call__", "export"} <= functions, functions


def test_the_census_counts_pending_requests_by_route(events: Client) -> None:
    wanted = {"GET /api/invoices/{cid}", "PUT /v1/seats/{row}", "GET /shop/stock/{item}"}

    def all_routes(e: object) -> bool:
        return isinstance(e, Census) and wanted <= {r.route for r in e.routes}

    census = events.wait_for(all_routes, what=f"a census with {wanted}")
    assert isinstance(census, Census)
    loads = {r.route: r for r in census.routes}
    for route, function in (
        ("GET /api/invoices/{cid}", "invoice"),
        ("PUT /v1/seats/{row}", "seat"),
        ("GET /shop/stock/{item}", "stock"),
    ):
        load = loads[route]
        assert load.tasks >= 1
        assert load.site is not None and load.site.function == function, load
        assert load.kind == "sleep"
        assert function in load.functions, load  # with its callers on the chain, if any
    # No route is made up: the client tasks and the servers' own tasks have none.
    assert set(loads) <= wanted
    sites: dict[str, AwaitSite] = {s.function: s for s in census.sites}
    assert sites["invoice"].route == "GET /api/invoices/{cid}"
    assert sites["stock"].route == "GET /shop/stock/{item}"
    assert sites["request"].route is None


class _Unreadable:
    @property
    def path(self) -> str:
        raise RuntimeError("a framework object that fails when read")


def test_a_route_that_cannot_be_read_is_none_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from loopscope.agent import _blocks, _census, _routes

    def endpoint(scope: object) -> types.FrameType:
        return sys._getframe()

    # This frame stands for a Starlette frame holding the scope.
    monkeypatch.setitem(_routes._KINDS, endpoint.__code__, "scope")
    good = endpoint({"type": "http", "method": "GET", "route": _Route("/items/{n}")})
    assert _routes.route_of([good]) == "GET /items/{n}"
    assert _census._route([(good, None)]) == "GET /items/{n}"
    assert _routes.route_of([endpoint({"type": "http", "method": "GET"})]) is None  # unmatched
    bad = endpoint({"type": "http", "method": "GET", "route": _Unreadable()})
    with pytest.raises(RuntimeError):
        _routes.route_of([bad])
    # Where the agent reads it, the error stays inside: no route.
    assert _census._route([(bad, None)]) is None
    assert _blocks._route(bad) is None


class _Route:
    def __init__(self, path: str) -> None:
        self.path = path
