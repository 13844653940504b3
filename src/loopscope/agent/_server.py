"""The agent's Unix socket server: one client at a time, newline-delimited JSON.

Only this thread serialises events: collectors append them to the `Outbox` and go on.
See docs/protocol.md for the protocol.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import socket
import stat
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._guard import Guard
from ._paths import ensure_private_dir
from .events import Event, Hello, LoopStarted, LoopStopped, Notice, RaceWindows, encode

MAX_LINE = 64 * 1024  # longest message a client may send
MAX_PENDING = 32 * 1024 * 1024  # bytes queued for a client that does not read: then it is dropped
BACKLOG_SECONDS = 30.0
BACKLOG_EVENTS = 20_000
BACKLOG_BYTES = 16 * 1024 * 1024
# The server thread sleeps in select() until there is something to do: a client's message, room to
# write, or a wakeup from `Outbox.emit`. Waking costs the program more than the work: a thread
# that wants the GIL back while the loop thread releases and retakes it around each select()
# of a busy loop is woken on every release, for as long as it waits (up to hundreds of ms), so a
# periodic tick cost a busy loop ~3% (task churn, 50 ms tick).
# Events that come every window or pass (each collector's periodic summary) do not wake the
# server on their own more often than every COALESCE seconds: they wait, at most that long, for
# the next wakeup, so that a loaded program's summaries cost it two wakeups a second rather than
# one each. Any other event (a block, a notice, a loop starting) wakes it at once. While events
# come further apart than 2 * COALESCE (an idle program's one summary a second), the server
# sleeps until the next one, which wakes it: one wakeup each rather than two.
# While the watchdog leaves the loops gates (`_handover`), it wakes the server for the
# summaries instead, at a look that has a loop waiting at its gate, and passes the gates on: the
# server opens them once it has sent what it had, so it gets the GIL at once rather than waiting
# for it through a busy loop's iterations.
COALESCE = 0.5
IDLE_TICK = 5.0
PERIODIC = frozenset(
    {"lag", "census", "lifecycle", "duplicates", "task_list", "race_windows", "gc", "executor"}
)

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# A program that restored SIGPIPE's default action must not die of a client hanging up.
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_RESOURCE_WAIT = 0.1
_JOIN_TIMEOUT = 5.0  # the flush on exit takes at most 1 s


class Outbox:
    """Events waiting for the server thread. ``emit`` is thread-safe and cheap enough for any
    hook (a ``deque.append``, and a byte down a pipe that wakes the server when the queue was
    empty); when the server falls behind the oldest events go."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._queue: deque[Event] = deque(maxlen=maxlen)
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(wake_w, False)
        self._wake_w: int | None = wake_w
        # Held while writing to or closing the pipe, so that no write can reach a closed (and
        # maybe reused) file descriptor.
        self._wake_lock = threading.Lock()
        queue = self._queue
        clock = time.monotonic
        # [a wakeup is pending (written, not yet drained), when the last one was written, any
        # event wakes the server (it sleeps until one comes), the last two came close together,
        # the watchdog wakes it for summaries (see `relay`)]
        woken: list[Any] = [False, -COALESCE, False, False, False]
        self._woken = woken
        self._gates: list[Any] = []  # passed on by `relay`, for the server to open
        self.sleeping = False  # the server thread is in its select(), or waking from it

        def emit(event: Event) -> None:
            queue.append(event)
            if not woken[0]:
                now = clock()
                if (
                    woken[2]
                    or event.kind not in PERIODIC
                    or (now - woken[1] >= COALESCE and not woken[4])
                ):
                    self._wake_at(now)

        self.emit: Callable[[Event], None] = emit

    def timeout(self) -> float:
        """How long the server may sleep: COALESCE while events wait that did not wake it (the
        longest they wait); while events come close together, until those that come next may
        have waited that long; else IDLE_TICK, as any event queued from now on wakes it. Call
        `awake` as the sleep ends."""
        woken = self._woken
        woken[2] = not woken[3]  # before the queue is looked at: an event queued after wakes
        if self._queue:
            woken[2] = False
            # Relayed: only if the watchdog stopped looking does the server wake on its own.
            return 2 * COALESCE if woken[4] else COALESCE
        if woken[2] or woken[4]:
            return IDLE_TICK  # an event wakes it, or the watchdog does for the summaries
        # Until then an event does not wake it; after, any does.
        return max(0.0, woken[1] + COALESCE - time.monotonic()) or IDLE_TICK

    def awake(self) -> None:
        self._woken[2] = False

    def relay(self, gates: list[Any]) -> bool:
        """From the watchdog, at the end of a look, with the gates it would open (a loop thread
        may be waiting at one): wake the server if summaries have waited COALESCE, and leave it
        the gates to open; leave them to a server that is awake (woken by a block, say) too: it
        may be waiting for the GIL. True if it took them. Summaries wait for this while gates
        come."""
        woken = self._woken
        woken[4] = bool(gates)
        if not gates or self._wake_w is None:
            return False
        if woken[0] or not self.sleeping:
            self._gates.extend(gates)
            return True
        now = time.monotonic()
        if not self._queue or now - woken[1] < COALESCE:
            return False
        self._gates.extend(gates)
        self._wake_at(now)
        return True

    def _wake_at(self, now: float) -> None:
        """Wake the server, noting when (``now``, monotonic) and whether the last two wakeups
        came close together."""
        woken = self._woken
        woken[3] = now - woken[1] < 2 * COALESCE
        woken[0], woken[1] = True, now
        self.wake()

    def open_gates(self) -> None:
        """Open the gates `relay` left (the server has the GIL and has done its work)."""
        gates, self._gates = self._gates, []
        for gate in gates:
            gate.release()

    def wake(self) -> None:
        """Wake the server thread from its select()."""
        with self._wake_lock:
            if self._wake_w is not None:
                # A full pipe means the server has a wakeup pending anyway.
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"\0")

    def after_fork(self) -> None:
        """In the child of a fork: another thread may have held the lock at the fork."""
        self._wake_lock = threading.Lock()

    def fileno(self) -> int:
        """The end of the wakeup pipe to select() on."""
        return self._wake_r

    def close(self) -> None:
        self.open_gates()
        with self._wake_lock:
            if self._wake_w is None:
                return
            os.close(self._wake_w)
            self._wake_w = None
            os.close(self._wake_r)
            self._wake_r = -1  # never read again: the number may be the program's file next

    def drain(self) -> list[Event]:
        self._woken[0] = False  # before the queue is emptied: a later event wakes again
        with contextlib.suppress(OSError):  # nothing (left) to read
            while self._wake_r >= 0 and os.read(self._wake_r, 4096):
                pass
        out = []
        queue = self._queue
        while queue:
            out.append(queue.popleft())
        return out


