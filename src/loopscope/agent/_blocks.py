"""Blocks: busy periods of a loop thread longer than a threshold, with sampled stacks.

`SelectorProbe` wraps the selector's ``select`` on the loop's selector instance: the loop is
waiting while it is inside ``select`` and busy between a ``select`` returning and the next call,
so a busy period's start and end are exact. The `Watchdog` thread polls every tracked loop; while
a busy period is older than the threshold it samples the loop thread's stack, and when the loop
thread reports the period's end it emits one `Block`.

Besides the CPU time the loop thread used in a block, the watchdog reads how long the thread
waited in the run queue (runnable, but another thread had the core): on a busy machine a thread
burning CPU gets only part of each core, and without the run-queue wait it would look like a
thread that waits for I/O.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection
from types import FrameType
from typing import Any, Protocol

from ._guard import Guard
from ._handover import HANDOVER_AFTER, Handover
from ._routes import route_of, stack_frames
from .events import Block, Event, Frame, Stack

MAX_DEPTH = 64
MAX_STACKS = 32
# Run-queue wait per second on CPU is only taken from at least this much CPU time, and a rate
# of waiting from at least this long a span: the scheduler hands out time in slices of a few
# milliseconds.
_MIN_ON_CPU = 0.001
_MIN_RUNQ_SPAN = 0.002
# A loop idle for this share of the time since the watchdog last looked, and waiting now, lets
# the watchdog sleep until its select() returns (at the latest after _DEEP_SLEEP seconds).
_QUIET_IDLE = 0.98
_DEEP_SLEEP = 1.0
# Seconds without a block (a busy period of the threshold or more) after which the watchdog looks
# only every _CALM_LOOKS thresholds. Not from shorter periods: on a loaded machine a loop thread
# preempted for a scheduler slice or two has busy periods of 10 ms several times a second, and
# each look costs the loop a GIL handover.
_CALM_AFTER = 1.0
_CALM_LOOKS = 2.0
# The GIL switch interval while a loop is blocked, and the time between samples then.
_BLOCK_SWITCH = 0.0005
# The watchdog's wait for a core on waking up from which every core is taken to be busy: then
# it samples at the program's own switch interval, since each GIL handover it forces costs the
# loop thread its wait for a core too.
_CROWDED = 0.001

# perf_counter(), thread CPU seconds, seconds waiting in the run queue
_SchedStat = tuple[float, float, float]
# The watchdog's wait for the GIL on a wake-up that waited for none (see `Watchdog._gil_wait`).
_NO_GIL_WAIT = (0.0, 0.0, 0.0)

_qualname: Callable[[Any], str] = (
    (lambda code: code.co_qualname) if sys.version_info >= (3, 11) else (lambda code: code.co_name)
)


class BusyTracker(Protocol):
    """What the watchdog reads from a loop: written by the loop thread, read by the watchdog.

    A busy period is known by its start time: one float, replaced whole, so the watchdog never
    sees half an update."""

    hook: str
    since: float | None  # perf_counter() start of the current busy period; None while waiting
    # (start, end, CPU clock of the loop thread at the end) of periods at least the threshold
    # long; the loop thread reads its CPU clock only then, so only for blocks.
    completed: deque[tuple[float, float, float]]

    @property
    def handover(self) -> Handover | None:
        """Where the loop thread hands this thread the GIL (None: it cannot)."""


class SelectorProbe:
    """Wraps ``selector.select`` on the instance; `remove` deletes the wrapper again.

    The wrapper is also where the loop thread hands the GIL to the watchdog (`handover`): a
    select() that will not wait (callbacks are ready) once the watchdog's look is due."""

    hook = "blocks"
    # Slots: the wrapper reads and writes these on every loop iteration, and a slot is read
    # through one specialised instruction whatever else is set on the object.
    __slots__ = (
        "_installed", "_selector", "_wrapper", "completed", "handover", "idle", "longest",
        "selects", "since", "wake", "woke_at",
    )  # fmt: skip

    def __init__(self, selector: selectors.BaseSelector, threshold: float, guard: Guard) -> None:
        self._selector = selector
        self.since: float | None = None
        self.completed: deque[tuple[float, float, float]] = deque(maxlen=256)
        self.idle = 0.0  # seconds spent inside select() so far
        self.selects = 0  # calls of select() so far: the loop's iterations
        self.longest = 0.0  # the longest busy period since `take_longest` was last called
        # Set by the watchdog while it sleeps through the loop's idleness: the loop thread
        # sets it (once) as select() returns.
        self.wake: threading.Event | None = None
        # perf_counter() when the loop thread last set `wake`: from then on the watchdog is due
        # to run, and how late it gets the GIL tells a C call holding it.
        self.woke_at: float | None = None
        self.handover = Handover()
        self._installed = False
        self._wrapper = self._make_wrapper(selector.select, threshold, guard)

    def take_longest(self) -> float:
        """The longest busy period that ended since the last call (from the loop thread)."""
        longest, self.longest = self.longest, 0.0
        return longest

    @staticmethod
    def usable(loop: asyncio.AbstractEventLoop) -> str | None:
        """None if `SelectorProbe` can wrap this loop's selector, else why not."""
        selector = getattr(loop, "_selector", None)
        if not isinstance(selector, selectors.BaseSelector):
            return "loop has no Python selector"
        if not hasattr(selector, "__dict__") or "select" in vars(selector):
            return "loop's selector cannot be wrapped"
        return None

    def install(self) -> None:
        self._selector.select = self._wrapper  # type: ignore[method-assign]
        self._installed = True

    def remove(self) -> None:
        """Restore the class's ``select``; the loop thread may be inside the wrapper meanwhile,
        which then finishes normally."""
        if self._installed:
            self._installed = False
            if vars(self._selector).get("select") is self._wrapper:
                del self._selector.select
        self.since = None

    def _make_wrapper(
        self, original: Callable[..., Any], threshold: float, guard: Guard
    ) -> Callable[..., Any]:
        clock = time.perf_counter
        cpu_clock = time.thread_time
        probe = self
        completed = self.completed
        handover = self.handover

        # This runs once per loop iteration, so it is written out rather than put behind
        # Guard.wrap (two more calls per iteration, a third of the wrapper's cost). An error is
        # reported the same way, and the real select always runs.
        def select(timeout: float | None = None) -> Any:
            entered = clock()
            gate = missed = None
            try:
                probe.selects += 1
                since = probe.since
                if since is not None:
                    probe.since = None
                    busy = entered - since
                    if busy > probe.longest:
                        probe.longest = busy
                    if busy >= threshold:
                        completed.append((since, entered, cpu_clock()))
                if timeout == 0 and entered >= handover.due:
                    gate = handover.take()
            except Exception as e:
                guard.failed(probe.hook, e)
            try:
                # Not guarded: a signal handler that runs meanwhile raises the program's own
                # error, which reaches the loop as it would from select().
                if gate is not None and not handover.wait(gate):
                    missed = gate
                return original(timeout)
            finally:
                try:
                    left = clock()
                    probe.idle += left - entered
                    probe.since = left
                    # After `since`: the watchdog sets `wake` before it looks at `since` again.
                    if probe.wake is not None:
                        wake, probe.wake = probe.wake, None
                        probe.woke_at = left
                        handover.due = left + HANDOVER_AFTER
                        wake.set()
                    if missed is not None:
                        handover.put_back(missed, left)
                except Exception as e:
                    guard.failed(probe.hook, e)

        return select


