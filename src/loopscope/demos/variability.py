"""Timing variability: full garbage collections of a big heap, under bursty load.

The service keeps a product catalogue of a few hundred thousand objects. ``parse_order``
turns each order into a tree whose nodes point back at their parents: reference cycles, which
only the garbage collector can free. Held across an ``await`` while the order is saved, they
survive into older generations, and every so often a full collection walks the whole heap,
catalogue included, stopping the loop for tens of milliseconds: most requests are fast, a few
are very slow, and the bursts make it worse.

Fixed: the tree has no back-references (plain reference counting frees it) and the catalogue,
built once at start, is moved out of the collector's sight with ``gc.freeze()``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from loopscope.demos.base import Damage, add_damage

CATALOGUE_SIZE = 300_000
ORDER_LINES = 400


class Node:
    def __init__(self, name: str, parent: Node | None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[Node] = []


def parse_order(lines: int) -> Node:
    """The order as a tree; every node refers to its parent: cycles everywhere."""
    root = Node("order", None)
    for n in range(lines):
        line = Node(f"line-{n}", root)
        root.children.append(line)
        for field in ("sku", "quantity", "price"):
            line.children.append(Node(field, line))
    return root


def parse_order_flat(lines: int) -> Node:
    """The same tree without back-references: freed by reference counting alone."""
    root = Node("order", None)
    for n in range(lines):
        line = Node(f"line-{n}", None)
        root.children.append(line)
        for field in ("sku", "quantity", "price"):
            line.children.append(Node(field, None))
    return root


class GcWatch:
    """Times the full collections, through gc.callbacks."""

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full += 1
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def damage(self) -> Damage:
        ms = self.longest * 1000
        text = f"{self.full} full collections, the longest {ms:.0f} ms"
        return Damage(f"GC PAUSES: {text}", ms) if ms >= 20 else Damage(f"calm GC: {text}", 0)


def install(app: web.Application, fixed: bool) -> None:
    catalogue = [{"sku": n, "name": f"product {n}"} for n in range(CATALOGUE_SIZE)]
    if fixed:
        gc.freeze()  # the catalogue lives as long as the service: the collector can skip it
    watch = GcWatch()
    parse = parse_order_flat if fixed else parse_order

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        gc.callbacks.append(watch)
        yield
        gc.callbacks.remove(watch)
        if fixed:
            gc.unfreeze()

    async def order(request: web.Request) -> web.Response:
        tree = parse(ORDER_LINES)
        await asyncio.sleep(0.02)  # the order is saved
        return web.json_response({"lines": len(tree.children), "catalogue": len(catalogue)})

    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/order", order)
    add_damage(app, watch.damage)
