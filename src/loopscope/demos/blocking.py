"""Blocking the loop: CPU work and synchronous I/O inside ``async def`` handlers.

``/login`` hashes the password (PBKDF2, ~30 ms of CPU), ``/report`` renders a sales report
(~50 ms of pure-Python CPU), ``/config`` reads a file and waits for a slow disk with
``time.sleep``, ``/partner-rates`` calls a partner's HTTP API with ``urllib``. Each runs on
the loop thread, so while it runs no other request moves.

Fixed: the hashing goes to a pool of threads (hashlib releases the GIL), the file read to a
thread (``asyncio.to_thread``), the pure-Python report to a process pool (in a thread it would
still hold the GIL and starve the loop), the sleep becomes ``await asyncio.sleep`` and the HTTP
call uses aiohttp's client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import aiohttp
from aiohttp import web

from loopscope.demos.base import started

PASSWORD_ROUNDS = 100_000  # ~30 ms of CPU on a current machine
REPORT_ROUNDS = 200  # ~50 ms of CPU
HASHING_THREADS = 4
SALT = b"loopscope-demo"

# (order id, sku, quantity, unit price)
_orders = [(i, f"SKU-{i % 97:03d}", 1 + i % 5, round(3.5 + (i % 40) * 1.25, 2)) for i in range(400)]


def hash_password(password: str) -> str:
    """PBKDF2: deliberately slow, and CPU-bound."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), SALT, PASSWORD_ROUNDS).hex()


def render_report() -> bytes:
    """The sales report, computed from scratch on every request."""
    totals: dict[str, float] = {}
    digest = hashlib.sha256()
    for round_ in range(REPORT_ROUNDS):
        for order_id, sku, qty, price in _orders:
            amount = qty * price * (1 + round_ % 3 / 100)
            totals[sku] = totals.get(sku, 0.0) + amount
            digest.update(f"{order_id}:{amount:.4f}".encode())
    top = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:5]
    return json.dumps({"top": top, "checksum": digest.hexdigest()}).encode()


def load_config(path: str) -> bytes:
    """Reads the configuration from a slow network disk, synchronously."""
    with open(path, "rb") as f:
        data = f.read()
    time.sleep(0.1)  # the network disk's latency
    return data


def fetch_partner_rates(url: str) -> bytes:
    """The partner's exchange rates, with a synchronous HTTP client."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body


def install(app: web.Application, fixed: bool) -> None:
    fd, config_path = tempfile.mkstemp(prefix="demo-config-", suffix=".json")
    with os.fdopen(fd, "wb") as f:
        f.write(json.dumps({"currency": "EUR", "tax": 0.2}).encode())
    partner = subprocess.Popen(
        [sys.executable, "-m", "loopscope.demos.partner"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert partner.stdout is not None
    partner_url = f"http://127.0.0.1:{int(partner.stdout.readline())}/rates"
    session: list[aiohttp.ClientSession] = []
    hasher = (
        started(ThreadPoolExecutor(HASHING_THREADS, "hashing"), HASHING_THREADS) if fixed else None
    )
    renderer = _start_renderer() if fixed else None

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        if fixed:
            session.append(aiohttp.ClientSession())
        yield
        for s in session:
            await s.close()
        partner.terminate()
        await asyncio.to_thread(partner.wait)
        if hasher is not None:
            hasher.shutdown(wait=False, cancel_futures=True)
        if renderer is not None:
            await asyncio.to_thread(renderer.shutdown, cancel_futures=True)
        with contextlib.suppress(OSError):
            os.unlink(config_path)

    async def login(request: web.Request) -> web.Response:
        password = f"secret-{id(request) % 1000}"
        if hasher is not None:
            loop = asyncio.get_running_loop()
            digest = await loop.run_in_executor(hasher, hash_password, password)
        else:
            digest = hash_password(password)
        return web.json_response({"token": digest[:16]})

    async def report(request: web.Request) -> web.Response:
        if renderer is not None:
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(renderer, render_report)
        else:
            body = render_report()
        return web.Response(body=body, content_type="application/json")

    async def config_(request: web.Request) -> web.Response:
        if fixed:
            await asyncio.sleep(0.1)
            body = await asyncio.to_thread(_read, config_path)
        else:
            body = load_config(config_path)
        return web.Response(body=body, content_type="application/json")

    async def partner_rates(request: web.Request) -> web.Response:
        if fixed:
            async with session[0].get(partner_url) as response:
                body = await response.read()
        else:
            body = fetch_partner_rates(partner_url)
        return web.Response(body=body, content_type="application/json")

    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/login", login)
    app.router.add_get("/report", report)
    app.router.add_get("/config", config_)
    app.router.add_get("/partner-rates", partner_rates)


def _start_renderer(workers: int = 2) -> ProcessPoolExecutor:
    """Worker processes for the report: new interpreters (not forks of this multi-threaded
    process), started now rather than on the first requests, and deaf to Ctrl-C, which reaches
    the whole process group: the service decides when they stop. (A SIGINT that is ignored
    when a process starts stays ignored in the new interpreter.)"""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        renderer = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"))
        # Each worker starts when a task finds the others busy.
        for waiting in [renderer.submit(time.sleep, 0.2) for _ in range(workers)]:
            waiting.result()
    finally:
        signal.signal(signal.SIGINT, previous)
    return renderer


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
