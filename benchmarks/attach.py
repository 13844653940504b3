"""Attaching to a loaded target: time to first data, and the target's longest loop stall.

For each Python found (3.10-3.15; 3.14 and 3.15 in another root, as in a container, see
tests/pythons.py) and each injection route (``remote-exec`` on 3.14+ only: with loopscope on
another version, the target's own interpreter makes the ``sys.remote_exec`` call), a target started
from the plain interpreter (no loopscope in its environment) runs a loaded asyncio loop: an
HTTP-like server and clients on loopback in the same loop, plus a 1 ms heartbeat that records the
longest gap between its runs (the stall). Each round attaches (``loopscope.attach.attach``),
connects to the agent, waits for the first ``lag`` event (time to first data), reads the target's
longest stall over that window, detaches and waits for the agent's socket to go. The ``none`` rows
measure the same window's longest stall without attaching: the load's own jitter.

    .venv/bin/python benchmarks/attach.py [--rounds 5] [--routes ptrace,gdb] [--pythons 3.12]
    .venv/bin/python benchmarks/attach.py --pythons 3.14,3.15 --routes none,ptrace,remote-exec

A round that has not finished after 30 s is counted as hung (the target stuck in the injection):
a watchdog process kills the target, which ends the round, and a new one takes its place.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loopscope.attach import attach
from loopscope.sources.agent import AgentSource
from pythons import find_pythons

TARGET = r"""
import asyncio, json, os, sys, time

stall = 0.0


def say(**message):
    print(json.dumps(message), flush=True)


def render(n):
    rows = [{"id": n * 10 + i, "name": f"item-{i}"} for i in range(60)]
    return json.dumps(rows).encode()


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = render(len(head))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        writer.write(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)


def heartbeat(loop, due):
    global stall
    now = time.perf_counter()
    stall = max(stall, now - due)
    loop.call_later(0.001, heartbeat, loop, time.perf_counter() + 0.001)


async def main():
    global stall
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = [asyncio.create_task(client(port)) for _ in range(8)]
    heartbeat(loop, time.perf_counter())
    done = loop.create_future()

    def on_stdin():
        global stall
        for cmd in os.read(0, 4096).decode().split():
            if cmd == "reset":
                stall = 0.0
                say(reset=True)
            elif cmd == "stall":
                say(stall=stall)
            elif cmd == "exit":
                done.set_result(None)

    loop.add_reader(0, on_stdin)
    say(ready=True)
    await done


asyncio.run(main())
"""


class Target:
    def __init__(self, python: str, directory: Path) -> None:
        script = directory / "loaded.py"
        script.write_text(TARGET)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
        self.proc = subprocess.Popen(
            [python, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self._buffer = b""
        assert self.ask("") == {"ready": True}

    def ask(self, command: str) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
        while b"\n" not in self._buffer:
            readable, _, _ = select.select([self.proc.stdout], [], [], 30)
            if not readable:
                raise RuntimeError("the target did not answer")
            self._buffer += os.read(self.proc.stdout.fileno(), 65536)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def one_round(target: Target, route: str) -> tuple[float | None, float]:
    """(seconds from attach to the first lag event or None for the baseline, longest stall)."""
    target.ask("reset")
    started = time.perf_counter()
    if route == "none":
        time.sleep(0.3)
        return None, float(target.ask("stall")["stall"])  # type: ignore[arg-type]
    attached = attach(target.proc.pid, method=route, timeout=15)
    source = AgentSource(attached.socket_path, connect_timeout=5)
    first = None
    for event in source.events():
        if event.kind == "lag" and first is None:
            first = time.perf_counter() - started
            stall = float(target.ask("stall")["stall"])  # type: ignore[arg-type]
            source.detach()
    deadline = time.monotonic() + 5
    while os.path.exists(attached.socket_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first is not None
    return first, stall


def measure(python: str, route: str, rounds: int, directory: Path) -> str:
    """One row: medians and maxima over ``rounds``. A round still unfinished after 30 s (the
    target stuck in the injection) counts as hung: a watchdog process kills the target, which
    ends the round, and a new target takes its place. (A process, not a thread: pyinjector
    holds loopscope's GIL while it waits for the target.)"""
    firsts: list[float] = []
    stalls: list[float] = []
    hung = 0
    target = Target(python, directory)
    try:
        for _ in range(rounds):
            watchdog = subprocess.Popen(
                ["sh", "-c", f"sleep 30 && kill -KILL {target.proc.pid}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                first, stall = one_round(target, route)
            except Exception:
                if target.proc.poll() is None:
                    raise
                hung += 1
                target.close()
                target = Target(python, directory)
                continue
            finally:
                watchdog.kill()
                watchdog.wait()
            if first is not None:
                firsts.append(first * 1000)
            stalls.append(stall * 1000)
    finally:
        target.close()
    first_text = f"{statistics.median(firsts):.0f} / {max(firsts):.0f}" if firsts else "-"
    stall_text = f"{statistics.median(stalls):.1f} / {max(stalls):.1f}" if stalls else "-"
    return f"{first_text:<32}{stall_text:<34}{hung} of {rounds}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--routes", default="none,ptrace,gdb,pyinjector,remote-exec")
    parser.add_argument("--pythons", default="3.10,3.11,3.12,3.13,3.14,3.15")
    args = parser.parse_args()
    pythons = find_pythons()
    print(
        f"{'python':<8}{'route':<12}{'first data ms (median / max)':<32}"
        f"{'longest stall ms (median / max)':<34}hung"
    )
    for version in args.pythons.split(","):
        python = pythons.get(version)
        if python is None:
            print(f"{version:<8}(not installed)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for route in args.routes.split(","):
                if route == "remote-exec" and tuple(map(int, version.split("."))) < (3, 14):
                    continue  # sys.remote_exec is 3.14's
                row = measure(python, route, args.rounds, Path(tmp))
                print(f"{version:<8}{route:<12}{row}", flush=True)


if __name__ == "__main__":
    main()
