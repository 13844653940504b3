"""What the demo scenarios share: how each reports the damage its bug did."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Damage:
    """What a scenario's bug did so far, for the load generator to print.

    ``harm`` is a number that is 0 when nothing went wrong (units oversold, wasted
    computations, milliseconds waited); ``text`` says it for people."""

    text: str
    harm: float


# Each scenario appends a function that tells its damage; GET /state returns them all.
DAMAGE: web.AppKey[list[Callable[[], Damage]]] = web.AppKey("damage", list)


def add_damage(app: web.Application, tell: Callable[[], Damage]) -> None:
    app.setdefault(DAMAGE, []).append(tell)


def started(pool: ThreadPoolExecutor, threads: int) -> ThreadPoolExecutor:
    """``pool`` with its ``threads`` threads running. A pool starts its threads on demand, and
    starting one makes the caller wait until the new thread runs: on the loop, on a busy
    machine, that is a block of its own."""
    for waiting in [pool.submit(time.sleep, 0.05) for _ in range(threads)]:
        waiting.result()
    return pool
