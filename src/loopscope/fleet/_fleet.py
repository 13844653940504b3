"""A fleet: several processes watched at once, one attach session (and one model) each.

The processes are given by pid, by a pattern on their command lines, or as the children of a
supervisor; the patterns and the children are looked for again every few seconds, so workers
that start later are attached when they appear and those that exit are marked gone. A process
that cannot be attached to (not Python, refused, gone) is logged and the others go on.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from loopscope.attach._errors import AttachError
from loopscope.attach._ladder import DEFAULT_TIMEOUT, attach
from loopscope.attach._proc import ProcessInfo, check_attachable, exists, inspect
from loopscope.events import Event
from loopscope.fleet._procs import (
    ROLES,
    ancestors,
    cmdline,
    descendants,
    matching,
    parent,
    process_name,
)
from loopscope.session import Session, View
from loopscope.sources.attach import AttachSource
from loopscope.sources.base import Source

RESCAN_S = 2.0  # how often the patterns and the supervisors' children are looked for again
REFRESH_S = 1.0  # how often each member's view (snapshot and findings) is taken
_END_TIMEOUT = 5.0  # how long a detaching agent gets to send its last events and go
_GONE_KEPT_S = 60.0  # a gone member stays listed this long
_NO_ASYNCIO = "asyncio is not imported"
# What `process_name` calls multiprocessing's processes, whose command lines name no program.
_MULTIPROCESSING = tuple(name for _, name in ROLES)

# A member's state.
ATTACHING = "attaching"
LIVE = "live"  # attached; a loop runs (or the agent waits for one, see `View.snapshot.loops`)
NO_LOOP = "no loop"  # a Python process without asyncio, or one of multiprocessing's helpers
FAILED = "failed"  # could not be attached to (the reason says why)
GONE = "gone"  # exited, or its agent went away


@dataclass(frozen=True, slots=True)
class Target:
    """What to watch: pids, a pattern on command lines, and whether to follow children."""

    pids: tuple[int, ...] = ()
    match: re.Pattern[str] | None = None
    children: bool = False  # the descendants of the pids and matches too
    roots: tuple[int, ...] = ()  # processes whose descendants (only) are watched


class Member:
    """One process of the fleet."""

    def __init__(self, pid: int, name: str, info: ProcessInfo | None) -> None:
        self.pid = pid
        self.name = name  # the `process` label
        self.info = info
        self.command = "" if info is None else info.command
        self.state = ATTACHING
        self.reason = ""
        self.since = time.monotonic()
        self.session: Session | None = None
        self.source: AttachSource | None = None
        self.view: View | None = None  # the newest view, refreshed every REFRESH_S
        self.detach_sent = False

    def set(self, state: str, reason: str = "") -> None:
        self.state, self.reason, self.since = state, reason, time.monotonic()

    @property
    def has_loop(self) -> bool:
        view = self.view
        return view is not None and any(loop.running for loop in view.snapshot.loops)


class Fleet:
    """Attaches to the processes of ``target`` and keeps each one's newest view."""

    def __init__(
        self,
        target: Target,
        *,
        log: Callable[[str], None],
        method: str = "auto",
        timeout: float = DEFAULT_TIMEOUT,
        rescan: float = RESCAN_S,
        refresh: float = REFRESH_S,
        clock: Callable[[], float] = time.time,
        tap: Callable[[int, Event], None] | None = None,
    ) -> None:
        """``tap(pid, event)``: called with each event of each process as it arrives (to
        record it), on that process's reading thread."""
        self._target = target
        self._tap = tap
        self._log = log
        self._method = method
        self._timeout = timeout
        self._rescan = rescan
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._members: dict[int, Member] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._mine = ancestors(os.getpid())
        self._announced_empty = False

    # -- the members ---------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """The members, by pid (a copy: safe to iterate while the fleet changes)."""
        with self._lock:
            return sorted(self._members.values(), key=lambda m: m.pid)

    def scan(self) -> list[Member]:
        """Look for the target's processes now; attach to the new ones (on their own threads).
        The members it added."""
        added = []
        for pid in self._wanted():
            with self._lock:
                if self._stop.is_set():
                    break
                known = self._members.get(pid)
                if known is not None:
                    if known.state == NO_LOOP and known.reason == _NO_ASYNCIO:
                        self._recheck(known)  # a new process may import asyncio later
                    continue
                member = self._admit(pid)
                if member is None:
                    continue
                self._members[pid] = member
            added.append(member)
            if member.state == ATTACHING:
                self._start_attach(member)
        return added

    def _recheck(self, member: Member) -> None:
        try:
            info = inspect(member.pid)
        except AttachError:
            return
        if info.asyncio:
            member.info = info
            member.set(ATTACHING)
            self._start_attach(member)

    def _start_attach(self, member: Member) -> None:
        thread = threading.Thread(
            target=self._attach, args=(member,), name=f"loopscope-attach-{member.pid}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _wanted(self) -> list[int]:
        target = self._target
        pids = list(target.pids)
        if target.match is not None:
            found = matching(target.match, exclude=self._mine)
            if not found and not self._announced_empty:
                self._announced_empty = True
                self._log(
                    f"no process's command line matches {target.match.pattern!r}; looking "
                    f"again every {self._rescan:g} s"
                )
            pids.extend(found)
        above = list(pids) if target.children else []
        for p in [*above, *target.roots]:
            pids.extend(d for d in descendants(p) if d not in self._mine)
        return sorted(set(pids))

    def _admit(self, pid: int) -> Member | None:
        """A new member for ``pid`` (under the lock), or None when it is not one to list."""
        if pid in self._mine:
            message = f"process {pid} is loopscope itself, or runs it: not watched"
            self._log(message)
            member = Member(pid, str(pid), None)
            member.set(FAILED, message)
            return member
        try:
            info = inspect(pid)
        except AttachError as e:
            if pid in self._target.pids:
                self._log(e.message)
                member = Member(pid, str(pid), None)
                member.set(FAILED, e.message)
                return member
            return None  # a pattern's or supervisor's process that went away meanwhile
        if info.python is None:
            if pid not in self._target.pids:
                return None  # a non-Python child (a shell, a compiler...): not ours to list
            message = f"process {pid} ({info.command[:80]}) is not a Python process: not watched"
            self._log(message)
            member = Member(pid, process_name(info), info)
            member.set(FAILED, message)
            return member
        helper = _helper(info)
        member = Member(pid, helper or self._name(info), info)
        if helper is not None:
            member.set(NO_LOOP, f"multiprocessing's {helper}")
        elif info.asyncio is False:
            member.set(NO_LOOP, _NO_ASYNCIO)
        if member.state == NO_LOOP:
            self._log(f"process {pid} ({member.name}) has no event loop ({member.reason})")
        return member

    def _name(self, info: ProcessInfo) -> str:
        """The program's name; a multiprocessing child started by spawn or forkserver is named
        for the program that started it ("uvicorn"), which its command line does not say."""
        name = process_name(info)
        for _ in range(4):
            if name not in _MULTIPROCESSING:
                return name
            up = parent(info.pid)
            known = None if up is None else self._members.get(up)
            if known is not None and known.info is not None and known.state != NO_LOOP:
                return known.name
            try:
                info = inspect(up) if up is not None else info
            except AttachError:
                return name
            name = process_name(info)
        return name

    def _attach(self, member: Member) -> None:
        try:
            assert member.info is not None
            check_attachable(member.info)
            attached = attach(member.pid, method=self._method, timeout=self._timeout)
        except AttachError as e:
            member.set(GONE if not exists(member.pid) else FAILED, e.message)
            self._log(f"process {member.pid} ({member.name}): {e.message}")
            return
        except Exception as e:  # one target's trouble never stops the others
            member.set(FAILED, f"{type(e).__name__}: {e}")
            self._log(f"process {member.pid} ({member.name}): attaching failed: {member.reason}")
            return
        source = AttachSource(attached, detach_on_close=True)
        tap = self._tap
        session = Session(
            source if tap is None else _Tapped(source, member.pid, tap), clock=self._clock
        )
        with self._lock:
            if self._stop.is_set():
                stopping = True
            else:
                stopping = False
                member.source, member.session = source, session
        session.start()
        if stopping:
            self._detach(member, source, session)
            return
        member.set(LIVE, attached.how)
        self._log(f"process {member.pid} ({member.name}): {attached.how}")
        self._update(member)

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Scan once now, then rescan and refresh the views on a thread until `close`."""
        self.scan()
        thread = threading.Thread(target=self._run, name="loopscope-fleet", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self) -> None:
        next_scan = time.monotonic() + self._rescan
        while not self._stop.wait(self._refresh):
            for member in self.members():
                self._update(member)
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + self._rescan
                try:
                    self.scan()
                except Exception as e:  # /proc trouble: try again at the next scan
                    self._log(f"looking for processes failed: {type(e).__name__}: {e}")

    def _update(self, member: Member) -> None:
        session = member.session
        if session is not None and member.state == LIVE:
            try:
                member.view = session.view()
            except Exception as e:
                self._log(f"process {member.pid}: reading its state failed: {e}")
            if session.ended:
                source = member.source
                why = "exited" if source is not None and source.exited else "its agent went away"
                if source is not None and source.agent.refused is not None:
                    member.set(FAILED, source.agent.refused)
                    self._log(f"process {member.pid} ({member.name}): {source.agent.refused}")
                else:
                    member.set(GONE, why)
                    self._log(f"process {member.pid} ({member.name}) {why}")
        if (
            member.state in (GONE, FAILED, NO_LOOP)
            and time.monotonic() - member.since > _GONE_KEPT_S
            and not exists(member.pid)
        ):
            with self._lock:
                self._members.pop(member.pid, None)

    def close(self) -> None:
        """Detach from every process (each agent removes itself) and stop."""
        self._stop.set()
        members = self.members()
        for member in members:
            if member.source is not None and member.session is not None:
                member.detach_sent = member.source.detach()
        for member in members:
            if member.source is not None and member.session is not None:
                self._detach(member, member.source, member.session)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(_END_TIMEOUT)

    def _detach(self, member: Member, source: AttachSource, session: Session) -> None:
        if not member.detach_sent:
            member.detach_sent = source.detach()
        session.wait(_END_TIMEOUT)
        session.close()


def summary(members: Iterable[Member]) -> dict[str, int]:
    """How many members are in each state."""
    out: dict[str, int] = {}
    for m in members:
        out[m.state] = out.get(m.state, 0) + 1
    return out


def _helper(info: ProcessInfo) -> str | None:
    """Which of multiprocessing's helpers the process is ("resource_tracker", "forkserver"):
    they never run a loop. A forkserver's children (workers) share its command line."""
    name = process_name(info)
    if name == "resource_tracker":
        return name
    if name == "forkserver" and not _forked_from_same(info):
        return name
    return None


def _forked_from_same(info: ProcessInfo) -> bool:
    """Whether the process's parent runs the same command line (it was forked from it)."""
    up = parent(info.pid)
    return up is not None and cmdline(up) == info.cmdline


class _Tapped:
    """``source``'s events, each also handed to ``tap(pid, event)``."""

    def __init__(self, source: Source, pid: int, tap: Callable[[int, Event], None]) -> None:
        self._source = source
        self._pid = pid
        self._tap = tap

    def events(self) -> Iterator[Event]:
        for event in self._source.events():
            self._tap(self._pid, event)
            yield event

    def close(self) -> None:
        self._source.close()
