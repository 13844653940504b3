"""Timing variability: full garbage collections of a big heap, under bursty load.

The service keeps a catalogue of 400,000 products (800,000 objects the garbage collector
tracks). ``parse_order`` turns each order into a tree whose nodes point back at their parents:
reference cycles, which only the garbage collector can free. Held across an ``await`` while
the order is saved, they survive into older generations, and every so often a full collection
walks the whole heap, catalogue included, stopping the loop for tens of milliseconds or more:
most requests are fast, a few are very slow, and the bursts make it worse.

Fixed: the tree has no back-references (plain reference counting frees it) and the catalogue,
built once at start, is moved out of the collector's sight with ``gc.freeze()``.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

from aiohttp import web

from loopscope.demos.base import Damage, add_damage

CATALOGUE_SIZE = 400_000


class Product:
    """One entry of the catalogue: two objects the collector tracks (a plain dict of strings and
    numbers would be invisible to it)."""

    __slots__ = ("name", "related", "sku")

    def __init__(self, sku: int) -> None:
        self.sku = sku
        self.name = f"product {sku}"
        self.related: list[int] = []


ORDER_LINES = 400


class Node:
    def __init__(self, name: str, parent: Node | None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[Node] = []


def parse_order(lines: int, *, back_references: bool = True) -> Node:
    """The order as a tree. With ``back_references`` every node refers to its parent: cycles
    everywhere. Without, the tree is freed by reference counting alone."""
    root = Node("order", None)
    for n in range(lines):
        line = Node(f"line-{n}", root if back_references else None)
        root.children.append(line)
        for field in ("sku", "quantity", "price"):
            line.children.append(Node(field, line if back_references else None))
    return root


class GcPauses:
    """The longest loop stall that included a full collection, seen from the loop: a 20 ms
    timer, and the count of full collections before and after it. (Not gc.callbacks: code in
    them runs while the collector has the loop stopped, and would be blamed for the stall.)"""

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = gc.get_stats()[2]["collections"]
            due = loop.time() + 0.02
            await asyncio.sleep(0.02)
            late = loop.time() - due
            collections = gc.get_stats()[2]["collections"] - before
            if collections:
                self.full += collections
                self.longest = max(self.longest, late)

    def damage(self) -> Damage:
        ms = self.longest * 1000
        text = f"{self.full} full collections, the longest stalled the loop {ms:.0f} ms"
        return Damage(f"GC PAUSES: {text}", ms) if ms >= 100 else Damage(f"calm GC: {text}", 0)


def install(app: web.Application, fixed: bool) -> None:
    catalogue = [Product(n) for n in range(CATALOGUE_SIZE)]
    if fixed:
        gc.freeze()  # the catalogue lives as long as the service: the collector can skip it
    pauses = GcPauses()

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        watching = asyncio.create_task(pauses.watch(), name="gc-pauses")
        yield
        watching.cancel()
        if fixed:
            gc.unfreeze()

    async def order(request: web.Request) -> web.Response:
        tree = parse_order(ORDER_LINES, back_references=not fixed)
        await asyncio.sleep(0.02)  # the order is saved
        return web.json_response({"lines": len(tree.children), "catalogue": len(catalogue)})

    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/order", order)
    add_damage(app, pauses.damage)
