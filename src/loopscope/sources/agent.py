"""The client of an agent's Unix socket: connects, reads JSON lines, yields events.

Used by `loopscope run` (the socket of a program it started) and by `attach` (the socket of an
existing process). The source never raises for what the agent sends: a line it cannot decode
becomes a `Notice`, a lost connection a `SourceState`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from loopscope.agent._paths import default_socket_path
from loopscope.attach._proc import exists as process_exists
from loopscope.events import DecodeError, Event, Notice, SourceState, decode

SOURCE_NAME = "agent"
# A single event larger than this is not something the agent sends; stop rather than buffer it.
MAX_LINE = 64 * 1024 * 1024
_POLL = 0.02  # seconds between attempts while the socket does not exist yet


class AgentSource:
    """Events from the agent listening on ``socket_path``.

    While the socket cannot be connected to, it is retried every few milliseconds until
    ``connect_timeout`` passes, ``alive()`` returns False (the target is gone), or `close()` is
    called. ``close()`` may be called from any thread; ``events()`` then returns soon.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        connect_timeout: float = 15.0,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        self._connect_timeout = connect_timeout
        self._alive = alive or (lambda: True)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.connected = False
        self._last_error = ""
        self._detached = False
        # Why the agent hung up without a hello (it serves one client at a time), if it did.
        self.refused: str | None = None

    @classmethod
    def for_pid(cls, pid: int, *, connect_timeout: float = 15.0) -> AgentSource:
        """The agent installed in process ``pid``, at its default socket path."""
        return cls(
            default_socket_path(pid),
            connect_timeout=connect_timeout,
            alive=lambda: process_exists(pid),
        )

    # -- Source protocol ------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        sock = self._connect()
        if sock is None:
            if not self._closed.is_set():
                yield SourceState(
                    t=time.time(),
                    source=SOURCE_NAME,
                    state="unavailable",
                    detail=self._why_unavailable(),
                )
            return
        yield SourceState(
            t=time.time(), source=SOURCE_NAME, state="live", detail=str(self.socket_path)
        )
        greeted = False
        notice = None
        try:
            for event in self._read(sock):
                if event.kind == "hello":
                    greeted = True
                elif not greeted and isinstance(event, Notice):
                    notice = event.message
                yield event
        finally:
            self._drop(sock)
        if not greeted and not self._closed.is_set() and (notice or self._alive()):
            self.refused = notice or (
                "the agent closed the connection before saying hello (it serves one client "
                "at a time: another may be connected)"
            )
            yield SourceState(
                t=time.time(), source=SOURCE_NAME, state="unavailable", detail=self.refused
            )
        elif self._closed.is_set():
            yield SourceState(t=time.time(), source=SOURCE_NAME, state="ended", detail="closed")
        elif self._detached:
            yield SourceState(t=time.time(), source=SOURCE_NAME, state="ended", detail="detached")
        else:
            yield SourceState(
                t=time.time(),
                source=SOURCE_NAME,
                state="lost",
                detail="the agent closed the connection",
            )

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sock = self._sock
        if sock is not None:
            # shutdown() wakes a recv() blocked in another thread; close() alone does not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- Requests to the agent ------------------------------------------------------------------

    def detach(self) -> bool:
        """Ask the agent to uninstall itself. False when not connected."""
        self._detached = self._send({"op": "detach"})
        return self._detached

    def detach_on_close(self) -> bool:
        """Ask the agent to uninstall itself when this connection ends, however it ends (this
        process killed included). False when not connected."""
        return self._send({"op": "detach_on_close"})

    def _send(self, message: dict[str, object]) -> bool:
        with self._lock:
            sock = self._sock
            if sock is None:
                return False
            try:
                sock.sendall(json.dumps(message).encode() + b"\n")
            except OSError:
                return False
        return True

    # -- Internals ------------------------------------------------------------------------------

    def _connect(self) -> socket.socket | None:
        deadline = time.monotonic() + self._connect_timeout
        while not self._closed.is_set():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
            except OSError as e:
                sock.close()
                self._last_error = e.strerror or str(e)
                # Waiting cannot fix a socket that is not ours to connect to.
                if isinstance(e, PermissionError) or not self._alive():
                    return None
                if time.monotonic() >= deadline:
                    return None
                self._closed.wait(_POLL)
                continue
            with self._lock:
                if self._closed.is_set():
                    sock.close()
                    return None
                self._sock = sock
            self.connected = True
            return sock
        return None

    def _why_unavailable(self) -> str:
        if not self._alive():
            return "the program ended before its agent started"
        if self._last_error == os.strerror(errno.EACCES):
            return f"permission denied on {self.socket_path}: run loopscope as the program's user"
        reason = f" ({self._last_error})" if self._last_error else ""
        return f"could not connect to {self.socket_path} within {self._connect_timeout:g} s{reason}"

    def _read(self, sock: socket.socket) -> Iterator[Event]:
        buffer = b""
        while True:
            try:
                chunk = sock.recv(256 * 1024)
            except OSError:
                return
            if not chunk:
                if buffer.strip():
                    yield self._decode(buffer)
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield self._decode(line)
            if len(buffer) > MAX_LINE:
                yield Notice(
                    t=time.time(),
                    level="error",
                    message=f"the agent sent a message over {MAX_LINE} bytes; disconnected",
                )
                return

    @staticmethod
    def _decode(line: bytes) -> Event:
        try:
            return decode(line)
        except DecodeError as e:
            excerpt = line[:80].decode("utf-8", "replace")
            return Notice(
                t=time.time(),
                level="warning",
                message=f"bad message from the agent: {e}: {excerpt!r}",
            )

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = None
        sock.close()
