from __future__ import annotations

import pytest

from builders import await_site, census, lifecycle
from loopscope.events import Event, LoopStarted, LoopStopped, Resource
from loopscope.model import Model
from loopscope.model._model import MAX_LOOPS


def fed(*events: Event) -> Model:
    model = Model()
    for e in events:
        model.apply(e)
    return model


def test_census_of_two_loops_is_merged() -> None:
    a = census(
        10.0,
        loop=1,
        total=30,
        by_state={"waiting": 28, "ready": 1, "running": 1},
        by_kind={"sleep": 20, "lock": 8},
        sites=[
            await_site(12, "handle", "lock", 8, 0.5),
            await_site(20, "tick", "sleep", 20, 1.0),
        ],
        resources=[Resource(id=1, type="Lock", label="Lock locked", waiters=8, oldest=0.5)],
    )
    b = census(
        10.1,
        loop=2,
        total=12,
        by_state={"waiting": 12},
        by_kind={"lock": 12},
        sites=[await_site(12, "handle", "lock", 12, 2.0)],
        resources=[Resource(id=2, type="Queue", label="Queue maxsize=1", waiters=12, oldest=2)],
    )
    snap = fed(a, b).snapshot()
    assert snap.tasks.total == 42
    assert snap.tasks.by_state == {"waiting": 40, "ready": 1, "running": 1}
    assert snap.tasks.by_kind == {"sleep": 20, "lock": 20}
    # The same site on both loops is one row; rows are most tasks first.
    assert [(s.function, s.count, s.oldest) for s in snap.await_sites] == [
        ("handle", 20, 2.0),
        ("tick", 20, 1.0),
    ]
    assert [(r.id, r.waiters) for r in snap.resources] == [(2, 12), (1, 8)]


def test_the_latest_census_of_a_loop_replaces_its_previous_one() -> None:
    model = fed(
        census(10.0, total=100, sites=[await_site(1, "old", "sleep", 100, 1.0)]),
        census(10.5, total=7, sites=[await_site(2, "new", "lock", 7, 0.1)]),
    )
    snap = model.snapshot()
    assert snap.tasks.total == 7
    assert [s.function for s in snap.await_sites] == ["new"]
    # One that arrives late does not undo the newer one.
    model.apply(census(10.2, total=55))
    assert model.snapshot().tasks.total == 7


def started(loop: int, t: float = 0.0) -> LoopStarted:
    return LoopStarted(
        t=t, loop=loop, thread_id=loop, thread_name="t", loop_class="L", features=("census",)
    )


def test_a_stopped_loop_no_longer_counts() -> None:
    model = fed(
        started(1), started(2), census(10.0, loop=1, total=5), census(10.0, loop=2, total=6)
    )
    model.apply(LoopStopped(t=11.0, loop=2))
    snap = model.snapshot()
    assert snap.tasks.total == 5
    assert snap.tasks.series[-1] == (11.0, 5)


def test_the_last_loop_to_stop_keeps_the_final_picture_until_a_new_loop_starts() -> None:
    model = fed(started(1), census(10.0, loop=1, total=5, sites=[await_site(3, "f", "lock", 5, 1)]))
    model.apply(LoopStopped(t=11.0, loop=1))
    snap = model.snapshot()
    assert snap.tasks.total == 5
    assert len(snap.await_sites) == 1
    model.apply(started(2, t=12.0))
    model.apply(census(12.5, loop=2, total=2))
    assert model.snapshot().tasks.total == 2
    assert model.snapshot().await_sites == ()


def test_a_program_that_keeps_making_loops_lists_a_bounded_number() -> None:
    model = Model()
    for i in range(200):
        model.apply(started(i, t=float(i)))
        model.apply(LoopStopped(t=i + 0.5, loop=i))
    loops = model.snapshot().loops
    assert len(loops) <= MAX_LOOPS + 1
    assert loops[-1].loop == 199


def test_task_series_has_a_point_per_census_instant() -> None:
    model = fed(
        census(10.0, loop=1, total=5),
        census(10.01, loop=2, total=6),  # the same instant, another loop
        census(10.5, loop=1, total=8),
    )
    assert model.snapshot().tasks.series == ((10.01, 11), (10.5, 14))


def test_created_and_finished_per_second_over_the_last_ten_seconds() -> None:
    events = [lifecycle(float(t), created=100, finished=100) for t in range(1, 21)]
    # The last ten seconds created 5 a second on loop 1 and 2 a second on loop 2.
    events += [lifecycle(float(t), created=5, finished=4, failed=1) for t in range(21, 31)]
    events += [lifecycle(float(t), created=2, loop=2) for t in range(21, 31)]
    tasks = fed(*events).snapshot().tasks
    assert tasks.created_per_s == pytest.approx(7.0)
    assert tasks.finished_per_s == pytest.approx(4.0)
    assert tasks.failed_per_s == pytest.approx(1.0)


def test_rates_early_in_a_session_use_the_time_covered() -> None:
    tasks = fed(lifecycle(1.0, created=10), lifecycle(2.0, created=10)).snapshot().tasks
    assert tasks.created_per_s == pytest.approx(10.0)


def test_top_created_counts_the_whole_session() -> None:
    tasks = (
        fed(
            lifecycle(1.0, created=3, created_by={"handle": 2, "tick": 1}),
            lifecycle(2.0, created=3, created_by={"handle": 3}),
        )
        .snapshot()
        .tasks
    )
    assert tasks.top_created == (("handle", 5), ("tick", 1))


def test_no_census_yet() -> None:
    snap = Model().snapshot()
    assert snap.tasks.total == 0
    assert snap.tasks.created_per_s == 0.0
    assert snap.await_sites == ()
    assert snap.resources == ()


def test_await_sites_and_coroutine_names_are_bounded() -> None:
    sites = [await_site(i, f"f{i}", "sleep", 1, 0.1) for i in range(500)]
    model = fed(census(10.0, total=500, sites=sites))
    for i in range(5000):
        model.apply(lifecycle(10.0 + i, created=1, created_by={f"coro{i}": 1}))
    snap = model.snapshot()
    assert len(snap.await_sites) <= 50
    assert len(model._tasks._created_by) <= 2001
    assert len(model._tasks._lifecycle) <= 12
