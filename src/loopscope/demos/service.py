"""The demo service: an aiohttp web service with aiomonitor, under its own load.

    python -m loopscope.demos.service [SCENARIO] [--fixed] [--load N] [--duration S]

serves the handlers of one scenario (see ``catalog.py``; ``--fixed`` serves their corrected
versions) on 127.0.0.1 on a port the system picks, starts aiomonitor (also on ports the system
picks: its telnet console and web UI), and starts the load generator (``loadgen.py``, a
separate process). It ends when the load generator is done, or on SIGINT/SIGTERM, after
giving the load generator a moment to print its final figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import socket
import subprocess
import sys
import time
import warnings
from typing import Any

from aiohttp import web

from loopscope.demos import catalog
from loopscope.demos.base import DAMAGE, Damage, add_damage

# After a stop signal, how long the load generator has to print its final figures.
LOADGEN_GRACE = 1.5


async def item(request: web.Request) -> web.Response:
    """A well-behaved handler: one short database round trip."""
    await asyncio.sleep(0.005)
    number = int(request.match_info["number"])
    return web.json_response({"item": number, "stock": number * 7 % 13})


async def state(request: web.Request) -> web.Response:
    """What each scenario's bug did so far, for the load generator."""
    damage = [tell() for tell in request.app[DAMAGE]]
    return web.json_response({"damage": [{"text": d.text, "harm": d.harm} for d in damage]})


class LoopLag:
    """The service's own view of its loop: how late a 50 ms timer fires, at worst."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.05
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, loop.time() - due)

    def damage(self) -> Damage:
        ms = self.worst * 1000
        return Damage(f"event loop late by up to {ms:.0f} ms", ms if ms >= 50 else 0)


def make_app(scenario: catalog.Scenario, fixed: bool) -> tuple[web.Application, LoopLag]:
    app = web.Application()
    app[DAMAGE] = []
    app.router.add_get("/items/{number}", item)
    app.router.add_get("/state", state)
    lag = LoopLag()
    add_damage(app, lag.damage)
    for name in scenario.modules:
        importlib.import_module(f"loopscope.demos.{name}").install(app, fixed)
    return app, lag


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # its imports warn about their own dependencies
    import aiomonitor  # type: ignore[import-untyped]


def start_monitor(loop: asyncio.AbstractEventLoop, locals_: dict[str, Any]) -> Any:
    """aiomonitor on ports the system picks; without its task factory hook, which slows task
    creation many times over."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aiohttp's advice on its web UI's keys
        return aiomonitor.start_monitor(
            loop, port=0, webui_port=0, console_port=0, hook_task_factory=False, locals=locals_
        )


async def main(
    scenario: catalog.Scenario,
    fixed: bool,
    app: web.Application,
    lag: LoopLag,
    sock: socket.socket,
    loadgen: subprocess.Popen[bytes],
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    variant = "fixed" if fixed else "as shipped"
    print(
        f"demo '{scenario.name}' ({variant}) listening on 127.0.0.1:{sock.getsockname()[1]}",
        flush=True,
    )
    monitor = start_monitor(loop, {"app": app})
    print("aiomonitor started (its ports are the other ones this process listens on)", flush=True)
    lag_task = asyncio.create_task(lag.run(), name="lag-watch")

    started = time.monotonic()
    load_done = asyncio.ensure_future(asyncio.to_thread(loadgen.wait))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load_done, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not load_done.done():
        # A stop signal: the load generator (in the same process group) got it too and is
        # printing its figures, for which it asks this service: keep serving a moment.
        with contextlib.suppress(ProcessLookupError):
            loadgen.send_signal(signal.SIGINT)
        done, _ = await asyncio.wait({load_done}, timeout=LOADGEN_GRACE)
        if not done:
            with contextlib.suppress(ProcessLookupError):
                loadgen.kill()
            await load_done
    stopped.cancel()
    lag_task.cancel()

    await runner.cleanup()
    await asyncio.to_thread(monitor.close)  # joins its thread
    print(f"demo '{scenario.name}' served for {time.monotonic() - started:.1f} s", flush=True)
    return 0


def start_loadgen(
    scenario: catalog.Scenario, port: int, clients: int, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "loopscope.demos.loadgen", scenario.name]
    command += ["--port", str(port), "--load", str(clients), "--duration", str(args.duration)]
    command += ["--max-requests", str(args.max_requests), "--every", str(args.every)]
    if args.rate is not None:
        command += ["--rate", str(args.rate)]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopscope.demos.service",
        description="A demo aiohttp service with a bug that shows under load, and its load.",
    )
    parser.add_argument(
        "scenario", nargs="?", default=catalog.DEFAULT, help=f"one of: {catalog.names()}"
    )
    parser.add_argument("--fixed", action="store_true", help="serve the corrected handlers")
    parser.add_argument("--load", type=int, help="concurrent clients (default: the scenario's)")
    parser.add_argument(
        "--rate", type=float, help="requests a second at most (default: the scenario's)"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="requests at most")
    parser.add_argument(
        "--every", type=float, default=5.0, help="seconds between the load generator's lines"
    )
    args = parser.parse_args(argv)
    scenario = catalog.SCENARIOS.get(args.scenario)
    if scenario is None:
        parser.exit(2, f"unknown demo '{args.scenario}'; the demos are: {catalog.names()}\n")
    clients = args.load or scenario.clients
    # Built before the loop starts: set-up work (a big catalogue, a process pool) is not what
    # the demo is about.
    # So is starting the load generator (forking a big process takes a while): it connects to
    # a socket that is already listening, and is answered once the loop runs.
    app, lag = make_app(scenario, args.fixed)
    sock = socket.create_server(("127.0.0.1", 0), backlog=512)
    loadgen = start_loadgen(scenario, sock.getsockname()[1], clients, args)
    try:
        return asyncio.run(main(scenario, args.fixed, app, lag, sock, loadgen))
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait()


if __name__ == "__main__":
    sys.exit(cli())