class _Target:
    """A loop the watchdog watches, and what it has gathered about its current busy period."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        loop_id: int,
        thread_id: int,
        tracker: BusyTracker,
        precise: bool,
        native_id: int | None,
    ) -> None:
        self.loop = loop
        self.loop_id = loop_id
        self.thread_id = thread_id
        self.tracker = tracker
        self.precise = precise
        self.schedstat: str | None = (
            None if native_id is None else f"/proc/self/task/{native_id}/schedstat"
        )
        # Opened on first use and read again with pread; the lock keeps a close from another
        # thread (`Watchdog.remove`) from racing a read.
        self._schedstat_fd: int | None = None
        self._schedstat_lock = threading.Lock()
        try:
            self.cpu_clock: int | None = time.pthread_getcpuclockid(thread_id)
        except (AttributeError, OSError):
            self.cpu_clock = None
        # (perf_counter, seconds on CPU, seconds in the run queue) of the thread at the last
        # look while its loop waited: the start of a block the watchdog could only see late.
        self.last_look: _SchedStat | None = None
        # The loop's select() calls at that look: unchanged when a period is first seen, the
        # loop waited from the look to the period's start, and the look's clocks are the
        # period's start's.
        self.look_selects: int | None = None
        self.reset(None)
        # (perf_counter, the probe's idle seconds) at the watchdog's last look, to tell a loop
        # that stayed idle since.
        self.idle_seen: tuple[float, float] | None = None
        # perf_counter() when a block (a busy period of the threshold or more) was last seen
        self.stirred = time.perf_counter()
        self.waiting_seen = False

    def quiet(self, now: float) -> bool:
        """Whether the loop waits in select() now and did for nearly all the time since the
        last look: the watchdog may then sleep until select() returns."""
        tracker = self.tracker
        if not isinstance(tracker, SelectorProbe):
            return False
        waiting_seen, self.waiting_seen = self.waiting_seen, tracker.since is None
        seen, self.idle_seen = self.idle_seen, (now, tracker.idle)
        if tracker.since is not None or seen is None or now <= seen[0]:
            return False
        # The idle clock moves as select() returns: unmoved, one select() call has lasted
        # since the last look (which saw it waiting too, else when it started is unknown).
        idle = tracker.idle - seen[1]
        if idle == 0.0:
            return waiting_seen
        return idle / (now - seen[0]) >= _QUIET_IDLE

    def reset(self, since: float | None) -> None:
        self.since = since
        self.stacks: Counter[tuple[Frame, ...]] = Counter()
        self.seconds: dict[tuple[Frame, ...], float] = {}
        self.samples = 0
        self.held = 0.0  # seconds the watchdog waited for the GIL during the period
        self.sampled_at = since  # perf_counter of the last sample (the period's start at first)
        self.task: str | None = None
        self.route: str | None = None  # of the request served, from the first sample
        # (perf_counter, thread CPU seconds) when the period was first seen.
        self.cpu_first: tuple[float, float] | None = None
        # The clocks at the last look before the period, while the loop waited: the CPU used
        # from then to `cpu_first` bounds what the period used before it was seen.
        self.start_look: _SchedStat | None = None
        # (perf_counter, thread CPU seconds, seconds in the run queue) just after the period's
        # first sample, while it still went on.
        self.runq_first: _SchedStat | None = None

    def cpu_now(self) -> tuple[float, float] | None:
        if self.cpu_clock is None:
            return None
        try:
            return time.perf_counter(), time.clock_gettime(self.cpu_clock)
        except OSError:  # the thread has exited
            self.cpu_clock = None
            return None

    def runq_now(self) -> tuple[float, float, float] | None:
        """(perf_counter, seconds on CPU, seconds waiting in the run queue) of the thread so
        far, from Linux's schedstat; None where there is none."""
        with self._schedstat_lock:
            if self.schedstat is None:
                return None
            try:
                if self._schedstat_fd is None:
                    self._schedstat_fd = os.open(self.schedstat, os.O_RDONLY)
                on_cpu, runq = os.pread(self._schedstat_fd, 128, 0).split()[:2]
                return time.perf_counter(), int(on_cpu) / 1e9, int(runq) / 1e9
            except (OSError, ValueError):  # no /proc, no schedstat, the thread exited
                self._close()
                return None

    def look(self) -> None:
        """Read the thread's clocks while its loop waits for events (Linux: one read of its
        schedstat, exact for a thread that is not running)."""
        self.look_selects = getattr(self.tracker, "selects", None)
        self.last_look = self.runq_now()

    def close(self) -> None:
        """Close the schedstat file for good."""
        with self._schedstat_lock:
            self._close()

    def _close(self) -> None:
        self.schedstat = None
        fd, self._schedstat_fd = self._schedstat_fd, None
        if fd is not None:
            os.close(fd)

    def first_runq(self) -> None:
        """Take the first run-queue reading of the period (CPU time from the thread's CPU
        clock, exact even while it runs), once."""
        if self.runq_first is not None:
            return
        sched = self.runq_now()
        cpu = self.cpu_now()
        if sched is not None:
            self.runq_first = (sched[0], sched[1] if cpu is None else cpu[1], sched[2])

    def runq(self, end: float, duration: float, cpu: float | None, cpu_end: float) -> float | None:
        """The time the thread waited in the run queue during the block ending at ``end``, in
        which it used ``cpu`` seconds of CPU (``cpu_end``: its CPU clock at the end).

        From two readings: the first just after the block's first sample, one now, after its
        end. From the first to the end, the thread's CPU clock gives its time off CPU exactly;
        the run-queue wait (at most that time: whatever it waited after the end is not the
        block's) is measured. Before the first reading, the thread is taken to have waited as
        much per second on CPU as it did after it: a thread that runs waits for a core in
        proportion to the CPU it gets, while one that sleeps (little CPU) waits for none —
        which keeps the wait for a core when a sleep ends, the bulk of what a sleeping thread
        waits, from being spread over the whole sleep."""
        first = self.runq_first
        if first is None:
            return None
        now = self.runq_now()
        if now is None:
            return None
        span = end - first[0]
        on_cpu = max(0.0, cpu_end - first[1])
        waited = min(max(0.0, now[2] - first[2]), max(0.0, span - on_cpu))
        if cpu is None:  # no CPU clock: the rate of waiting seen, over the whole block
            return min(duration, waited / span * duration) if span > _MIN_RUNQ_SPAN else None
        before = max(0.0, cpu - on_cpu) * waited / on_cpu if on_cpu >= _MIN_ON_CPU else 0.0
        look = self.start_look
        start = end - duration
        if look is not None and look[0] <= start < first[0]:
            # At least the wait since the last look while the loop waited, less the time from
            # that look to the block's start (the wait to run as select() returned is in it):
            # a reading taken late in the block sees too little of it to scale up.
            before = max(before, first[2] - look[2] - (start - look[0]))
            before = min(before, max(0.0, first[0] - start - max(0.0, first[1] - (cpu_end - cpu))))
        return min(max(0.0, duration - cpu), waited + before)

    def runq_around(self, look: _SchedStat | None, start: float, duration: float) -> float | None:
        """At most how long the thread waited for a core in a block that began at ``start``,
        from a reading taken at ``look``, before it, and one now: the wait between them, which
        holds the block's, up to the block's length. (For a block no look saw: the watchdog's
        wait for the GIL in it may be the loop thread's wait for a core, holding it.)"""
        if look is None or look[0] > start:
            return None
        now = self.runq_now()
        if now is None:
            return None
        return min(duration, max(0.0, now[2] - look[2]))


