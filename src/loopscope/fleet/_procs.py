"""Finding the processes of a fleet in /proc: a process's descendants, command lines that match
a pattern, and a short name for each process (its program)."""

from __future__ import annotations

import os
import re

from loopscope.attach._proc import ProcessInfo
from loopscope.figures import program_name


def parent(pid: int) -> int | None:
    """The parent pid of ``pid``, None when it is gone or cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _pids() -> list[int]:
    try:
        return [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, their children...), by pid."""
    below: dict[int, list[int]] = {}
    for p in _pids():
        ppid = parent(p)
        if ppid is not None:
            below.setdefault(ppid, []).append(p)
    out: list[int] = []
    todo = list(below.get(pid, ()))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(below.get(p, ()))
    return sorted(out)


def cmdline(pid: int) -> tuple[str, ...]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ()
    return tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)


def matching(pattern: re.Pattern[str], *, exclude: set[int]) -> list[int]:
    """Processes whose command line (its words joined by spaces) ``pattern`` matches."""
    out = []
    for p in _pids():
        if p in exclude:
            continue
        words = cmdline(p)
        if words and pattern.search(" ".join(words)):
            out.append(p)
    return sorted(out)


def ancestors(pid: int) -> set[int]:
    """``pid`` and the processes above it: loopscope never watches its own line."""
    out = {pid}
    p: int | None = pid
    while p is not None and p > 1:
        p = parent(p)
        if p is not None:
            out.add(p)
    return out


# multiprocessing's own processes, whose command lines name no program: a word of the command line
# and the name it gives the process.
ROLES = (
    ("multiprocessing.resource_tracker", "resource_tracker"),
    ("multiprocessing.forkserver", "forkserver"),
    ("multiprocessing.spawn", "spawn_worker"),
)


def process_name(info: ProcessInfo) -> str:
    """A short name for a process (the ``process`` label of the metrics): its program's name
    (`figures.program_name`), else its executable's; multiprocessing's own children are named
    for their role."""
    text = " ".join(info.cmdline)
    role = next((name for word, name in ROLES if word in text), None)
    if role is not None:
        return role
    name = program_name(info.cmdline[1:], interpreter=True)
    return name or os.path.basename(info.exe) or "python"
