"""The loop thread hands the GIL to the watchdog (and through it to the server thread) at a
point of its own, rather than have them wait for it by a race.

A thread waiting for the GIL is woken each time the holder lets go of it and starts its wait
over. A loop that is never idle lets go only for an instant at a time (each select() call), so
the waiter rarely won, and was woken on most of the loop's iterations for as long as it waited
(3,000 wake-ups a second under task churn, each a system call and an interrupt of another core
for the loop thread). So the watchdog leaves each loop a locked gate and the time its next look
is due, `HANDOVER_AFTER` past it (a loop that waited for events meanwhile gave it the GIL
already); at its next handover point after that (a select() that will not wait, or on uvloop,
whose selector cannot be wrapped, the lag heartbeat, which wakes the watchdog for it) the loop
thread waits for the watchdog to look and open the gate, GIL released, at most `HANDOVER_WAIT`.
"""

from __future__ import annotations

import threading
from typing import Any

HANDOVER_AFTER = 0.001
HANDOVER_WAIT = 0.001
# How much longer the loop waits when the watchdog has passed the gate on to the server thread
# (see `Watchdog.relay`), which sends the summaries in 0.3-1 ms.
RELAY_WAIT = 0.002
# A gate the watchdog did not open in time (it had no core, say) is put back for a later
# handover point, each time twice as far off (2 ms, then 4, ...), at most this many times:
# without that the watchdog waits for the GIL through the loop's iterations until it wins a
# race. Once: each try can hold the loop for HANDOVER_WAIT when every core is busy elsewhere.
HANDOVER_RETRIES = 1
NEVER = float("inf")


class Handover:
    """One loop's gate: set by the watchdog as it goes to sleep, taken by the loop thread."""

    # Slots: the loop thread reads `due` on each iteration.
    __slots__ = ("due", "gate", "held", "missed", "relayed", "waker")

    def __init__(self) -> None:
        # A lock the watchdog holds and opens after its next look, and when that look is due
        # (perf_counter()).
        self.gate: Any = None
        self.due = NEVER
        # The gate the watchdog passed on to another thread of the agent to open.
        self.relayed: Any = None
        # How many times the loop thread has put the current gate back, unopened.
        self.missed = 0
        # True while the loop thread waits at a gate.
        self.held = False
        # What wakes the watchdog from the sleep it left the gate for.
        self.waker: threading.Event | None = None

    def leave(self, gate: Any, due: float, waker: threading.Event) -> None:
        """Leave a new gate (the watchdog)."""
        self.missed = 0
        self.waker = waker
        self.gate = gate
        self.due = due

    def clear(self) -> None:
        """Leave no gate (the watchdog)."""
        self.gate, self.due = None, NEVER

    def take(self) -> Any:
        """The gate, taken by the loop thread once `due` is past (None: there is none)."""
        gate, self.gate = self.gate, None
        self.due = NEVER
        return gate

    def take_early(self, now: float, until: float) -> Any:
        """The gate, taken by the loop thread at a handover point ``until`` seconds before its
        next one (None: there is none, or it is not due by then). A point that comes seldom
        (the heartbeat's, every few milliseconds) takes it before it is due, when the next
        point would be after: then it wakes the watchdog for its look, still asleep until
        HANDOVER_AFTER before `due`."""
        due = self.due
        if now + until < due:
            return None
        gate = self.take()
        waker = self.waker
        if gate is not None and waker is not None and now < due - HANDOVER_AFTER:
            waker.set()
        return gate

    def wait(self, gate: Any) -> bool:
        """Wait at a taken gate until it opens, at most HANDOVER_WAIT (and RELAY_WAIT more for
        a gate passed on); whether it opened. Not to be guarded: an error a signal handler
        raises meanwhile is the program's own, and reaches the loop as it would have anyway."""
        self.held = True
        try:
            return gate.acquire(True, HANDOVER_WAIT) or (
                self.relayed is gate and gate.acquire(True, RELAY_WAIT)
            )
        finally:
            self.held = False

    def put_back(self, gate: Any, now: float) -> None:
        """Put a gate that did not open back for a later handover point, unless the watchdog
        has looked since (it opened the gate, or left a new one). It may leave one between
        these lines: that gate is then lost, and its next look has none."""
        if self.gate is None and gate.locked() and self.missed < HANDOVER_RETRIES:
            self.missed += 1
            self.gate = gate
            self.due = now + HANDOVER_AFTER * (1 << self.missed)
