"""The model's gc and executor views and its per-second timeline."""

from __future__ import annotations

import dataclasses

import pytest

from builders import app, await_site, block, census, hello, lag, lifecycle, stdlib
from loopscope.events import ExecutorSample, GcPause, GcWindow, Submitter, lag_bucket
from loopscope.model import Model
from loopscope.model._timing import TIMELINE_SECONDS


def gc_window(
    t: float,
    pauses: list[tuple[float, float, int]] = (),  # type: ignore[assignment]
    *,
    collections: tuple[int, int, int] = (10, 1, 0),
    pause: float | None = None,
    stack: tuple = (),  # type: ignore[type-arg]
) -> GcWindow:
    listed = tuple(
        GcPause(t=start, duration=d, generation=g, collected=0, stack=stack)
        for start, d, g in pauses
    )
    return GcWindow(
        t=t,
        window=1.0,
        collections=collections,
        pause=sum(p.duration for p in listed) if pause is None else pause,
        max=max((p.duration for p in listed), default=0.0005),
        collected=3,
        uncollectable=0,
        pauses=listed,
        threshold=(700, 10, 10),
        frozen=0,
    )


def sample(
    t: float,
    *,
    queued: int = 0,
    busy: int = 0,
    waits: tuple[float, ...] = (),
    submitters: tuple[Submitter, ...] = (),
    loop: int = 1,
) -> ExecutorSample:
    buckets = [0] * (max((lag_bucket(w) for w in waits), default=-1) + 1)
    for w in waits:
        buckets[lag_bucket(w)] += 1
    return ExecutorSample(
        t=t,
        loop=loop,
        window=0.5,
        max_workers=4,
        workers=4,
        busy=busy,
        queued=queued,
        oldest=0.3 if queued else None,
        submitted=len(waits),
        started=len(waits),
        wait_buckets=tuple(buckets),
        wait_max=max(waits, default=0.0),
        run=0.05 * len(waits),
        submitters=submitters,
    )


def model(*events: object) -> Model:
    m = Model()
    m.apply(hello(0.0))
    for e in events:
        m.apply(e)  # type: ignore[arg-type]
    return m


def test_no_gc_or_executor_data_gives_empty_views() -> None:
    s = model(lag(1.0, [0.001])).snapshot()
    assert s.gc.windows == 0 and s.gc.longest == ()
    assert s.executor.samples == 0 and s.executor.wait_p99 is None


def test_gc_view_adds_up_windows_and_keeps_the_longest_pauses() -> None:
    handler = (app(12, "remember"), stdlib("asyncio/events.py", 80, "Handle._run"))
    s = model(
        gc_window(2.0, [(1.2, 0.08, 2), (1.5, 0.002, 0)], collections=(50, 5, 1), stack=handler),
        gc_window(3.0, [(2.4, 0.03, 2)], collections=(40, 4, 1), stack=handler[1:]),
    ).snapshot()
    gc = s.gc
    assert gc.windows == 2
    assert gc.collections == (90, 9, 2)
    assert gc.pause == pytest.approx(0.112)
    assert gc.max == pytest.approx(0.08)
    assert [p.duration for p in gc.longest] == [0.08, 0.03, 0.002]
    assert gc.longest[0].location == app(12, "remember")
    assert gc.longest[1].location is None  # no application frame: no location
    assert gc.listed == pytest.approx(0.112)
    (site,) = gc.sites
    assert (site.function, site.pauses, site.seconds) == ("remember", 2, pytest.approx(0.082))


def test_gc_pauses_land_in_the_second_they_started() -> None:
    s = model(
        lag(1.5, [0.001]),
        lag(2.5, [0.09]),
        gc_window(3.0, [(2.2, 0.085, 2)], pause=0.095),
    ).snapshot()
    bins = {b.t: b for b in s.timeline}
    assert bins[2.0].gc_max == pytest.approx(0.085)
    assert bins[2.0].gc_full == 1
    # The collections too short to be listed count in the window's middle second.
    assert bins[2.0].gc_pause == pytest.approx(0.095)
    assert bins[1.0].gc_pause == 0.0