class Server:
    name = "server"

    def __init__(
        self,
        path: str,
        outbox: Outbox,
        guard: Guard,
        hello: Callable[[], Hello],
        on_detach: Callable[[], None],
        *,
        private_dir: bool,
        backlog_seconds: float = BACKLOG_SECONDS,
        backlog_events: int = BACKLOG_EVENTS,
    ) -> None:
        self.path = path
        self._outbox = outbox
        self._guard = guard
        self._hello = hello
        self._on_detach = on_detach
        self._private_dir = private_dir
        self._backlog_seconds = backlog_seconds
        self._backlog: deque[tuple[float, bytes]] = deque(maxlen=backlog_events)
        self._backlog_bytes = 0
        # LoopStarted lines of running loops, by loop id; the ones that aged out of the backlog
        # are sent to every new client before it.
        self._live: dict[int, bytes] = {}
        self._aged_out: dict[int, bytes] = {}
        # RaceWindows lines (the source scan, sent once) likewise: id(line) -> line while in the
        # backlog, then kept here for every new client (bounded).
        self._scans: dict[int, bytes] = {}
        self._aged_scans: deque[bytes] = deque(maxlen=200)
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._client: socket.socket | None = None
        # The client asked (``{"op": "detach_on_close"}``) for the agent to uninstall itself
        # when its connection ends, however it ends: a client that is killed leaves no agent.
        self._detach_on_close = False
        self._inbuf = b""
        self._outbuf = bytearray()
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="loopscope-server", daemon=True)

    def start(self) -> None:
        """Bind the socket (errors are raised here, to the installer) and start serving."""
        try:
            self._listener = self._bind()
        except BaseException:
            self._outbox.close()
            raise
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close and unlink the socket. From the server thread itself (a client's
        detach) the thread finishes on its own right after."""
        self._stop.set()
        self._outbox.wake()
        if threading.current_thread() is self._thread:
            return
        if self._thread.is_alive():
            # Bounded: at the program's exit (atexit) a wedged server must not hold it up.
            self._thread.join(_JOIN_TIMEOUT)
        else:
            self._close()

    def _bind(self) -> socket.socket:
        directory = os.path.dirname(self.path) or "."
        if self._private_dir:
            ensure_private_dir(directory)
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise FileExistsError(f"{self.path} exists and is not a socket")
            os.unlink(self.path)  # left behind by a process that had the same pid
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            os.chmod(self.path, 0o600)
            listener.listen(4)
            listener.setblocking(False)
            st = os.lstat(self.path)
        except BaseException:
            listener.close()
            raise
        self._inode = (st.st_dev, st.st_ino)
        return listener

    def _run(self) -> None:
        step = self._guard.wrap(self.name, self._step, fallback=False)
        try:
            while not self._stop.is_set() and step():
                pass
            self._flush_on_exit()
        finally:
            self._close()

    def _step(self) -> bool:
        listener = self._listener
        assert listener is not None
        client = self._client
        readers: list[Any] = [listener, self._outbox]
        if client is not None:
            readers.append(client)
        writers = [client] if client is not None and self._outbuf else []
        outbox = self._outbox
        outbox.sleeping = True
        try:
            readable, writable, _ = select.select(readers, writers, [], outbox.timeout())
        finally:
            outbox.sleeping = False
            outbox.awake()
        self._take_events()
        # The client before the listener: a client that left makes room for the next one.
        if client is not None and client in readable:
            self._read(client)
            if self._stop.is_set():  # a detach: no new client now
                return False
        if listener in readable:
            self._accept()
        if client is not None and client is self._client and client in writable:
            self._write(client)
        outbox.open_gates()
        return True

    def _take_events(self) -> None:
        now = time.monotonic()
        backlog = self._backlog
        for event in self._outbox.drain():
            try:
                line = (encode(event) + "\n").encode()
            except (TypeError, ValueError) as e:
                self._guard.failed(f"encode {event.kind}", e)
                continue
            if isinstance(event, LoopStarted):
                self._live[event.loop] = line
            elif isinstance(event, LoopStopped):
                self._live.pop(event.loop, None)
                self._aged_out.pop(event.loop, None)
            elif isinstance(event, RaceWindows):
                self._scans[id(line)] = line
            if len(backlog) == backlog.maxlen:
                self._age_out(backlog.popleft()[1])
            backlog.append((now, line))
            self._backlog_bytes += len(line)
            if self._client is not None:
                self._outbuf += line
        horizon = now - self._backlog_seconds
        while backlog and (backlog[0][0] < horizon or self._backlog_bytes > BACKLOG_BYTES):
            self._age_out(backlog.popleft()[1])
        if len(self._outbuf) > MAX_PENDING:
            self._drop_client()

    def _age_out(self, line: bytes) -> None:
        self._backlog_bytes -= len(line)
        scan = self._scans.pop(id(line), None)
        if scan is not None:
            self._aged_scans.append(scan)
            return
        for loop, started in self._live.items():
            if started is line:
                self._aged_out[loop] = line
                return

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as e:
            if e.errno not in _OUT_OF_RESOURCES:
                raise
            # The program ran out of file descriptors (or memory): the connection waits in the
            # backlog until it can be taken. Meanwhile the listener stays readable, so wait a
            # little rather than spin.
            self._stop.wait(_RESOURCE_WAIT)
            return
        if not _peer_allowed(conn):
            conn.close()
            return
        if self._client is not None:
            # Say why before hanging up; a fresh connection's buffer has room for one line.
            busy = Notice(
                t=time.time(),
                level="error",
                message=f"another client is connected to the loopscope agent in process "
                f"{os.getpid()}; it serves one client at a time",
            )
            with contextlib.suppress(OSError):
                conn.send((encode(busy) + "\n").encode(), _SEND_FLAGS | _DONTWAIT)
            conn.close()
            return
        try:
            hello = (encode(self._hello()) + "\n").encode()
        except Exception as e:  # e.g. a program that put something odd in sys.argv
            conn.close()
            self._guard.failed("hello", e)
            return
        conn.setblocking(False)
        self._client = conn
        self._inbuf = b""
        out = bytearray(hello)
        for line in self._aged_out.values():
            out += line
        for line in self._aged_scans:
            out += line
        for _, line in self._backlog:
            out += line
        self._outbuf = out

    def _read(self, client: socket.socket) -> None:
        try:
            data = client.recv(MAX_LINE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_client()
            return
        *lines, rest = (self._inbuf + data).split(b"\n")
        self._inbuf = rest
        for line in lines:  # in order, up to one too long
            if len(line) > MAX_LINE:
                self._drop_client()
                return
            self._command(line)
            if self._stop.is_set():
                return
        if len(rest) > MAX_LINE:
            self._drop_client()

    def _command(self, line: bytes) -> None:
        try:
            message: Any = json.loads(line)
        except (ValueError, RecursionError):
            return
        if not isinstance(message, dict):
            return
        op = message.get("op")
        if op == "detach":
            self._on_detach()
        elif op == "detach_on_close":
            self._detach_on_close = True

    def _write(self, client: socket.socket) -> None:
        try:
            sent = client.send(self._outbuf[: 1024 * 1024], _SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop_client()
            return
        del self._outbuf[:sent]

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._outbuf = bytearray()
        self._inbuf = b""
        if client is not None:
            client.close()
        if self._detach_on_close and not self._stop.is_set():
            self._detach_on_close = False
            self._on_detach()

    def _flush_on_exit(self) -> None:
        """Send what is queued (a detaching client sees the last events), briefly."""
        self._take_events()
        client = self._client
        if client is None or not self._outbuf:
            return
        deadline = time.monotonic() + 1.0
        while self._outbuf and self._client is client:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, writable, _ = select.select([], [client], [], left)
            if writable:
                self._write(client)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._outbox.close()
        self._drop_client()
        if self._listener is not None:
            self._listener.close()
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except OSError:
            pass


def _peer_allowed(conn: socket.socket) -> bool:
    try:
        _, uid, _ = _PEERCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
    except (OSError, AttributeError, struct.error):
        return False
    return bool(uid == os.getuid() or uid == 0)
