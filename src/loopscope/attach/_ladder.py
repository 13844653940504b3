"""The attach ladder: an agent already listening, else inject one; first match wins."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from loopscope.attach._bootstrap import BootstrapServer
from loopscope.attach._errors import AttachError
from loopscope.attach._proc import ProcessInfo, check_attachable, exists, inspect, tracer
from loopscope.attach._root import target_path
from loopscope.attach._routes import AUTO, ROUTES, Route, forget_pending_files

METHODS = ("auto", *ROUTES)
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Attached:
    """An agent listening in the target, and how it got there."""

    info: ProcessInfo
    socket_path: str
    how: str  # for the UI's header: "agent injected with pyinjector in 85 ms"
    route: str | None  # the injection route, None when an agent was already listening
    injected_s: float | None  # injection to agent listening, seconds
    loops: int | None  # loops running when the agent was installed (None: not known)


def attach(
    pid: int,
    *,
    method: str = "auto",
    inject: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[str], None] = lambda message: None,
) -> Attached:
    """Find or start the agent in ``pid``. AttachError says why it could not."""
    if method not in METHODS:
        raise AttachError("usage", f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    info = inspect(pid)
    check_attachable(info)
    if info.agent_socket is not None and _connectable(info.agent_socket):
        return Attached(
            info,
            info.agent_socket,
            f"connected to the agent already listening at {info.agent_socket}",
            None,
            None,
            None,
        )
    if not inject:
        raise AttachError(
            "no-agent",
            f"no loopscope agent listens in process {pid}, and --no-inject forbids starting one.",
        )
    opted_out = remote_debug_disabled(pid)
    if opted_out is not None:
        raise AttachError(
            "disabled",
            f"process {pid} was started with {opted_out}: it asked that no debugger run code "
            "in it, so loopscope injects nothing. Observe it from outside instead (loopscope "
            f"attach --no-inject {pid} uses py-spy), or restart it without that setting.",
        )
    traced_by = tracer(pid)
    if traced_by:
        raise AttachError(
            "traced",
            f"process {pid} is being traced by process {traced_by} (a debugger or a profiler "
            "such as gdb or py-spy): a process can have only one tracer. Detach it first, or "
            "wait for it to finish.",
        )
    routes = AUTO if method == "auto" else (method,)
    skipped: list[str] = []
    with BootstrapServer(pid, target_uid=info.uid) as server:
        for name in routes:
            route = ROUTES[name]
            why_not = route.unavailable(info)
            if why_not is not None:
                skipped.append(f"{name}: {why_not}")
                if method != "auto":
                    raise AttachError(
                        "no-route",
                        f"cannot inject with {name}: {why_not}. Without --method, loopscope "
                        "tries each route in turn.",
                    )
                progress(f"not using {name}: {why_not}")
                continue
            progress(f"injecting the agent into process {pid} with {name}")
            started = time.monotonic()
            try:
                route.inject(info, server.code)
            except AttachError as e:
                if e.reason != "failed" or method != "auto":
                    raise
                skipped.append(f"{name}: {e.message}")
                progress(f"{e.message}; trying the next route")
                continue
            progress(f"waiting for process {pid} to reach a safe point (at most {timeout:g} s)")
            installed = server.serve(
                timeout, lambda: exists(pid), idle=_waker(route, info, progress)
            )
            forget_pending_files()
            elapsed = time.monotonic() - started
            return Attached(
                info,
                target_path(pid, installed.socket_path),
                f"agent injected with {name} in {elapsed * 1000:.0f} ms",
                name,
                elapsed,
                installed.loops,
            )
    raise AttachError(
        "no-route",
        f"no way to inject the agent into process {pid}: " + "; ".join(skipped) + ".",
    )


def remote_debug_disabled(pid: int) -> str | None:
    """How the program asked not to have a debugger run code in it (Python 3.14's
    ``PYTHON_DISABLE_REMOTE_DEBUG`` or ``-X disable_remote_debug``; loopscope honours them on
    every version), or None. Read from its initial environment and command line."""
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/environ", "rb") as f:
            environ = f.read().split(b"\0")
        with open(f"{base}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None  # gone, or not ours to read: the next steps say so
    if any(v.startswith(b"PYTHON_DISABLE_REMOTE_DEBUG=") and v[28:] for v in environ):
        return "PYTHON_DISABLE_REMOTE_DEBUG set"
    options = {b"disable_remote_debug", b"disable-remote-debug"}
    args = argv[1:]
    i = 0
    while i < len(args) and args[i].startswith(b"-") and args[i] not in (b"-m", b"-c", b"-"):
        arg = args[i]
        if arg in (b"-X", b"-W"):  # an option whose value is the next argument
            value = args[i + 1] if i + 1 < len(args) and arg == b"-X" else b""
            i += 2
        else:
            value = arg[2:] if arg.startswith(b"-X") else b""
            i += 1
        if value.split(b"=", 1)[0] in options:
            return f"-X {value.decode(errors='replace')}"
    return None


def _connectable(path: str) -> bool:
    """Whether an agent still answers at ``path`` (a detaching one may not have removed it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _waker(
    route: Route, info: ProcessInfo, progress: Callable[[str], None]
) -> Callable[[], None] | None:
    """What to do when the target is slow to reach a safe point: the route's ``wake``."""
    wake: Callable[[ProcessInfo], str | None] | None = getattr(route, "wake", None)
    if wake is None:
        return None

    def idle() -> None:
        assert wake is not None
        done = wake(info)
        if done is not None:
            progress(done)

    return idle
