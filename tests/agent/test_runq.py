"""The run-queue wait of a block: reading the loop thread's schedstat, and the estimate."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

import pytest

from loopscope.agent._blocks import _Target


class _Tracker:
    hook = "blocks"
    since: float | None = None
    completed: deque[tuple[float, float, float]] = deque()
    handover = None


def target(native_id: int | None) -> _Target:
    loop = asyncio.new_event_loop()
    loop.close()
    return _Target(loop, 1, threading.get_ident(), _Tracker(), True, native_id)


def test_the_schedstat_of_a_thread_is_read_until_closed() -> None:
    t = target(threading.get_native_id())
    first = t.runq_now()
    if first is None:
        pytest.skip("no /proc/<pid>/task/<tid>/schedstat here")
    # The kernel brings a running thread's figure up to date at its scheduler ticks, not at
    # every read: burn CPU until it moves, within a deadline.
    deadline = time.monotonic() + 10
    second = t.runq_now()
    while second is not None and second[1] == first[1] and time.monotonic() < deadline:
        sum(range(200_000))
        second = t.runq_now()
    assert second is not None
    assert second[0] > first[0] and second[1] > first[1] and second[2] >= first[2]
    t.close()
    assert t.runq_now() is None


def test_a_thread_without_schedstat_has_no_run_queue_wait() -> None:
    t = target(None)
    assert t.runq_now() is None
    t.first_runq()
    assert t.runq(1.05, 0.05, 0.04, 10.0) is None
    gone = target(2**22 + 12345)  # no such thread
    assert gone.runq_now() is None
    assert gone.schedstat is None  # not tried again


def estimate(
    *, cpu_at_first: float, runq_at_first: float, runq_now: float, cpu_end: float, cpu: float
) -> float | None:
    """A 50 ms block from t=1.00 to 1.05, first read at 1.02, read again at 1.06."""
    t = target(None)
    t.runq_first = (1.02, cpu_at_first, runq_at_first)
    t.runq_now = lambda: (1.06, 0.0, runq_now)  # type: ignore[method-assign]
    return t.runq(1.05, 0.05, cpu, cpu_end)


def test_a_burn_that_waited_for_a_core() -> None:
    # From the first reading to the end (30 ms): 10 ms on CPU, 20 ms waiting for a core; before
    # it, 6 ms on CPU and so 12 ms waiting.
    runq = estimate(cpu_at_first=5.0, runq_at_first=2.0, runq_now=2.020, cpu_end=5.010, cpu=0.016)
    assert runq == pytest.approx(0.032)
    # Waiting after the end is not the block's: no more than the time off CPU is counted.
    runq = estimate(cpu_at_first=5.0, runq_at_first=2.0, runq_now=2.025, cpu_end=5.010, cpu=0.016)
    assert runq == pytest.approx(0.032)
    # And never more than the block's time off CPU.
    runq = estimate(cpu_at_first=5.0, runq_at_first=2.0, runq_now=2.020, cpu_end=5.010, cpu=0.04)
    assert runq == pytest.approx(0.01)


def test_the_wait_for_a_core_when_a_sleep_ends_is_not_spread_over_the_sleep() -> None:
    # Off CPU nearly all the time since the first reading, 4 ms of it waiting for a core when
    # the sleep ended.
    runq = estimate(cpu_at_first=5.0, runq_at_first=2.0, runq_now=2.004, cpu_end=5.0001, cpu=0.0003)
    assert runq == pytest.approx(0.004)


def test_a_thread_that_stayed_on_cpu_waited_for_nothing() -> None:
    runq = estimate(cpu_at_first=5.0, runq_at_first=2.0, runq_now=2.0, cpu_end=5.03, cpu=0.05)
    assert runq == 0.0


def test_without_cpu_time_the_rate_of_waiting_is_extrapolated() -> None:
    t = target(None)
    t.runq_first = (1.02, 5.0, 2.0)
    t.runq_now = lambda: (1.06, 0.0, 2.015)  # type: ignore[method-assign]
    assert t.runq(1.05, 0.05, None, 5.0) == pytest.approx(0.025)
    t.runq_first = (1.049, 5.0, 2.0)  # too short a span to say
    assert t.runq(1.05, 0.05, None, 5.0) is None


def test_without_a_first_reading_there_is_no_estimate() -> None:
    t = target(None)
    t.runq_now = lambda: (1.06, 0.0, 2.015)  # type: ignore[method-assign]
    assert t.runq(1.05, 0.05, 0.02, 5.0) is None
