"""Load for a demo scenario: concurrent aiohttp clients over loopback, bounded in time and count.

    python -m loopscope.demos.loadgen SCENARIO --port PORT [--load N] [--rate R]
                                      [--duration S] [--max-requests N] [--every S]

Each client sends the scenario's mix of requests (``catalog.py``) one after another, with a
short think time, in bursts for a bursty scenario, and all together no faster than the
scenario's rate. Every ``--every`` seconds it prints one line (requests, errors, p50/p99 over
the last period, and what the service says its bug has done so far); at the end, the totals,
per endpoint, and the damage. It talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import random
import signal
import sys
import time
from collections import defaultdict
from typing import Any

import aiohttp

from loopscope.demos import catalog

STATE_TIMEOUT = 1.0
READY_TIMEOUT = 30.0


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.by_endpoint: dict[str, list[float]] = defaultdict(list)
        self.recent: list[float] = []  # since the last periodic line

    def add(self, label: str, seconds: float, ok: bool) -> None:
        self.requests += 1
        if not ok:
            self.errors += 1
        self.latencies.append(seconds)
        self.by_endpoint[label].append(seconds)
        self.recent.append(seconds)


class Pacer:
    """Spaces requests from all clients at least 1/rate apart."""

    def __init__(self, rate: float | None) -> None:
        self.gap = 1 / rate if rate else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.gap:
            return
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.gap
        if slot > now:
            await asyncio.sleep(slot - now)


class Load:
    def __init__(self, scenario: catalog.Scenario, base: str, args: argparse.Namespace) -> None:
        self.scenario = scenario
        self.base = base
        self.duration = args.duration
        self.started = time.monotonic()
        self.deadline = self.started + args.duration
        self.budget = args.max_requests
        self.pacer = Pacer(args.rate if args.rate is not None else scenario.rate)
        self.stats = Stats()
        self.weights = [r.weight for r in scenario.requests]
        self.clients = max(1, args.load or scenario.clients)

    def _next(self) -> tuple[catalog.Request, str]:
        request = random.choices(self.scenario.requests, self.weights)[0]
        if "{}" not in request.path:
            return request, request.path
        value = random.choice(request.choices) if request.choices else random.randint(1, 500)
        return request, request.path.replace("{}", str(value))

    async def _burst_gate(self) -> None:
        """Bursty load: send during the first second of every three."""
        phase = (time.monotonic() - self.started) % 3.0
        if phase >= 1.0:
            await asyncio.sleep(3.0 - phase)

    async def client(self, session: aiohttp.ClientSession) -> None:
        while time.monotonic() < self.deadline and self.budget > 0:
            if self.scenario.bursty:
                await self._burst_gate()
            await self.pacer.wait()
            if time.monotonic() >= self.deadline or self.budget <= 0:
                return
            self.budget -= 1
            request, path = self._next()
            sent = time.monotonic()
            try:
                async with session.request(request.method, self.base + path) as response:
                    await response.read()
                    ok = response.status < 400 or response.status == 409  # sold out is fine
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            self.stats.add(request.label, time.monotonic() - sent, ok)
            if not ok:
                await asyncio.sleep(0.05)  # the service is gone or failing: do not spin
            elif not self.scenario.bursty:
                await asyncio.sleep(self.scenario.think * random.uniform(0.5, 1.5))

    async def ready(self, session: aiohttp.ClientSession, timeout: float) -> bool:
        """Waits until the service answers (it may still be starting); the load's time starts
        then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(self.base + "/state") as response:
                    if response.status == 200:
                        self.started = time.monotonic()
                        self.deadline = self.started + self.duration
                        return True
            await asyncio.sleep(0.1)
        return False

    async def damage(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """What the service says its bug did so far; [] when it does not answer in time."""
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            timeout = aiohttp.ClientTimeout(total=STATE_TIMEOUT)
            async with session.get(self.base + "/state", timeout=timeout) as response:
                found: list[dict[str, Any]] = (await response.json())["damage"]
                return found
        return []

    def line(self, damage: list[dict[str, Any]]) -> str:
        s = self.stats
        elapsed = time.monotonic() - self.started
        text = (
            f"load {elapsed:5.1f}s: {s.requests} requests ({s.requests / elapsed:.0f}/s), "
            f"{s.errors} errors, last period p50 {ms(percentile(s.recent, 0.5))} "
            f"p99 {ms(percentile(s.recent, 0.99))}"
        )
        s.recent = []
        harm = [d["text"] for d in damage if d["harm"]]
        return text + (" | " + "; ".join(harm) if harm else "")

    def summary(self, damage: list[dict[str, Any]]) -> list[str]:
        s = self.stats
        elapsed = time.monotonic() - self.started
        lines = [
            f"load generator done: {s.requests} requests in {elapsed:.1f} s, {s.errors} errors, "
            f"p50 {ms(percentile(s.latencies, 0.5))}, p99 {ms(percentile(s.latencies, 0.99))}"
        ]
        for label, values in sorted(s.by_endpoint.items()):
            lines.append(
                f"  {label:<22} {len(values):>6} requests, p50 {ms(percentile(values, 0.5))}, "
                f"p99 {ms(percentile(values, 0.99))}"
            )
        lines += [f"  damage: {d['text']}" for d in damage]
        if not damage:
            lines.append("  damage: unknown (the service did not answer)")
        return lines


async def run(load: Load, every: float, stop: asyncio.Event) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        if not await load.ready(session, READY_TIMEOUT):
            print(
                f"load generator: no answer from {load.base} in {READY_TIMEOUT:.0f} s", flush=True
            )
            return
        clients = [asyncio.create_task(load.client(session)) for _ in range(load.clients)]
        all_done: asyncio.Future[Any] = asyncio.gather(*clients)
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        while not all_done.done() and not stop.is_set():
            await asyncio.wait(
                {all_done, stopped}, timeout=every, return_when=asyncio.FIRST_COMPLETED
            )
            if not all_done.done() and not stop.is_set():
                print(load.line(await load.damage(session)), flush=True)
        for client in clients:
            client.cancel()
        await asyncio.gather(all_done, return_exceptions=True)
        stopped.cancel()
        for line in load.summary(await load.damage(session)):
            print(line, flush=True)


def loopback(host: str) -> str:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{host}: the load generator only talks to loopback")


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopscope.demos.loadgen", description="Load for a loopscope demo."
    )
    parser.add_argument("scenario", help=f"one of: {catalog.names()}")
    parser.add_argument("--host", type=loopback, default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--load", type=int, help="concurrent clients (default: the scenario's)")
    parser.add_argument("--rate", type=float, help="requests a second at most, all clients")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between lines")
    args = parser.parse_args(argv)
    scenario = catalog.SCENARIOS.get(args.scenario)
    if scenario is None:
        parser.exit(2, f"unknown demo '{args.scenario}'; the demos are: {catalog.names()}\n")
    if args.duration <= 0 or args.max_requests <= 0 or args.every <= 0:
        parser.error("--duration, --max-requests and --every must be positive")
    host = f"[{args.host}]" if ":" in args.host else args.host
    load = Load(scenario, f"http://{host}:{args.port}", args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(load, args.every, stop)

    asyncio.run(main())
    return 0


if __name__ == "__main__":
    sys.exit(cli())