class Watchdog:
    """One daemon thread for every observed loop: detects, samples and reports blocks."""

    name = "watchdog"

    def __init__(
        self,
        emit: Callable[[Event], None],
        guard: Guard,
        *,
        threshold: float = 0.02,
        poll: float | None = None,
        sample_interval: float = 0.001,
        skip_files: Collection[str] = (),
        skip_dirs: Collection[str] = (),
    ) -> None:
        self.threshold = threshold
        self._emit = emit
        self._guard = guard
        # Every wake-up of this thread makes it wait for the GIL, which costs the loop thread
        # a handover, so it looks no more often than a block could need sampling.
        self._poll_interval = threshold / 2 if poll is None else poll
        self._sample_interval = sample_interval
        self._skip_files = frozenset(skip_files)
        self._skip_dirs = tuple(os.path.join(d, "") for d in skip_dirs)
        self._targets: dict[int, _Target] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Set by stop(), add(), a quiet loop waking up and a heartbeat handing over the GIL.
        self._wake = threading.Event()
        self._switch: float | None = None  # the program's switch interval while a loop blocks
        self._thread = threading.Thread(target=self._run, name="loopscope-watchdog", daemon=True)
        self._frames: dict[tuple[Any, int], Frame] = {}
        self._skip_cache: dict[str, bool] = {}
        # Until when this thread sleeps, its run-queue wait so far, and the switch interval:
        # Python code on another thread may keep the GIL that long before handing it over, so
        # only lateness beyond it tells a C call holding it.
        self._asleep: tuple[float, float | None, float] = (0.0, None, 0.0)
        self._own: _OwnQueue | None = None
        # (due, woken, seconds): this thread's last wake-up was due at `due` and came at
        # `woken`, after it had waited that many seconds for the GIL (not for a core).
        self._gil_wait: tuple[float, float, float] = _NO_GIL_WAIT
        # Whether this thread waited for a core on its last wake-up: every core is busy.
        self._crowded = False
        # The loops' probes asked to wake this thread from its last sleep through their idleness.
        self._sleeping: list[SelectorProbe] = []
        # The gates left to the loops for this thread's current sleep (see `_handover`).
        self._gates: list[tuple[BusyTracker, Handover, Any]] = []
        # Given the gates at the end of a look, may wake another thread of the agent and pass
        # them on to it to open (True): it then gets the GIL from the waiting loop too.
        self.relay: Callable[[list[Any]], bool] | None = None
        # perf_counter() -> time.time()
        self._wall_offset = time.time() - time.perf_counter()
        # Seconds of garbage collection in a span of perf_counter() time (set by the agent when
        # its gc collector runs): a collection on the loop thread is a block of its own kind.
        self.gc_time: Callable[[float, float], float] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self._restore_switch()
        with self._lock:
            targets = list(self._targets.values())
        for target in targets:
            target.close()

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        loop_id: int,
        thread_id: int,
        tracker: BusyTracker,
        *,
        precise: bool,
        native_id: int | None = None,
    ) -> None:
        """Watch a loop; ``native_id`` is its thread's `threading.get_native_id()`, for the
        run-queue wait (without it, blocks have none)."""
        with self._lock:
            self._targets[loop_id] = _Target(loop, loop_id, thread_id, tracker, precise, native_id)
        if tracker.handover is not None and _gil_enabled():
            # This thread is woken (or starting) now, and will want the GIL from a loop that
            # may be busy from its start.
            self._leave_gate(tracker, time.perf_counter() + HANDOVER_AFTER)
        self._wake.set()

    def remove(self, loop_id: int) -> None:
        """Stop watching a loop, first reporting a block it has finished."""
        with self._lock:
            target = self._targets.pop(loop_id, None)
        if target is not None:
            self._report_completed(target)
            target.close()

    def _run(self) -> None:
        poll = self._guard.wrap(self.name, self._poll, fallback=None)
        own = _OwnQueue()
        self._own = own
        try:
            while not self._stop.is_set():
                wait = poll()
                self._gil_wait = _NO_GIL_WAIT  # told to the blocks it ended in, if any
                if not self._guard.enabled(self.name):
                    return
                wait = self._poll_interval if wait is None else wait
                self._asleep = (time.perf_counter() + wait, own.waited(), sys.getswitchinterval())
                self._leave_gates(wait)
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            own.close()
            self._restore_switch()
            self._leave_gates(None)

    def _leave_gates(self, wait: float | None) -> None:
        """Open the gates of the last sleep (a loop thread may be waiting at one) and leave
        each loop a new one for a sleep of ``wait`` seconds (None: none). Gates are left when
        every core is busy too: a loop thread waiting at one gives its core to this thread."""
        with self._lock:
            left, self._gates = self._gates, []
            trackers = [t.tracker for t in self._targets.values()]
        opened = [gate for _, _, gate in left]
        if wait is not None and _gil_enabled():
            due = time.perf_counter() + wait + HANDOVER_AFTER
            for tracker in trackers:
                if tracker.handover is not None:
                    self._leave_gate(tracker, due)
        else:
            for tracker in trackers:
                if tracker.handover is not None:
                    tracker.handover.clear()
        # Passed on only while every loop waits for events or at its gate (a loop that went on
        # without this thread would have the other wait for the GIL as this one did).
        if (
            wait is not None
            and self.relay is not None
            and all(tracker.since is None or handover.held for tracker, handover, _ in left)
            and self.relay(opened)
        ):
            for _, handover, gate in left:
                handover.relayed = gate
            return
        for gate in opened:
            gate.release()

    def _leave_gate(self, tracker: BusyTracker, due: float) -> None:
        """Leave ``tracker``'s loop a locked gate for this thread's next look, ``due`` then; it
        is opened at the end of that look (`_leave_gates`)."""
        handover = tracker.handover
        assert handover is not None
        gate = threading.Lock()
        gate.acquire()
        with self._lock:
            self._gates.append((tracker, handover, gate))
        handover.leave(gate, due, self._wake)

    def _sleep_through(self, targets: list[_Target]) -> float | None:
        """With every loop quiet, ask each to wake this thread as its select() returns; how
        long to sleep then (None: not every loop is waiting any more)."""
        probes = [t.tracker for t in targets if isinstance(t.tracker, SelectorProbe)]
        self._sleeping = probes
        for probe in probes:
            probe.woke_at = None
            probe.wake = self._wake
        # The loop thread sets `since` before it looks at `wake`: either it saw ours, or we see
        # its `since`.
        if any(probe.since is not None for probe in probes):
            for probe in probes:
                probe.wake = None
            return None
        return _DEEP_SLEEP

    def _held(self, now: float, busy: bool) -> float:
        """Seconds this thread woke late for a reason other than waiting for a core: waiting
        for the GIL, which another thread held without releasing it. Only measured while a
        loop is ``busy`` (it is only counted in a busy period): reading the run queue releases
        the GIL, which a busy loop thread then takes and this thread must take back, a second
        handover in one look."""
        due, queued, switch = self._asleep
        # Woken early by a loop leaving select(): due from that moment, not the sleep's end.
        woke = [p.woke_at for p in self._sleeping if p.woke_at is not None]
        if woke:
            due = min(due, min(woke))
        self._sleeping = []
        late = now - due
        self._crowded = False
        self._gil_wait = _NO_GIL_WAIT
        if not busy or late <= self._sample_interval or queued is None or self._own is None:
            return 0.0
        queued_now = self._own.waited()
        if queued_now is None:
            return 0.0
        self._crowded = queued_now - queued > _CROWDED
        held = max(0.0, late - (queued_now - queued) - switch)
        self._gil_wait = (due, now, held)
        return held

    def _poll(self) -> float | None:
        """Look at every loop once; how long to wait before the next look (None: the poll
        interval). While a loop is in a block, that is the sample interval; while one is busy,
        at most until its busy period is old enough to be sampled."""
        with self._lock:
            targets = list(self._targets.values())
        now = time.perf_counter()
        # Also when a block has ended since the last look: if this thread was due to look
        # during it and waited for the GIL, that block held it (`_block`).
        held = self._held(
            now,
            any(target.tracker.since is not None or target.tracker.completed for target in targets),
        )
        calm = all(now - target.stirred >= _CALM_AFTER for target in targets)
        wait = _CALM_LOOKS * self.threshold if calm else self._poll_interval
        in_block = []
        # Each wake-up of this thread costs the loop a GIL handover: while every loop sleeps in
        # select(), sleep until one of them returns from it.
        quiet = [target.quiet(now) for target in targets]
        if all(quiet):
            deep = self._sleep_through(targets)
            if deep is not None:
                self._restore_switch()
                for target in targets:
                    if target.tracker.since is None:
                        target.look()  # the clocks as the loop's select() returns, near enough
                for target in targets:
                    self._report_completed(target)
                return deep
        for target in targets:
            tracker = target.tracker
            self._report_completed(target)
            if not self._guard.enabled(tracker.hook):
                continue
            since = tracker.since
            if since is None:
                target.look()
                continue
            if since != target.since:
                before = target.last_look
                target.reset(since)
                target.cpu_first = target.cpu_now()
                if before is not None and before[0] <= since:
                    target.start_look = before
                if (
                    before is not None
                    and before[0] <= since
                    and getattr(tracker, "selects", None) == target.look_selects is not None
                ):
                    # No select() call since the look: the loop waited from the look to the
                    # period's start, so the CPU clock read then is the period's start's (its
                    # run-queue wait is not: it includes the wait to run as select() returned,
                    # which is before the period).
                    target.cpu_first = (before[0], before[1])
                elif (
                    before is not None
                    and before[0] <= since
                    and now - since > self.threshold
                    and since - before[0] <= self.threshold
                ):
                    # Seen late: the thread held the GIL (C code that does not release it)
                    # and this thread could not look sooner. The clocks read while the loop
                    # waited, just before the period began, measure all of it, where ones
                    # read now would miss the part this thread could not see.
                    target.cpu_first = (before[0], before[1])
                    target.runq_first = before
            target.held += min(held, now - since)
            # Sampling starts at half the threshold, so that a block just over it has samples
            # too; a busy period that ends below the threshold is forgotten with its samples.
            if now - since >= self.threshold / 2:
                in_block.append(target)
            elif not calm:
                wait = min(wait, since + self.threshold / 2 - now)
            elif now - since >= self.threshold / 10:
                # Calm (no block for a while), and a busy period already a few milliseconds
                # old, longer than a request's work usually takes: look again as it reaches
                # half the threshold, so that a block a look finds young is sampled.
                wait = min(wait, since + self.threshold / 2 - now)
            # else calm, and the period just began, as on a loop under an even load whose busy
            # periods are each a new one at every look: each look costs the loop a GIL
            # handover, so the next one is the calm look, not one at this period's
            # half-threshold (a block is measured exactly by the loop thread either way).
            if now - since >= self.threshold:
                target.stirred = now
        # Sampling fast costs the loop a GIL handover a millisecond: only near a block (from
        # three quarters of the threshold), not in every busy period past half of it (a loaded
        # or preempted loop has many).
        blocked = any(target.since is not None and now - target.since >= 0.75 * self.threshold
                      for target in in_block)  # fmt: skip
        if blocked and not self._crowded:
            self._hand_over_often()
        else:
            self._restore_switch()
        if in_block:
            frames = sys._current_frames()
            for target in in_block:
                frame = frames.get(target.thread_id)
                if target.tracker.since != target.since:
                    continue  # ended while we looked
                samples = target.samples
                if samples == 0:
                    target.task = _task_name(target.loop)
                if target.route is None and samples & (samples - 1) == 0:
                    # Until one is found, at the 1st, 2nd, 4th, 8th... sample: a block that
                    # begins before the framework has matched the request's route (in a
                    # middleware, say) finds it once the endpoint runs.
                    target.route = _route(frame)
                target.samples = samples + 1
                if frame is not None:
                    stack = self._stack(frame)
                    target.stacks[stack] += 1
                    if target.sampled_at is not None:
                        elapsed = max(0.0, now - target.sampled_at)
                        target.seconds[stack] = target.seconds.get(stack, 0.0) + elapsed
                target.sampled_at = now
            del frames, frame
            # After the samples: reading a file lets the loop thread take the GIL, and it may
            # be a while before this thread gets it back.
            for target in in_block:
                if target.samples and target.runq_first is None:
                    target.first_runq()
                    if target.tracker.since != target.since:
                        target.runq_first = None  # not read inside the period
            wait = self._sample_interval if blocked else 2 * self._sample_interval
            if self._crowded:
                # Every core is busy: each sample makes the loop thread hand the GIL over and
                # then wait, off CPU, until this thread gets a core to take it. Sample no more
                # often than the program's own switch interval then, lest the loop thread
                # spend the block waiting for this one.
                wait = max(wait, sys.getswitchinterval())
        return wait

    def _hand_over_often(self) -> None:
        """While a loop is blocked, have threads hand the GIL over every _BLOCK_SWITCH seconds
        instead of the interpreter's switch interval (5 ms by default): a thread burning Python
        code holds the GIL that long each time, and this thread needs it for every sample. Put
        back by `_restore_switch` as soon as no loop is blocked."""
        if self._switch is None:
            current = sys.getswitchinterval()
            if current > _BLOCK_SWITCH:
                self._switch = current
                sys.setswitchinterval(_BLOCK_SWITCH)

    def _restore_switch(self) -> None:
        saved, self._switch = self._switch, None
        # Unless the program set an interval of its own meanwhile.
        if saved is not None and abs(sys.getswitchinterval() - _BLOCK_SWITCH) < 1e-7:
            sys.setswitchinterval(saved)

    def _report_completed(self, target: _Target) -> None:
        completed = target.tracker.completed
        if completed:
            # Before the block is told of: the program may look as soon as it hears of it.
            self._restore_switch()
            target.stirred = time.perf_counter()
        while completed:
            start, end, cpu_end = completed.popleft()
            self._emit(self._block(target, start, end, cpu_end))
            if target.since == start:
                target.reset(None)

    def _block(self, target: _Target, start: float, end: float, cpu_end: float) -> Block:
        duration = end - start
        mine = target.since == start
        cpu = None
        if mine and target.cpu_first is not None:
            # Measured from when the watchdog first saw the period to its end; the few
            # milliseconds before that are assumed to be like the rest.
            first_t, first_cpu = target.cpu_first
            used = max(0.0, cpu_end - first_cpu)
            seen = end - first_t
            if seen > 0:
                before = used / seen * max(0.0, first_t - start)
                look = target.start_look
                if look is not None and look[0] < first_t:
                    # At most what the thread used from the last look while the loop waited:
                    # a thread that waited for a core early in the period used less early.
                    before = min(before, max(0.0, first_cpu - look[1]))
                cpu = min(duration, used + before)
        stacks = target.stacks if mine else Counter()
        # The looks inside the period counted what they waited for the GIL; the wake-up that
        # came after its end did not (the period was over), nor, for a period no look saw,
        # any. Its wait, as far as it fell in the block, is the block's too: the look was due
        # then and could not be taken. Without it a block no look was due in, and one whose
        # every look waited for the GIL, would both be unsampled with nothing held.
        due, woken, waited = self._gil_wait
        held = (target.held if mine else 0.0) + min(
            waited, max(0.0, min(end, woken) - max(start, due))
        )
        runq = target.runq(end, duration, cpu, cpu_end) if mine else None
        samples = target.samples if mine else 0
        if runq is None and samples == 0 and held > 0.0:
            runq = target.runq_around(
                target.start_look if mine else target.last_look, start, duration
            )
        return Block(
            t=start + self._wall_offset,
            loop=target.loop_id,
            duration=duration,
            task=target.task if mine else None,
            cpu=cpu,
            runq=runq,
            samples=samples,
            stacks=tuple(
                Stack(count=n, frames=frames, seconds=round(target.seconds.get(frames, 0.0), 6))
                for frames, n in stacks.most_common(MAX_STACKS)
            ),
            precise=target.precise,
            gc=self.gc_time(start, end) if self.gc_time is not None else 0.0,
            held=round(min(held, duration), 6),
            route=target.route if mine else None,
        )

    def _stack(self, frame: FrameType | None) -> tuple[Frame, ...]:
        out: list[Frame] = []
        cache = self._frames
        if len(cache) > 8192:
            cache.clear()
        while frame is not None and len(out) < MAX_DEPTH:
            code = frame.f_code
            if not self._skipped(code.co_filename):
                key = (code, frame.f_lineno)
                f = cache.get(key)
                if f is None:
                    f = cache[key] = Frame(code.co_filename, frame.f_lineno, _qualname(code))
                out.append(f)
            frame = frame.f_back
        return tuple(out)

    def _skipped(self, filename: str) -> bool:
        skipped = self._skip_cache.get(filename)
        if skipped is None:
            skipped = filename in self._skip_files or filename.startswith(self._skip_dirs)
            self._skip_cache[filename] = skipped
        return skipped


class _OwnQueue:
    """The calling thread's seconds in the run queue so far, from Linux's schedstat; used by
    the watchdog thread alone, which opens and closes it."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._path: str | None = f"/proc/self/task/{threading.get_native_id()}/schedstat"

    def waited(self) -> float | None:
        if self._path is None:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY)
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):  # no /proc, no schedstat
            self.close()
            self._path = None
            return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _gil_enabled() -> bool:
    """Whether threads take turns with a GIL (without one, 3.13+ free-threaded builds, nothing
    waits for it and a loop has nothing to hand over)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def _route(frame: FrameType | None) -> str | None:
    try:
        return route_of(stack_frames(frame))
    except Exception:  # a framework's object that cannot be read: no route
        return None


def _task_name(loop: asyncio.AbstractEventLoop) -> str | None:
    try:
        task = asyncio.current_task(loop)
        return task.get_name() if task is not None else None
    except Exception:
        return None
