"""``--web``: the dashboard in a browser, served with textual-serve.

The server runs loopscope's own command again, without ``--web``, for each browser page that
connects: textual-serve starts it with Textual's web driver and relays the page's keys and the
app's screen over a websocket. So a page shows the very app the terminal shows; each page is one
session (for ``run`` and ``demo``, its own run of the program; closing the page quits it, which
stops that program, as ``q`` does). See docs/security.md for who can reach the page.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import socket
import sys
from collections.abc import Sequence
from typing import Any

from loopscope._messages import say

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
COMMANDS = ("attach", "run", "demo", "replay")


class WebError(Exception):
    """Bad input or an address that cannot be served: the message is printed, exit code 2."""


def served() -> bool:
    """Whether this process runs under textual-serve: its app draws to a web page, not to a
    terminal, so the "needs a terminal" checks do not apply."""
    return os.environ.get("TEXTUAL_DRIVER", "").endswith("web_driver:WebDriver")


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--web`` and ``--listen`` for a command that opens the dashboard."""
    parser.add_argument(
        "--web",
        action="store_true",
        help="serve the dashboard to a browser instead of this terminal "
        f"(on http://{DEFAULT_HOST}:{DEFAULT_PORT}/ unless --listen says otherwise); each "
        "page that connects runs its own session",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"with --web: the address to serve on (default {DEFAULT_HOST}:{DEFAULT_PORT}; port "
        "0 picks a free one). Anyone who can reach it sees the program and can stop it: see "
        "docs/security.md",
    )


def parse_listen(text: str | None) -> tuple[str, int]:
    """(host, port) of ``--listen``: HOST:PORT, [IPv6]:PORT, :PORT or PORT."""
    if text is None:
        return DEFAULT_HOST, DEFAULT_PORT
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise WebError(f"--listen {text}: give HOST:PORT, e.g. 127.0.0.1:8000")
    return host, port


def child_argv(argv: Sequence[str], program_at: int | None = None) -> list[str]:
    """``argv`` without ``--web`` and ``--listen``; only loopscope's own options before
    ``program_at`` (where a program's arguments start) are looked at."""
    end = len(argv) if program_at is None else program_at
    out: list[str] = []
    i = 0
    while i < end:
        arg = argv[i]
        if arg == "--web" or arg.startswith("--listen="):
            i += 1
            continue
        if arg == "--listen":
            i += 2
            continue
        out.append(arg)
        i += 1
    return out + list(argv[end:])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or WebError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise WebError(f"--listen: cannot resolve {host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if e.errno == 98:  # EADDRINUSE
            raise WebError(
                f"cannot serve on {shown}: the port is in use; pick another with --listen "
                "HOST:PORT (port 0: any free one)"
            ) from None
        raise WebError(f"cannot serve on {shown}: {e.strerror}") from None
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(argv: Sequence[str], listen: str | None, *, title: str) -> int:
    """Serve ``loopscope ARGV`` (the command without --web) to browsers until Ctrl-C."""
    host, port = parse_listen(listen)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    url = f"http://{shown}/"
    if host in ("0.0.0.0", "::"):  # every address: the page's own links name this host
        url = f"http://{socket.getfqdn()}:{port}/"
    command = shlex.join([sys.executable, "-m", "loopscope", *argv])
    server = _server(command, host, port, url, title)
    say(f"serving the dashboard on {url} (Ctrl-C stops)")
    if not is_loopback(host):
        say(
            f"{host} is not a loopback address: anyone who can reach it can watch and stop the "
            "program (see docs/security.md)"
        )
    try:
        server.serve_on(sock)
    finally:
        sock.close()
    return 0


def _server(command: str, host: str, port: int, url: str, title: str) -> Any:
    import asyncio
    import logging
    import signal

    from aiohttp import web
    from textual_serve.server import Server

    class _Server(Server):
        """textual-serve's server on a socket loopscope bound, without its banner."""

        def initialize_logging(self) -> None:
            logging.getLogger("textual-serve").setLevel(logging.WARNING)

        async def on_startup(self, app: web.Application) -> None:
            pass

        def serve_on(self, sock: socket.socket) -> None:
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_exit)
            web.run_app(
                self._make_app(),
                sock=sock,
                handle_signals=False,
                loop=loop,
                print=lambda *args: None,
            )

    return _Server(command, host=host, port=port, title=title, public_url=url.rstrip("/"))
