"""What /proc says about a process: is it Python, which version, has it an agent listening.

Read without touching the process (no ptrace), so `loopscope ps` and the first checks of
`attach` are cheap and safe. Linux only.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from loopscope.attach._errors import AttachError
from loopscope.attach._root import (
    in_another_root,
    namespace_pid,
    own_interpreter,
    target_path,
)

# A path inside a CPython installation names its version: lib/python3.12/..., libpython3.12.so
_VERSION_IN_PATH = re.compile(r"(?:lib)?python(3)\.(\d+)[/.dmu]")
_ASYNCIO_EXTENSION = re.compile(r"/_asyncio\.cpython-3\d+")
# Pythons that are not CPython, by the names of their executables or libraries
_OTHER_PYTHONS = re.compile(r"(?:^|/)(?:lib)?(pypy|graalpy)[\d.-]*(?:c\.so|\n)", re.IGNORECASE)
_OTHER_NAMES = {"pypy": "PyPy", "graalpy": "GraalPy"}
_DYNLOAD = re.compile(r"(/\S*/lib-dynload)/")
SUPPORTED = ((3, 10), (3, 15))  # oldest and newest minor version the agent runs on


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    uid: int
    exe: str
    cmdline: tuple[str, ...]
    python: tuple[int, int] | None  # (3, 12), None when the process is not Python
    asyncio: bool | None  # whether asyncio's C extension is loaded; None when it cannot be told
    agent_socket: str | None  # the Unix socket a loopscope agent listens on in the process
    ports: tuple[int, ...]  # TCP ports it listens on (aiomonitor's among them, if it runs one)
    other_root: bool = False  # it lives in another root (a container): its files are its own
    other_python: str | None = None  # a Python that is not CPython ("PyPy"), which is not supported

    @property
    def python_text(self) -> str:
        return "-" if self.python is None else f"{self.python[0]}.{self.python[1]}"

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) or f"[{os.path.basename(self.exe)}]"


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in ("Z", "X", None)


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1]
    except (OSError, IndexError):
        return None


def inspect(pid: int) -> ProcessInfo:
    """What /proc tells about ``pid``; AttachError when there is no such process or it may not
    be looked at."""
    if pid <= 0 or not exists(pid):
        raise AttachError(
            "no-process",
            f"there is no process with pid {pid} here. (A process in a container has another "
            "pid inside it than outside: give the pid that `loopscope ps` shows.)",
        )
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/status") as f:
            uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        with open(f"{base}/cmdline", "rb") as f:
            cmdline = tuple(a.decode(errors="replace") for a in f.read().split(b"\0") if a)
        try:
            exe = os.readlink(f"{base}/exe")
        except OSError:
            exe = ""
        with open(f"{base}/maps") as f:
            maps = f.read()
    except FileNotFoundError:
        raise AttachError("no-process", f"process {pid} exited.") from None
    except PermissionError:
        raise AttachError("permission", permission_message(pid)) from None
    python = _python_version(exe, maps)
    other_python = None
    if python is None:
        found = _OTHER_PYTHONS.search(os.path.basename(exe) + "\n" + maps)
        other_python = None if found is None else _OTHER_NAMES[found.group(1).lower()]
    asyncio = None if python is None else _asyncio_loaded(pid, maps, python)
    inodes = _socket_inodes(pid)
    agent_socket = _agent_socket(pid, inodes)
    try:
        other_root = in_another_root(pid)
    except OSError:
        other_root = False
    agent_socket = _reachable(pid, agent_socket)
    ports = _listening_ports(pid, inodes)
    return ProcessInfo(
        pid, uid, exe, cmdline, python, asyncio, agent_socket, ports, other_root, other_python
    )


def check_attachable(info: ProcessInfo) -> None:
    """AttachError unless ``info`` is a CPython loopscope can inject its agent into."""
    if info.other_python is not None:
        raise AttachError(
            "unsupported",
            f"process {info.pid} ({info.command[:80]}) runs {info.other_python}, not CPython: "
            "loopscope's agent and its injection routes know CPython only.",
        )
    if info.python is None:
        raise AttachError(
            "not-python",
            f"process {info.pid} ({info.command[:80]}) is not a Python process: no CPython "
            "interpreter is loaded in it.",
        )
    low, high = SUPPORTED
    if not low <= info.python <= high:
        raise AttachError(
            "unsupported",
            f"process {info.pid} ({info.command[:80]}) runs Python {info.python_text}; "
            "loopscope's agent supports "
            f"CPython {low[0]}.{low[1]} to {high[0]}.{high[1]}.",
        )


def tracer(pid: int) -> int:
    """The pid of the process tracing ``pid`` (a debugger, a profiler), or 0."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("TracerPid:")), 0)
    except (OSError, ValueError):
        return 0


def permission_message(pid: int) -> str:
    return (
        f"permission denied: loopscope may not inspect or attach to process {pid}. Attaching "
        "needs ptrace rights over it: run loopscope as the same user as the process (with "
        "kernel.yama.ptrace_scope set to 0), or as root, or with the CAP_SYS_PTRACE capability."
    )


