"""The bootstrap: the small piece of code an injection route runs in the target.

It runs on the target's main thread at a safe point (a pending call, or ``sys.remote_exec``), and
does almost nothing there: it notes the loop running on that thread and starts a thread. That
thread connects back to loopscope over a private one-shot Unix socket, receives the agent's
sources, loads them under a private module name (nothing needs to be installed in the target)
and installs the agent, then says where the agent listens. The target's main thread is held
for well under a millisecond; its loop goes on running meanwhile.

The bootstrap never raises into the target and never prints: when anything fails it says so
over the socket, or (no socket) stays silent.

loopscope's side, `BootstrapServer`, listens on a random name in a private directory (0700,
socket 0600), accepts only the target's pid (``SO_PEERCRED``) presenting the random token, and
answers once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import loopscope.agent
from loopscope.agent._loader import private_name
from loopscope.agent.events import AGENT_VERSION
from loopscope.attach._errors import AttachError
from loopscope.attach._root import in_another_root, target_path

_BOOTSTRAP = r"""
import os, sys, threading
HOLD, HANDOVER = 5.0, 1.0

def _loops(main, agent):
    # the main thread's running loop, and those the agent finds in the stacks of the others
    # (an agent that an older loopscope left running has no running_loops)
    running = [main] if getattr(main, "is_running", lambda: False)() else []
    running += getattr(agent, "running_loops", list)()
    return len({id(loop) for loop in running})

def _hold(loop):
    # Hold the loop's thread (a callback that waits) while this thread talks to loopscope and
    # loads the agent, at most HOLD seconds. A loop that is never idle calls select() many times
    # a second and takes the GIL straight back each time: this thread would get it only at
    # moments a second or more apart, and attaching would take many seconds. A loop that does
    # not run the callback within HANDOVER seconds (blocked) is not waited for.
    if loop is None or not loop.is_running():
        return None
    holding, released = threading.Event(), threading.Event()

    def hold():
        holding.set()
        released.wait(HOLD)

    try:
        loop.call_soon_threadsafe(hold)
    except RuntimeError:  # closed meanwhile
        return None
    holding.wait(HANDOVER)
    return released

def _main(loop, asyncio_imported):
    import json, socket, traceback
    released = _hold(loop)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(30)
        sock.connect(PATH)
        stream = sock.makefile("rwb")

        def say(**message):
            stream.write(json.dumps(message).encode() + b"\n")
            stream.flush()

        say(token=TOKEN, pid=os.getpid(), python="%d.%d.%d" % sys.version_info[:3],
            asyncio=asyncio_imported, main_loop=loop is not None)
        answer = json.loads(stream.readline())
        if not answer.get("install"):
            return
        try:
            namespace = {"__name__": answer["name"] + "_loader"}
            exec(compile(answer["loader"], "<loopscope-agent>/_loader.py", "exec"), namespace)
            package = namespace["load_from_sources"](answer["sources"], answer["name"])
            agent = package.install(loop)
            say(ok=True, socket=agent.socket_path, loops=_loops(loop, agent))
        except BaseException as e:
            say(ok=False, error="".join(traceback.format_exception_only(type(e), e)).strip(),
                traceback=traceback.format_exc())
    except BaseException:
        pass
    finally:
        sock.close()
        if released is not None:
            released.set()

# An attach that gave up waiting for this safe point (its timeout) removed its socket: then
# nothing is done, and no thread started in a program that loopscope no longer attaches to.
if PATH.startswith("\0") or os.path.exists(PATH):
    _asyncio = sys.modules.get("asyncio")
    _loop = None
    if _asyncio is not None:
        _loop = _asyncio.events._get_running_loop()
    threading.Thread(
        target=_main, args=(_loop, _asyncio is not None), name="loopscope-bootstrap", daemon=True
    ).start()
"""


def bootstrap_code(path: str, token: str) -> str:
    """One statement for ``PyRun_SimpleString``: it runs in ``__main__``'s namespace, so it
    defines no name there, and swallows every error (a pending call that fails would raise into
    whatever code the target runs next)."""
    source = f"PATH = {path!r}\nTOKEN = {token!r}\n" + _BOOTSTRAP
    payload = base64.b64encode(zlib.compress(source.encode(), 9)).decode()
    return (
        "try:\n"
        " exec(__import__('zlib').decompress(__import__('base64').b64decode("
        f"'{payload}')),{{'__name__':'_loopscope_bootstrap'}})\n"
        "except BaseException:\n"
        " pass\n"
    )


def agent_sources() -> dict[str, str]:
    """The agent package's modules, by name, as the bootstrap loads them."""
    directory = Path(loopscope.agent.__file__).resolve().parent
    return {
        p.stem: p.read_text(encoding="utf-8")
        for p in sorted(directory.glob("*.py"))
        if not p.stem.startswith("_launch")
    }


@dataclass(frozen=True, slots=True)
class Installed:
    """What the bootstrap reported once the agent was installed."""

    socket_path: str
    python: str
    loops: int  # event loops found running at install


_PEERCRED = struct.Struct("3i")


