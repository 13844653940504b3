"""A bounded loopback load for the services in this folder; not a program of the corpus (the harness
skips files whose name starts with ``_``).

A service binds 127.0.0.1 on a free port, then calls ``start(port, plan)``: this file runs as a
separate process (``python _load.py PORT PLAN``) and sends the plan's requests over HTTP/1.1
keep-alive connections until its time or its count is spent, or until the service exits (the
loader's stdin, a pipe from the service, closes). The load never leaves the loopback interface.

A plan is a list of request streams, each a dict: ``method``, ``path`` (``{i}`` is replaced by a
counter of the stream, ``{k}`` by the counter modulo ``mod``, ``{g}`` by the counter divided by
``group``: that many requests in a row share it), ``body`` (JSON, optional) or ``body_size`` (that
many bytes), ``concurrency`` (connections sending it at once) and ``pause`` (seconds between
requests of one connection).
"""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

MAX_SECONDS = 120.0
MAX_REQUESTS = 200_000
_children: list[subprocess.Popen[bytes]] = []  # kept: their stdin pipes close when we exit


def start(port: int, plan: list[dict[str, Any]]) -> subprocess.Popen[bytes]:
    """Start the load against 127.0.0.1:``port`` in its own process; it ends with the caller."""
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(port), json.dumps(plan)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    _children.append(child)
    return child


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, body: Any
) -> int:
    data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
        + ("Content-Type: application/json\r\n" if data else "")
        + "\r\n"
    )
    writer.write(head.encode() + data)
    status = int((await reader.readline()).split()[1])
    length = None
    chunked = False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while size := int((await reader.readline()).strip() or b"0", 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
    return status


async def _stream(port: int, spec: dict[str, Any], counter: Any, deadline: float, sent: list[int]):
    method = spec.get("method", "GET")
    mod = int(spec.get("mod", 10))
    group = int(spec.get("group", 1))
    pause = float(spec.get("pause", 0.0))
    body = b"x" * int(spec["body_size"]) if "body_size" in spec else spec.get("body")
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < deadline and sent[0] < MAX_REQUESTS:
        i = next(counter)
        path = spec["path"].replace("{i}", str(i)).replace("{k}", str(i % mod))
        path = path.replace("{g}", str(i // group))
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.wait_for(_request(*conn, method, path, body), 30)
            sent[0] += 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            if conn is not None:
                conn[1].close()
            conn = None
            await asyncio.sleep(0.05)  # the service is starting, or dropped the connection
            continue
        if pause:
            await asyncio.sleep(pause)
    if conn is not None:
        conn[1].close()


async def _main(port: int, plan: list[dict[str, Any]]) -> None:
    deadline = time.monotonic() + MAX_SECONDS
    sent = [0]
    streams = []
    for spec in plan:
        counter = itertools.count()
        for _ in range(int(spec.get("concurrency", 1))):
            streams.append(_stream(port, spec, counter, deadline, sent))
    await asyncio.gather(*streams)


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()  # returns at EOF: the service has exited
    os._exit(0)


def listen() -> socket.socket:
    """A listening socket on 127.0.0.1 and a free port, for the service to serve on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    return sock


def upstream(delay: float, body: bytes = b'{"ok": true}') -> int:
    """A slow upstream HTTP service on 127.0.0.1, in a process of its own (as the services a
    program calls are): every request takes ``delay`` seconds. Its port. It ends with the
    caller."""
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--upstream", str(delay), body.decode()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    _children.append(child)
    return int(child.stdout.readline())


def _serve_upstream(delay: float, body: bytes) -> None:
    class Slow(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    server.request_queue_size = 256
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # stopped with the service's process group
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    if sys.argv[1] == "--upstream":
        _serve_upstream(float(sys.argv[2]), sys.argv[3].encode())
    else:
        asyncio.run(_main(int(sys.argv[1]), json.loads(sys.argv[2])))
