"""Executor backlog: slow work floods the default executor, and everything else using it waits.

``make_thumbnail`` hands ``resize_image`` (100 ms in an image library that releases the GIL)
to the loop's default executor, which has ``min(32, cpus + 4)`` threads. At 100 thumbnails a
second the queue grows as long as the load lasts, and ``loop.getaddrinfo`` (which asyncio and
aiohttp's client run in that same executor) waits behind it: DNS lookups take a second.

Fixed: thumbnails get their own bounded thread pool, and a semaphore admits only as many as it
has threads, so waiting happens in asyncio (visible, cancellable) and the default executor
stays free.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from loopscope.demos.base import Damage, add_damage, started

RESIZE_SECONDS = 0.1
THUMBNAIL_THREADS = 16


def resize_image(number: int) -> bytes:
    time.sleep(RESIZE_SECONDS)  # the image library, outside the GIL
    return b"thumbnail %d" % number


class Thumbnails:
    def __init__(self, fixed: bool) -> None:
        self.pool = None
        if fixed:
            self.pool = started(
                ThreadPoolExecutor(THUMBNAIL_THREADS, "thumbnails"), THUMBNAIL_THREADS
            )
        self.slots = asyncio.Semaphore(THUMBNAIL_THREADS)
        self.longest_lookup = 0.0

    async def make_thumbnail(self, number: int) -> bytes:
        loop = asyncio.get_running_loop()
        if self.pool is None:
            return await loop.run_in_executor(None, resize_image, number)
        async with self.slots:
            return await loop.run_in_executor(self.pool, resize_image, number)

    async def resolve_partner(self) -> str:
        """A DNS lookup, as any HTTP client does: asyncio runs it in the default executor."""
        asked = time.monotonic()
        infos = await asyncio.get_running_loop().getaddrinfo("localhost", 443)
        self.longest_lookup = max(self.longest_lookup, time.monotonic() - asked)
        return str(infos[0][4][0])

    def damage(self) -> Damage:
        ms = self.longest_lookup * 1000
        text = f"the slowest DNS lookup took {ms:.0f} ms"
        return Damage(f"STARVED: {text}", ms) if ms >= 200 else Damage(f"no backlog: {text}", 0)


def install(app: web.Application, fixed: bool) -> None:
    thumbnails = Thumbnails(fixed)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        yield
        if thumbnails.pool is not None:
            thumbnails.pool.shutdown(wait=False, cancel_futures=True)

    async def thumbnail(request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        return web.Response(body=await thumbnails.make_thumbnail(number))

    async def lookup(request: web.Request) -> web.Response:
        return web.json_response({"address": await thumbnails.resolve_partner()})

    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/thumbnail/{number}", thumbnail)
    app.router.add_get("/lookup", lookup)
    add_damage(app, thumbnails.damage)