def python_processes() -> list[ProcessInfo]:
    """Every Python process this user may look at, by pid (loopscope's own excluded)."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            info = inspect(int(entry))
        except AttachError:
            continue
        if info.python is not None:
            out.append(info)
    return sorted(out, key=lambda i: i.pid)


def _python_version(exe: str, maps: str) -> tuple[int, int] | None:
    # The interpreter's own files are mapped: libpython3.X.so, lib/python3.X/lib-dynload/*.so.
    found = _VERSION_IN_PATH.search(maps)
    if found is None:
        found = _VERSION_IN_PATH.search(os.path.basename(exe) + "/")
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2))


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _reachable(pid: int, socket_path: str | None) -> str | None:
    """The path at which loopscope connects to the process's socket ``socket_path`` (named as
    the process names it; an abstract one, "@...", as it is)."""
    if socket_path is None or not socket_path.startswith("/"):
        return socket_path
    return target_path(pid, socket_path)


def _asyncio_loaded(pid: int, maps: str, python: tuple[int, int]) -> bool | None:
    """Whether asyncio's C extension is mapped; None when the interpreter has it built in (as
    Debian's do), so that its absence says nothing."""
    if _ASYNCIO_EXTENSION.search(maps):
        return True
    directories = [m.group(1) for m in [_DYNLOAD.search(maps)] if m is not None]
    exe = own_interpreter(pid)
    if exe is not None:  # <prefix>/bin/python3.X -> <prefix>/lib/python3.X/lib-dynload
        prefix = os.path.dirname(os.path.dirname(exe))
        directories.append(f"{prefix}/lib/python{python[0]}.{python[1]}/lib-dynload")
    for directory in directories:
        try:
            names = os.listdir(target_path(pid, directory))
        except (OSError, ValueError):
            continue
        return False if any(n.startswith("_asyncio.") for n in names) else None
    return False


def _agent_socket(pid: int, inodes: set[int]) -> str | None:
    """The path, as the process names it, of a listening Unix socket of the process that looks
    like an agent's. A socket named for another pid, or one its parent holds too, is a forked
    child's copy of its parent's: the parent's agent, not one of its own."""
    if not inodes:
        return None
    try:
        # the process's own network namespace: a container may have one of its own
        with open(f"/proc/{pid}/net/unix") as f:
            next(f)
            rows = [line.split() for line in f]
    except OSError:
        return None
    for row in rows:
        # Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = __SO_ACCEPTCON
        if len(row) >= 8 and int(row[6]) in inodes and row[3] == "00010000":
            path = row[7]
            if "loopscope" in path and path.endswith(".sock"):
                name = os.path.basename(path)[: -len(".sock")]
                if name.isdigit() and int(name) not in (pid, namespace_pid(pid)):
                    continue
                if int(row[6]) in _socket_inodes(_parent(pid)):
                    continue
                return path
    return None


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _listening_ports(pid: int, inodes: set[int]) -> tuple[int, ...]:
    return tuple(sorted({port for _, port in _tcp_sockets(pid, inodes, LISTEN)}))


LISTEN = "0A"
ESTABLISHED = "01"


def listening(pid: int) -> list[tuple[str, int]]:
    """The (address, port) pairs of the TCP sockets process ``pid`` itself listens on, from
    its own file descriptors: another process may listen on the same port (``SO_REUSEPORT``)."""
    return sorted(set(_tcp_sockets(pid, _socket_inodes(pid), LISTEN)), key=lambda a: a[1])


def serves(pid: int, port: int, peer_port: int) -> bool:
    """Whether the connection from local port ``peer_port`` to ``port`` was accepted by process
    ``pid`` (its socket is one of the process's file descriptors)."""
    inodes = _socket_inodes(pid)
    return any(True for _ in _tcp_sockets(pid, inodes, ESTABLISHED, (port, peer_port)))


def _tcp_sockets(
    pid: int, inodes: set[int], state: str, ports: tuple[int, int] | None = None
) -> list[tuple[str, int]]:
    """(address, port) of the process's TCP sockets in ``state`` ("0A": listening), those
    between local and remote ``ports`` only when given."""
    out: list[tuple[str, int]] = []
    if not inodes:
        return out
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    row = line.split()
                    if len(row) < 10 or row[3] != state or int(row[9]) not in inodes:
                        continue
                    address, port = _address(row[1])
                    if ports is not None and (port, _address(row[2])[1]) != ports:
                        continue
                    out.append((address, port))
        except (OSError, StopIteration, ValueError):
            continue
    return out


def _address(hex_address: str) -> tuple[str, int]:
    """``0100007F:4E66`` -> ("127.0.0.1", 20070), as /proc/net/tcp{,6} write them."""
    host, port = hex_address.rsplit(":", 1)
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host byte order (little-endian here).
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)
