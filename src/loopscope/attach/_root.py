"""The target's own files: a process in a container (another root, another mount namespace) sees
its own ``/usr``, ``/tmp`` and so on, which the host may hold at the same names with other
contents (its ``libc.so.6`` is another build). Everything loopscope reads or binds on the target's
behalf goes through `target_path`, which names the target's file as loopscope can reach it, and
ELF files mapped in the target through `mapped_file`, which also checks that the file read is the
one mapped. Reading a target's path directly is never right.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def in_another_root(pid: int) -> bool:
    """Whether ``pid``'s root directory is not loopscope's own (a container, a chroot).

    Raises OSError when the process is gone or its root may not be looked at."""
    theirs = os.stat(f"/proc/{pid}/root")
    ours = os.stat("/")
    return (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino)


def target_path(pid: int, path: str) -> str:
    """Where loopscope reaches the file that process ``pid`` knows as ``path`` (absolute): the
    path itself when the process shares loopscope's root, else the same name under
    ``/proc/PID/root``."""
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    try:
        other = in_another_root(pid)
    except OSError:
        other = True  # gone or hidden: a path under /proc/PID/root fails rather than misleads
    return f"/proc/{pid}/root{path}".rstrip("/") if other else path


@dataclass(frozen=True, slots=True)
class Mapping:
    """One line of /proc/PID/maps that maps a file."""

    start: int
    end: int
    offset: int
    device: tuple[int, int]  # major, minor
    inode: int
    path: str  # as the kernel names it to loopscope

    @classmethod
    def parse(cls, line: str) -> Mapping | None:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            return None
        start, end = (int(x, 16) for x in fields[0].split("-"))
        major, minor = (int(x, 16) for x in fields[3].split(":"))
        return cls(
            start, end, int(fields[2], 16), (major, minor), int(fields[4]), fields[5].rstrip("\n")
        )


def mappings(pid: int) -> list[Mapping]:
    with open(f"/proc/{pid}/maps") as f:
        return [m for m in map(Mapping.parse, f) if m is not None]


def mapped_file(pid: int, mapping: Mapping) -> str | None:
    """A path at which loopscope reads the very file of ``mapping`` in process ``pid``, or None.

    The name in the maps is the target's (a container's ``/usr/lib/...``) or, when the target's
    root lies inside loopscope's, loopscope's own; either way a candidate counts only if it is the
    mapped file (same device and inode), so a host file of the same name is never read instead.
    The kernel's own link to the mapped file (``map_files``, root only) is tried first."""
    candidates = [f"/proc/{pid}/map_files/{mapping.start:x}-{mapping.end:x}"]
    if mapping.path.endswith(" (deleted)"):
        return candidates[0] if _readable(candidates[0]) else None
    candidates += [target_path(pid, mapping.path), mapping.path]
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if candidate.startswith(f"/proc/{pid}/map_files/"):
            if _readable(candidate):
                return candidate
            continue
        if (
            st.st_ino == mapping.inode
            and (os.major(st.st_dev), os.minor(st.st_dev)) == mapping.device
        ):
            return candidate
    return None


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def own_interpreter(pid: int) -> str | None:
    """The path by which process ``pid`` itself names its executable (its interpreter), checked
    to be the very file it runs; None when it cannot be told.

    The kernel names it relative to loopscope's root when that reaches it (a chroot inside
    loopscope's file tree), else relative to the target's (a container)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        root = os.readlink(f"/proc/{pid}/root")
        running = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return None
    if root != "/" and exe.startswith(root + "/"):
        exe = exe[len(root) :]
    try:
        st = os.stat(target_path(pid, exe))
    except (OSError, ValueError):
        return None
    return exe if (st.st_dev, st.st_ino) == (running.st_dev, running.st_ino) else None


def namespace_pid(pid: int) -> int:
    """The pid of process ``pid`` in its own (innermost) PID namespace."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return pid


def own_interpreter_argv(pid: int, other_root: bool, code: str, *args: str) -> list[str] | None:
    """The command that runs ``code`` (``-c``, isolated: ``-I -S``) with process ``pid``'s own
    interpreter, given the target's pid as its first argument, then ``args``; None when the
    interpreter cannot be found. For a target with a root of its own it runs inside the target's
    mount and PID namespaces and root, as ``docker exec`` runs a command: the interpreter's own
    libraries, the target's /proc, and the pid the target's namespace knows."""
    exe = own_interpreter(pid)
    if exe is None:
        return None
    if not other_root:
        return [exe, "-I", "-S", "-c", code, str(pid), *args]
    return [
        "nsenter", f"--target={pid}", "--mount", "--pid", "--root", "--wd", "--",
        exe, "-I", "-S", "-c", code, str(namespace_pid(pid)), *args,
    ]  # fmt: skip


def own_interpreter_unavailable(pid: int, other_root: bool) -> str | None:
    """Why `own_interpreter_argv` cannot be used on ``pid``, or None."""
    if own_interpreter(pid) is None:
        return f"cannot find the interpreter that process {pid} runs"
    if other_root and os.geteuid() != 0:
        return "running the target's interpreter in its own root (a container) needs root"
    return None
