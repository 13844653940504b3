"""Duplicate work: every dashboard request computes the same report, from scratch.

``compute_report(region)`` runs a slow warehouse query (~0.4 s). Twenty clients looking at
the same region's dashboard start twenty identical queries at once, and the next twenty
start twenty more: the database does twenty times the work for the same answer.

Fixed: a single-flight cache. The first request for a region starts the computation; the
others await the same task; the result is kept for a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from aiohttp import web

from loopscope.demos.base import Damage, add_damage

QUERY_SECONDS = 0.4
CACHE_SECONDS = 5.0


class Reports:
    def __init__(self) -> None:
        self.runs = 0
        self.duplicates = 0  # runs started while an identical one was in flight
        self.requests = 0
        self._in_flight: Counter[str] = Counter()
        self._cache: dict[str, tuple[float, asyncio.Task[dict[str, Any]]]] = {}

    async def compute_report(self, region: str) -> dict[str, Any]:
        self.runs += 1
        if self._in_flight[region]:
            self.duplicates += 1
        self._in_flight[region] += 1
        try:
            await asyncio.sleep(QUERY_SECONDS)  # the warehouse query
            return {"region": region, "revenue": sum(range(10_000)) * len(region)}
        finally:
            self._in_flight[region] -= 1

    async def cached_report(self, region: str) -> dict[str, Any]:
        """One computation per region at a time, its result kept for CACHE_SECONDS."""
        now = time.monotonic()
        entry = self._cache.get(region)
        if entry is None or now - entry[0] > CACHE_SECONDS or entry[1].cancelled():
            task = asyncio.create_task(self.compute_report(region), name=f"report-{region}")
            entry = self._cache[region] = (now, task)
        return await asyncio.shield(entry[1])

    def damage(self) -> Damage:
        if not self.duplicates:
            return Damage(
                f"no duplicate work: compute_report ran {self.runs} times for "
                f"{self.requests} requests",
                0,
            )
        return Damage(
            f"DUPLICATE work: compute_report ran {self.runs} times for {self.requests} "
            f"requests, {self.duplicates} of them while an identical one was running",
            self.duplicates,
        )


def install(app: web.Application, fixed: bool) -> None:
    reports = Reports()
    get = reports.cached_report if fixed else reports.compute_report

    async def dashboard(request: web.Request) -> web.Response:
        reports.requests += 1
        return web.json_response(await get(request.match_info["region"]))

    app.router.add_get("/dashboard/{region}", dashboard)
    add_damage(app, reports.damage)
