"""A web service's routes: the requests pending on each now, where they wait, and the blocks of
the loop while each was served.

A route is what the web framework calls it (``GET /invoices/{cid}``, carried by the agent's
blocks and censuses); where the framework does not say, a block's route is the endpoint serving
it (`endpoint_of`: the first application frame inside a web server framework's frames).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from loopscope.codemap import APP, CodeMap
from loopscope.events import Block, Census, Frame, RouteLoad
from loopscope.model.snapshot import RouteView

_SERVERS = ("starlette", "fastapi", "uvicorn", "hypercorn")
MAX_ROUTES = 200  # routes kept with their block figures; beyond, the least blocked are dropped
MAX_WAITS = 16  # application functions kept per route where its requests waited


def endpoint_of(frames: Sequence[Frame], code: CodeMap) -> str | None:
    """The endpoint serving a request in ``frames`` (innermost first): the first application
    frame inside a web server framework's frames (aiohttp's server, Starlette, FastAPI,
    uvicorn, hypercorn), as ``function (file)``; None outside any request."""
    served = False
    for frame in reversed(frames):
        if not served:
            served = _server(frame.file)
        elif code.kind(frame.file) == APP:
            return f"{frame.function} ({os.path.basename(frame.file)})"
    return None


def block_route(block: Block, code: CodeMap) -> str | None:
    """The route a block stalled: the framework's name for it, else its endpoint."""
    if block.route:
        return block.route
    return endpoint_of(block.stacks[0].frames, code) if block.stacks else None


def _server(file: str) -> bool:
    path = file.replace("\\", "/")
    return "/aiohttp/web" in path or any(f"/{name}/" in path for name in _SERVERS)


class RouteTracker:
    """The latest census's pending requests by route, per loop, and every block by route."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[RouteLoad, ...]] = {}  # loop -> its latest census's
        self._blocks: dict[str, list[float]] = {}  # route -> [blocks, seconds]
        self._waits: dict[str, dict[str, None]] = {}  # route -> functions waited in (ordered)

    def census(self, event: Census) -> None:
        if event.routes or event.loop in self._pending:
            self._pending[event.loop] = event.routes
        for site in event.sites:
            if site.route:
                self._waited(site.route, site.function)
        for load in event.routes:
            for function in load.functions:
                self._waited(load.route, function)
            if load.site is not None:
                self._waited(load.route, load.site.function)

    def _waited(self, route: str, function: str) -> None:
        functions = self._waits.get(route)
        if functions is None:
            if len(self._waits) >= MAX_ROUTES:
                return
            functions = self._waits[route] = {}
        if len(functions) < MAX_WAITS:
            functions[function] = None

    def block(self, block: Block, code: CodeMap) -> None:
        route = block_route(block, code)
        if route is None:
            return
        entry = self._blocks.get(route)
        if entry is None:
            if len(self._blocks) >= MAX_ROUTES:
                del self._blocks[min(self._blocks, key=lambda r: self._blocks[r][1])]
            entry = self._blocks[route] = [0, 0.0]
        entry[0] += 1
        entry[1] += block.duration

    def loop_stopped(self, loop: int) -> None:
        self._pending.pop(loop, None)

    def view(self) -> tuple[RouteView, ...]:
        pending: dict[str, list[RouteLoad]] = {}
        for census in self._pending.values():
            for load in census:
                pending.setdefault(load.route, []).append(load)
        out = []
        for route in pending.keys() | self._blocks.keys():
            loads = pending.get(route, [])
            top = max(loads, key=lambda load: load.tasks) if loads else None
            blocks, blocked = self._blocks.get(route, (0, 0.0))
            out.append(
                RouteView(
                    route=route,
                    in_flight=sum(load.tasks for load in loads),
                    site=top.site if top is not None else None,
                    kind=top.kind if top is not None else "",
                    oldest=max((load.oldest for load in loads), default=0.0),
                    blocks=int(blocks),
                    blocked=blocked,
                )
            )
        out.sort(key=lambda r: (-r.in_flight, -r.blocked, r.route))
        return tuple(out)

    def waits(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((route, tuple(functions)) for route, functions in self._waits.items())
