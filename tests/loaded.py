"""A loaded asyncio HTTP server and its load, in two plain-interpreter processes, and what
`/proc` says about the server: for reliability tests and benchmarks (soak, attach cycles).

The server (`asyncio.start_server` on 127.0.0.1) answers each request with a small JSON body
built with a little CPU work; it runs until its stdin closes. The load is a separate process of
keep-alive clients that counts every request that failed: an error status, a connection
dropped, or no answer within `REQUEST_TIMEOUT`. Neither imports loopscope.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT = 5.0

SERVER = r"""
import asyncio, json, os, sys


def render(n):
    rows = [{"id": n * 10 + i, "name": f"item-{i}", "price": i * 1.5} for i in range(40)]
    return json.dumps({"item": n, "rows": rows}).encode()


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            body = render(len(path))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    done = loop.create_future()

    def on_stdin():
        if not os.read(0, 4096):
            loop.remove_reader(0)
            done.set_result(None)

    loop.add_reader(0, on_stdin)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await done
    server.close()


asyncio.run(main())
"""

# Clients with a short think time between requests; "stats" on stdin prints the counts so far,
# end of stdin prints them and exits.
LOAD = r"""
import asyncio, json, os, sys, time

PORT, CLIENTS = int(sys.argv[1]), int(sys.argv[2])
THINK, TIMEOUT = float(sys.argv[3]), float(sys.argv[4])
stats = {"ok": 0, "failed": 0, "max_latency": 0.0, "errors": []}


async def one(reader, writer):
    writer.write(b"GET /items/42 HTTP/1.1\r\nHost: load\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200 ")


async def client():
    reader = writer = None
    while True:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
            started = time.monotonic()
            ok = await asyncio.wait_for(one(reader, writer), TIMEOUT)
            stats["max_latency"] = max(stats["max_latency"], time.monotonic() - started)
            stats["ok" if ok else "failed"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
            stats["failed"] += 1
            if len(stats["errors"]) < 10:
                stats["errors"].append(repr(e))
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.1)
        await asyncio.sleep(THINK)


async def main():
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    done = loop.create_future()

    def on_stdin():
        data = os.read(0, 4096)
        for _ in range(data.count(b"stats")):
            print(json.dumps(stats), flush=True)
        if not data:
            loop.remove_reader(0)
            done.set_result(None)

    loop.add_reader(0, on_stdin)
    print(json.dumps({"started": True}), flush=True)
    await done
    for task in tasks:
        task.cancel()
    print(json.dumps(stats), flush=True)


asyncio.run(main())
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}


class _Lines:
    """JSON lines read from a child's stdout, with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._buffer = b""

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, left))
            if not readable:
                raise AssertionError(f"process {self.proc.pid} said nothing within {timeout} s")
            data = os.read(fd, 65536)
            if not data:
                raise AssertionError(f"process {self.proc.pid} exited (code {self.proc.wait()})")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]


class LoadedServer:
    """The server and its load, running. ``pid`` is the server's: the process to attach to."""

    def __init__(
        self, python: str, directory: Path, *, clients: int = 16, think: float = 0.002
    ) -> None:
        (directory / "server.py").write_text(SERVER)
        (directory / "load.py").write_text(LOAD)
        self.server = subprocess.Popen(
            [python, str(directory / "server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_env(),
            cwd=directory,
        )
        self.pid = self.server.pid
        self.load: subprocess.Popen[bytes] | None = None
        try:
            self.port = int(_Lines(self.server).read()["port"])
            self.load = subprocess.Popen(
                [python, str(directory / "load.py"), str(self.port), str(clients), str(think),
                 str(REQUEST_TIMEOUT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_env(),
                cwd=directory,
            )  # fmt: skip
            self._load_lines = _Lines(self.load)
            assert self._load_lines.read() == {"started": True}
        except BaseException:
            self.close()
            raise

    def stats(self) -> dict[str, Any]:
        """The load's counts so far: ``ok``, ``failed``, ``max_latency`` (s), ``errors``."""
        assert self.load is not None and self.load.stdin is not None
        self.load.stdin.write(b"stats\n")
        self.load.stdin.flush()
        return self._load_lines.read()

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> dict[str, Any]:
        """Poll until the load has had ``count`` answers; its stats."""
        deadline = time.monotonic() + timeout
        while (stats := self.stats())["ok"] < count:
            assert time.monotonic() < deadline, f"the load is stuck: {stats}"
            time.sleep(0.05)
        return stats

    def stop_load(self) -> dict[str, Any]:
        """End the load; its final counts."""
        assert self.load is not None and self.load.stdin is not None
        self.load.stdin.close()
        stats = self._load_lines.read()
        self.load.wait(timeout=30)
        return stats

    def close(self) -> None:
        for proc in (self.load, self.server):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    # -- what /proc says about the server ------------------------------------------------------

    def fds(self) -> dict[int, str]:
        return open_files(self.pid)

    def threads(self) -> list[str]:
        return thread_names(self.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def mappings(self) -> int:
        with open(f"/proc/{self.pid}/maps") as f:
            return sum(1 for _ in f)


def open_files(pid: int) -> dict[int, str]:
    """``{fd: what it points to}`` (``socket:[inode]``, ``pipe:[inode]``, a path)."""
    out = {}
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            out[int(name)] = os.readlink(f"{directory}/{name}")
    return out


def thread_names(pid: int) -> list[str]:
    names = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # the thread ended while we looked
            pass
    return names


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")
