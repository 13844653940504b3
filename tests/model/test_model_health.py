"""The model's contention history, task growth by await site, and lost task errors."""

from __future__ import annotations

import pytest

from builders import APP, STDLIB, app, await_site, census, hello, stdlib
from loopscope.events import (
    Frame,
    LoopStarted,
    LoopStopped,
    NeverAwaited,
    Resource,
    TaskError,
    TaskErrors,
)
from loopscope.model import Model
from loopscope.model.trend import slope

SITE = Frame(f"{APP}/handlers.py", 18, "refresh")


def lock(waiters: int, oldest: float, *, id: int = 7, label: str = "Lock locked") -> Resource:
    return Resource(id, "Lock", label, waiters, oldest, site=SITE, kind="lock")


def test_slope_is_the_least_squares_trend() -> None:
    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert slope([(0.0, 5.0), (1.0, 5.0)]) == 0.0
    assert slope([(1.0, 5.0)]) == 0.0
    assert slope([(1.0, 5.0), (1.0, 7.0)]) == 0.0  # no spread in time


def test_a_resource_is_followed_across_censuses() -> None:
    model = Model()
    model.apply(hello(0.0))
    model.apply(census(1.0, resources=[lock(3, 0.2)]))
    model.apply(census(1.5, resources=[lock(9, 0.8, label="Lock locked!")]))
    model.apply(census(2.0))  # no waiters at this census
    model.apply(census(2.5, loop=2))  # another loop's census says nothing about it
    (view,) = model.snapshot().contention
    assert (view.id, view.loop, view.type, view.kind, view.site) == (7, 1, "Lock", "lock", SITE)
    assert view.label == "Lock locked!"
    assert (view.waiters, view.peak, view.censuses) == (0, 9, 2)
    assert (view.first_t, view.last_t) == (1.0, 1.5)
    assert view.samples == ((1.0, 3, 0.2), (1.5, 9, 0.8), (2.0, 0, 0.0))
    assert (view.wait_p50, view.wait_max) == (0.2, 0.8)
    assert view.wait_p99 == 0.8


def test_resources_most_waiters_first_and_a_census_without_waiters_ignored() -> None:
    model = Model()
    model.apply(census(1.0, resources=[lock(2, 0.1, id=1), lock(5, 0.1, id=2), lock(0, 0, id=3)]))
    assert [v.id for v in model.snapshot().contention] == [2, 1]


def test_a_growing_await_site_is_trended() -> None:
    model = Model()
    for i in range(10):
        steady = await_site(30, "serve", "stream_read", 5, 0.1)
        growing = await_site(11, "watch", "sleep", 10 + 4 * i, 1.0)
        model.apply(census(1.0 + 0.5 * i, total=15 + 4 * i, sites=[steady, growing]))
    (growth,) = model.snapshot().site_growth  # the steady site did not grow
    assert (growth.function, growth.line, growth.kind) == ("watch", 11, "sleep")
    assert growth.slope == pytest.approx(8.0)
    assert (growth.count, growth.first, growth.span) == (46, 10, 4.5)


def test_a_site_gone_from_the_census_counts_zero_and_a_stopped_loop_is_forgotten() -> None:
    model = Model()
    for loop in (1, 2):
        model.apply(LoopStarted(0.5, loop, 1, "main", "asyncio.Loop", ("census",)))
    model.apply(census(1.0, sites=[await_site(11, "watch", "sleep", 10, 1.0)]))
    model.apply(census(2.0))
    assert model.snapshot().site_growth == ()  # 10 then 0: not growing
    model.apply(census(3.0, sites=[await_site(11, "watch", "sleep", 20, 1.0)]))
    (growth,) = model.snapshot().site_growth
    assert growth.first == 10 and growth.count == 20
    model.apply(census(3.5, loop=2))
    model.apply(LoopStopped(t=4.0, loop=1))
    assert model.snapshot().site_growth == ()


def test_task_errors_are_aggregated_and_located_in_application_code() -> None:
    model = Model()
    model.apply(hello(0.0))
    raised = app(12, "send_metric", "metrics.py")
    stack = (stdlib("socket.py", 800, "create_connection"), raised, app(40, "handle"))
    created = (stdlib("asyncio/tasks.py", 380, "create_task"), app(41, "handle"))
    error = TaskError("send_metric", "ConnectionError", "refused", 2, stack, created)
    model.apply(TaskErrors(t=1.0, loop=1, errors=(error,)))
    model.apply(TaskErrors(t=2.0, loop=1, errors=(error,), dropped=3))
    other = TaskError("poll", "KeyError", "'x'", 1, (app(7, "poll"),))
    model.apply(TaskErrors(t=2.5, loop=1, errors=(other,)))
    first, second = model.snapshot().task_errors
    assert (first.coroutine, first.error, first.count) == ("send_metric", "ConnectionError", 4)
    assert first.location == raised
    assert first.created == app(41, "handle")
    assert (first.first_t, first.last_t) == (1.0, 2.0)
    assert first.stack == stack
    assert (second.coroutine, second.count, second.created) == ("poll", 1, None)
    assert STDLIB in stack[0].file


def test_never_awaited_coroutines_are_counted_by_place() -> None:
    model = Model()
    here = app(15, "record_order")
    model.apply(NeverAwaited(t=1.0, coroutine="write_audit", frame=here))
    model.apply(NeverAwaited(t=2.0, coroutine="write_audit", frame=here, dropped=4))
    model.apply(NeverAwaited(t=3.0, coroutine="notify", frame=None))
    snapshot = model.snapshot()
    first, second = snapshot.never_awaited
    assert (first.coroutine, first.location, first.count) == ("write_audit", here, 2)
    assert first.frame == here
    assert (first.first_t, first.last_t) == (1.0, 2.0)
    assert (second.coroutine, second.location) == ("notify", None)
    assert snapshot.never_awaited_dropped == 4


def test_a_coroutine_dropped_in_library_code_has_no_location_but_keeps_the_frame() -> None:
    model = Model()
    model.apply(hello(0.0))
    inside = stdlib("asyncio/events.py", 84, "Handle._run")
    model.apply(NeverAwaited(t=1.0, coroutine="write_audit", frame=inside))
    (never,) = model.snapshot().never_awaited
    assert (never.location, never.frame) == (None, inside)
