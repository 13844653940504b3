from __future__ import annotations

import pytest

from builders import lag
from loopscope.events import LoopStarted, LoopStopped, lag_bucket, lag_bucket_upper
from loopscope.model import LAG_SERIES_SECONDS, RECENT_SECONDS, Model
from loopscope.model._lag import percentile


def fed(*events: object) -> Model:
    model = Model()
    for e in events:
        model.apply(e)  # type: ignore[arg-type]
    return model


def test_percentiles_come_from_the_histogram_and_max_is_exact() -> None:
    # 98 heartbeats about 0.5 ms late, 2 about 40 ms late: p50 is in 0.5 ms's bucket, p99 in
    # 40 ms's, and the maximum is the exact one.
    lags = [0.0005] * 98 + [0.040, 0.0415]
    view = fed(lag(10.0, lags)).snapshot().lag
    assert view.p50 == pytest.approx(lag_bucket_upper(lag_bucket(0.0005)))
    assert 0.0005 <= view.p50 < 0.0005 * 2**0.25
    assert view.p99 is not None and 0.040 <= view.p99 <= 0.0415
    assert view.max == 0.0415
    assert view.session_max == 0.0415
    assert view.heartbeats == 100


def test_a_percentile_never_exceeds_the_exact_max() -> None:
    buckets = [0] * 40
    buckets[lag_bucket(0.030)] = 10
    assert lag_bucket_upper(lag_bucket(0.030)) > 0.030
    assert percentile(buckets, 0.99, 0.030) == 0.030
    assert percentile([], 0.5, 0.0) is None


def test_histograms_of_all_recent_windows_are_merged() -> None:
    # One window is slow at its own p99 (2 of 10), but over 400 heartbeats 2 are 0.5%: the
    # recent p99 is fast, while the maximum keeps the slow one.
    events = [lag(10.0 + i * 0.25, [0.001] * 10) for i in range(39)]
    events.append(lag(20.0, [0.001] * 8 + [0.080, 0.080]))
    view = fed(*events).snapshot().lag
    assert view.series[-1].p99 == 0.080
    assert view.p99 == pytest.approx(lag_bucket_upper(lag_bucket(0.001)))
    assert view.max == 0.080
    # Once 1% of them are slow, p99 is the slow bucket (capped at the exact max).
    events.append(lag(20.25, [0.001] * 8 + [0.080, 0.080]))
    assert fed(*events).snapshot().lag.p99 == 0.080


def test_recent_figures_cover_only_the_last_ten_seconds() -> None:
    old = lag(100.0, [0.200])
    new = [lag(100.0 + RECENT_SECONDS + 1 + i, [0.002] * 10) for i in range(3)]
    view = fed(old, *new).snapshot().lag
    assert view.max == 0.002
    assert view.p99 == pytest.approx(0.002, rel=0.2)
    assert view.session_max == 0.200  # the session keeps it
    assert len(view.series) == 4  # the series reaches further back


def test_no_lag_data_gives_none() -> None:
    view = Model().snapshot().lag
    assert (view.p50, view.p99, view.max, view.session_max, view.busy) == (None,) * 5
    assert view.series == ()
    assert view.heartbeats == 0


def test_series_has_one_point_per_window_for_the_last_minute_only() -> None:
    events = [lag(1000.0 + i * 0.25, [0.001 * (1 + i % 3)]) for i in range(480)]  # 120 s
    view = fed(*events).snapshot().lag
    latest = events[-1].t
    assert view.series[-1].t == latest
    assert all(latest - p.t <= LAG_SERIES_SECONDS for p in view.series)
    assert len(view.series) == int(LAG_SERIES_SECONDS / 0.25) + 1
    assert [p.t for p in view.series] == sorted(p.t for p in view.series)


def test_windows_of_two_loops_make_one_point() -> None:
    events = []
    for i in range(8):
        events.append(lag(10.0 + i * 0.25, [0.001] * 25, loop=1, busy=0.2))
        events.append(lag(10.01 + i * 0.25, [0.050] + [0.001] * 24, loop=2, busy=0.6))
    view = fed(*events).snapshot().lag
    assert len(view.series) == 8
    assert all(p.max == 0.050 for p in view.series)
    assert all(p.busy == pytest.approx(0.4) for p in view.series)
    assert view.heartbeats == 400


def test_busy_is_weighted_by_window_and_ready_is_summed_over_loops() -> None:
    model = fed(
        *(
            LoopStarted(t=9.0, loop=n, thread_id=n, thread_name="t", loop_class="L", features=())
            for n in (1, 2)
        ),
        lag(10.0, [0.001], loop=1, window=0.25, busy=1.0, ready=3),
        lag(10.5, [0.001], loop=2, window=0.75, busy=0.0, ready=4),
    )
    view = model.snapshot().lag
    assert view.busy == pytest.approx(0.25)
    assert view.ready == 7
    model.apply(LoopStopped(t=11.0, loop=2))
    assert model.snapshot().lag.ready == 3


def test_hours_of_windows_stay_bounded() -> None:
    model = Model()
    for i in range(4 * 3600):  # one hour of 250 ms windows
        model.apply(lag(i * 0.25, [0.001, 0.002]))
    lag_state = model._lag
    assert len(lag_state._windows) <= LAG_SERIES_SECONDS / 0.25 + 1
    assert len(lag_state._points) <= LAG_SERIES_SECONDS / 0.25 + 1
    assert model.snapshot().lag.heartbeats == 2 * 4 * 3600