def _same_network(pid: int) -> bool:
    """Whether ``pid`` shares loopscope's network namespace (abstract sockets reach it)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return True  # cannot tell: try


def _boot_dir(pid: int) -> str | None:
    """Where to make the bootstrap's socket: the target's /tmp if it has a root of its own."""
    try:
        other = in_another_root(pid)
    except OSError:
        return None
    return target_path(pid, "/tmp") if other else None


class BootstrapServer:
    """The private one-shot socket the bootstrap connects back to. Use as a context manager."""

    def __init__(self, pid: int, *, target_uid: int | None = None) -> None:
        self.pid = pid
        # A '-' in it: the bootstrap's source holds it as a constant, and the interpreter keeps a
        # constant made only of letters, digits and '_' (interned) for good, one per attach.
        self.token = f"{secrets.token_hex(8)}-{secrets.token_hex(8)}"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._dir: str | None = None
        # The socket lives where the target can reach it: in its own /tmp when it has another
        # root (a container), else in a private directory here; an abstract socket (same
        # network namespace only) when neither can be made.
        try:
            directory = tempfile.mkdtemp(prefix="loopscope-boot-", dir=_boot_dir(pid))  # 0700
            self.path = os.path.join(directory, f"{secrets.token_hex(8)}.sock")
            self._listener.bind(self.path)
            self._dir = directory
        except OSError as e:
            if not _same_network(pid):
                self._listener.close()
                raise AttachError(
                    "unreachable",
                    f"process {pid} cannot be reached: it runs in a container whose /tmp "
                    f"loopscope cannot write to ({e.strerror}), and in another network namespace, "
                    "so it cannot connect back to loopscope. Run loopscope inside the container, "
                    "or give the container a writable /tmp.",
                ) from None
            self.path = f"\0loopscope-boot-{self.token}"
            self._listener.bind(self.path)
        if self._dir is not None:
            os.chmod(self.path, 0o600)
            if target_uid is not None and target_uid != os.geteuid() and os.geteuid() == 0:
                # root attaching to another user's process: that user must be able to connect
                os.chown(self._dir, target_uid, -1)
                os.chown(self.path, target_uid, -1)
        self._listener.listen(4)
        # the name the target knows the socket by
        seen = self.path.removeprefix(f"/proc/{pid}/root") if self._dir else self.path
        self.code = bootstrap_code(seen, self.token)

    def __enter__(self) -> BootstrapServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._listener.close()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)

    def serve(
        self,
        timeout: float,
        alive: Callable[[], bool],
        *,
        idle: Callable[[], None] | None = None,
        idle_after: float = 0.5,
    ) -> Installed:
        """Wait for the bootstrap, send it the agent, and return what it reports. ``idle`` is
        called once if the bootstrap has not connected after ``idle_after`` seconds."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if idle is not None and time.monotonic() - started >= idle_after:
                idle()
                idle = None
            left = deadline - time.monotonic()
            if left <= 0:
                raise AttachError(
                    "no-safe-point",
                    f"process {self.pid} did not run the bootstrap within {timeout:g} s: its "
                    "main thread ran no Python code in that time. It may be idle in its event "
                    "loop with nothing to do, or blocked in a C call (time.sleep, a lock, a "
                    "blocking read) outside any loop. Give it work (send it a request) and "
                    "attach again, or wait longer with --timeout.",
                )
            if not alive():
                raise AttachError("exited", f"process {self.pid} exited during attach.")
            self._listener.settimeout(min(left, 0.1))
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                installed = self._answer(conn, deadline)
            if installed is not None:
                return installed

    def _answer(self, conn: socket.socket, deadline: float) -> Installed | None:
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        except OSError:
            return None
        peer_pid, _, _ = _PEERCRED.unpack(creds)
        if peer_pid != self.pid:
            return None  # not our target: ignore it and keep waiting
        conn.settimeout(max(0.5, deadline - time.monotonic()) + 10.0)
        stream = conn.makefile("rwb")
        try:
            hello = json.loads(stream.readline() or b"{}")
            if not isinstance(hello, dict) or hello.get("token") != self.token:
                return None
            if not hello.get("asyncio"):
                stream.write(b'{"install": false}\n')
                stream.flush()
                raise AttachError(
                    "no-asyncio",
                    f"process {self.pid} (Python {hello.get('python')}) has not imported "
                    "asyncio: there is no event loop to observe. Nothing was installed.",
                )
            sources = agent_sources()
            answer = {
                "install": True,
                "name": private_name(AGENT_VERSION),
                "loader": sources["_loader"],
                "sources": sources,
            }
            stream.write(json.dumps(answer).encode() + b"\n")
            stream.flush()
            report = json.loads(stream.readline() or b"{}")
        except (OSError, ValueError) as e:
            raise AttachError(
                "failed", f"the bootstrap in process {self.pid} stopped answering: {e}"
            ) from None
        finally:
            stream.close()
        if not isinstance(report, dict) or not report.get("ok"):
            error = report.get("error") if isinstance(report, dict) else None
            raise AttachError(
                "failed",
                f"the agent could not be started in process {self.pid}: "
                f"{error or 'no answer from the bootstrap'}",
            )
        return Installed(
            socket_path=str(report["socket"]),
            python=str(hello.get("python", "")),
            loops=int(report.get("loops", 0)),
        )