def test_timeline_bins_merge_lag_blocks_creation_and_executor() -> None:
    s = model(
        lag(5.25, [0.001] * 20, busy=0.5),
        lag(5.5, [0.001] * 20 + [0.04], busy=1.0, ready=7),
        block(5.3, 0.04, [app(3, "work")]),
        lifecycle(5.9, window=0.5, created=300),
        sample(5.6, queued=3, busy=4),
        sample(5.9, queued=1, busy=2),
    ).snapshot()
    b = next(b for b in s.timeline if b.t == 5.0)
    assert b.heartbeats == 41
    assert b.lag_max == pytest.approx(0.04)
    assert b.busy == pytest.approx(0.75)
    assert b.ready == 7
    assert (b.blocks, b.blocked) == (1, pytest.approx(0.04))
    assert b.created == 300
    assert (b.executor_queued, b.executor_busy, b.executor_workers) == (3, 4, 4)


def test_a_lifecycle_window_longer_than_a_second_is_spread_over_its_seconds() -> None:
    # A calm loop's lifecycle windows grow to seconds: put in one second, 1,000 tasks made at
    # an even rate would look like a burst there and leave the next second without a count.
    s = model(lag(12.0, [0.001]), lifecycle(12.0, window=2.0, created=1000)).snapshot()
    bins = {b.t: b.created for b in s.timeline}
    assert (bins[10.0], bins[11.0]) == (500, 500)
    s = model(lag(12.0, [0.001]), lifecycle(11.5, window=1.0, created=300)).snapshot()
    bins = {b.t: b.created for b in s.timeline}
    assert (bins[10.0], bins[11.0]) == (150, 150)


def test_the_timeline_keeps_the_last_minutes_only() -> None:
    m = model(*(lag(float(t), [0.001]) for t in range(1, 700)))
    timeline = m.snapshot().timeline
    assert len(timeline) <= TIMELINE_SECONDS + 1
    assert timeline[-1].t == 698.0


def test_executor_view_over_the_session() -> None:
    where = Submitter("/srv/app/db.py", 7, "lookup", 5, "slow_query")
    s = model(
        sample(1.0, queued=0, busy=1, waits=(0.001,)),
        sample(1.5, queued=5, busy=4, waits=(0.2, 0.3), submitters=(where,)),
        sample(2.0, queued=2, busy=4, waits=(0.4,), submitters=(where,)),
    ).snapshot()
    ex = s.executor
    assert ex.samples == 3
    assert ex.backlog_samples == 2
    assert (ex.queued_max, ex.queued) == (5, 2)
    assert ex.queued_mean == pytest.approx(7 / 3)
    assert ex.started == 4
    assert ex.wait_max == pytest.approx(0.4)
    assert ex.wait_p50 is not None and 0.15 <= ex.wait_p50 <= 0.3
    assert ex.wait_p99 == pytest.approx(0.4)
    (sub,) = ex.submitters
    assert (sub.function, sub.count, sub.work) == ("lookup", 10, "slow_query")


def test_functions_seen_remember_every_await_site() -> None:
    s = model(
        census(1.0, sites=[await_site(20, "deliver", "sleep", 900, 0.5)]),
        census(2.0, sites=[await_site(30, "broadcast", "sleep", 1, 0.1)]),
    ).snapshot()
    assert [f.function for f in s.functions_seen] == ["deliver", "broadcast"]
    assert s.functions_seen[0].line == 20


@pytest.mark.parametrize(("gc", "cause"), [(0.03, "gc"), (0.02, "cpu")])
def test_a_block_mostly_spent_collecting_is_a_gc_block(gc: float, cause: str) -> None:
    b = block(1.0, 0.05, [app(24, "remember_requests")])
    s = model(dataclasses.replace(b, gc=gc)).snapshot()
    (hot,) = s.blocks.hot
    assert hot.cause == cause
    assert s.blocks.recent[0].cause == cause


def test_a_collection_with_no_stack_sampled_is_still_gc() -> None:
    b = dataclasses.replace(block(1.0, 0.08), gc=0.079)
    assert model(b).snapshot().blocks.hot[0].cause == "gc"
