"""The timing rules on snapshots of hand-built sessions: saturation (LS201), gc pauses (LS301),
executor backlog (LS611) and lag variability (LS901), each threshold from both sides."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import replace

import pytest

from builders import app, await_site, block, census, hello, lag, lifecycle, stdlib
from loopscope.events import Event, ExecutorSample, GcPause, GcWindow, Submitter, lag_bucket
from loopscope.model import Model
from loopscope.model.snapshot import Snapshot
from loopscope.rules import blocking, evaluate, executor, gc_pauses, saturation, variability
from loopscope.rules.finding import FAMILIES, Finding

CALM = [0.0003] * 25  # a quarter second of heartbeats on an idle loop


def session(
    *events: Event | Iterable[Event], until: float | None = None, start: float = 0.0
) -> Snapshot:
    m = Model()
    m.apply(hello(start))
    flat: list[Event] = []
    for e in events:
        flat.extend([e] if isinstance(e, Event) else e)
    for e in sorted(flat, key=lambda e: e.t):
        m.apply(e)
    if until is not None:
        m.apply(lag(until, CALM))
    return m.snapshot()


def second(
    t: int, lags: Sequence[float] = CALM, *, busy: float | None = 0.1, spike: float | None = None
) -> list[Event]:
    """Four lag windows covering second ``t``; ``spike`` adds one late heartbeat to the last."""
    out = []
    for k in range(4):
        beats = list(lags) + ([spike] if spike is not None and k == 3 else [])
        out.append(lag(t + 0.25 * (k + 1), beats, busy=busy))
    return out


def seconds(first: int, n: int, lags: Sequence[float] = CALM, **kw: float | None) -> list[Event]:
    return [e for t in range(first, first + n) for e in second(t, lags, **kw)]


def only(findings: Sequence[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


HANDLER = app(17, "handle_request", "server.py")


# -- LS201 saturation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("busy", "saturated", "calm", "reported"),
    [
        (0.86, 3, 3, True),  # 3 seconds, half of those measured
        (0.84, 6, 0, False),  # not busy enough
        (0.95, 2, 0, False),  # too short
        (0.95, 3, 4, False),  # less than half of the seconds measured
        (0.95, 4, 4, True),
    ],
)
def test_saturation_thresholds(busy: float, saturated: int, calm: int, reported: bool) -> None:
    s = session(seconds(1, calm, busy=0.2), seconds(1 + calm, saturated, busy=busy))
    assert bool(saturation.check(s)) is reported


def test_saturation_names_the_hot_frame_and_what_it_creates() -> None:
    s = session(
        seconds(1, 5, [0.004] * 25, busy=0.97),
        [block(2.0 + i, 0.025, [HANDLER]) for i in range(3)],
        lifecycle(5.0, created=9000, created_by={"handle_request": 9000}),
    )
    f = only(saturation.check(s))
    assert (f.code, f.family, f.severity) == ("LS201", "saturation", "warning")
    assert f.location is not None and f.location.function == "handle_request"
    assert "handle_request" in f.title and "97%" in f.title
    assert f.evidence["seconds"] == 5
    assert f.evidence["hot_frames"] == ["handle_request (server.py:17)"]
    assert f.evidence["top_created"] == [["handle_request", 9000]]
    assert f.evidence["blocked_share"] == pytest.approx(0.075 / (5 * 0.97), abs=0.01)


def test_saturation_without_blocks_has_no_location() -> None:
    f = only(saturation.check(session(seconds(1, 5, busy=0.99))))
    assert f.location is None


def test_saturation_without_blocks_names_the_coroutine_it_runs() -> None:
    s = session(
        seconds(1, 5, busy=0.99),
        lifecycle(5.0, created=9000, created_by={"handle_request": 9000}),
        census(3.0, sites=[await_site(21, "handle_request", "sleep", 90, 0.001)]),
    )
    f = only(saturation.check(s))
    assert f.location is not None
    assert (f.location.function, f.location.line) == ("handle_request", 21)
    assert "handle_request" in f.title


def test_saturation_does_not_name_the_code_that_allocated_when_collections_came() -> None:
    # The loop is busy with its handlers; the task-creating loop got the collections' pauses.
    creator = app(30, "accept_requests")
    collections = [replace(block(2.0 + i, 0.025, [creator]), gc=0.024) for i in range(3)]
    s = session(
        seconds(1, 5, busy=0.99),
        collections,
        lifecycle(5.0, created=9000, created_by={"handle_request": 9000}),
        census(3.0, sites=[await_site(21, "handle_request", "sleep", 90, 0.001)]),
    )
    assert [h.cause for h in s.blocks.hot] == ["gc"]
    f = only(saturation.check(s))
    assert f.location is not None and f.location.function == "handle_request"
    assert "runs mostly `handle_request` tasks" in f.title


def test_saturation_is_an_error_when_lag_suffers_too() -> None:
    slow = [0.001] * 20 + [0.15] * 5
    assert only(saturation.check(session(seconds(1, 4, slow, busy=0.96)))).severity == "error"
    assert only(saturation.check(session(seconds(1, 4, slow, busy=0.94)))).severity == "warning"


@pytest.mark.parametrize(("duration", "reported"), [(0.06, False), (0.045, True)])
def test_saturation_explained_by_long_blocks_is_left_to_ls101(
    duration: float, reported: bool
) -> None:
    # Every saturated second is 70% blocks: long ones explain it, short ones do not.
    n = round(0.7 / duration)
    blocks = [block(t + i * duration, duration, [HANDLER]) for t in range(1, 5) for i in range(n)]
    s = session(seconds(1, 4, busy=0.95), blocks)
    assert bool(saturation.check(s)) is reported


# -- LS301 gc pauses -------------------------------------------------------------------------


def gc_window(
    t: float,
    pauses: Sequence[tuple[float, float]] = (),
    *,
    cpu: float | None = None,
    pause: float | None = None,
    full: int | None = None,
    stack: Sequence = (),  # type: ignore[type-arg]
    uncollectable: int = 0,
) -> GcWindow:
    listed = tuple(
        GcPause(t=start, duration=d, generation=2, collected=10, stack=tuple(stack), cpu=cpu)
        for start, d in pauses
    )
    return GcWindow(
        t=t,
        window=1.0,
        collections=(100, 10, len(listed) if full is None else full),
        pause=sum(p.duration for p in listed) if pause is None else pause,
        max=max((p.duration for p in listed), default=0.0008),
        collected=1000,
        uncollectable=uncollectable,
        pauses=listed,
        threshold=(700, 10, 10),
    )


ALLOC = (app(23, "remember_requests", "service.py"), stdlib("asyncio/events.py", 80, "Handle._run"))


@pytest.mark.parametrize(
    ("pauses", "reported"),
    [
        ([0.02, 0.02, 0.02], True),
        ([0.02, 0.02, 0.0199], False),
        ([0.3, 0.3], False),  # long, but only twice in a minute
    ],
)
def test_gc_long_pause_thresholds(pauses: list[float], reported: bool) -> None:
    s = session(
        [gc_window(i + 1.5, [(i + 1.0, d)]) for i, d in enumerate(pauses)],
        seconds(1, 3),
        until=60.0,
    )
    assert bool(gc_pauses.check(s)) is reported


@pytest.mark.parametrize(("cpu", "reported"), [(None, True), (0.02, True), (0.019, False)])
def test_gc_long_pauses_count_by_their_cpu_time_where_known(
    cpu: float | None, reported: bool
) -> None:
    # 86 ms of wall time: on a busy machine most of it may be waiting for a core.
    windows = [gc_window(t + 1.5, [(t + 1.0, 0.086)], cpu=cpu) for t in range(3)]
    assert bool(gc_pauses.check(session(windows, seconds(1, 3), until=60.0))) is reported


@pytest.mark.parametrize(("share", "reported"), [(0.0501, True), (0.0499, False)])
def test_gc_share_of_time_threshold(share: float, reported: bool) -> None:
    # Many short collections, none listed as long: 10 s of session.
    windows = [gc_window(t + 1.0, pause=share) for t in range(10)]
    findings = gc_pauses.check(session(windows, until=10.0))
    assert bool(findings) is reported
    if reported:
        assert only(findings).severity == "info"  # no long pause, no lag spike explained


def test_gc_finding_explains_lag_spikes_and_names_the_allocating_code() -> None:
    pauses = [(t + 0.4, 0.08) for t in range(1, 6)]
    s = session(
        [gc_window(t + 1.0, [p], stack=ALLOC) for t, p in zip(range(1, 6), pauses, strict=True)],
        [e for t in range(1, 6) for e in second(t, spike=0.085)],
        seconds(8, 2, spike=0.03),  # two lag spikes with no collection behind them
        until=20.0,
    )
    f = only(gc_pauses.check(s))
    assert (f.code, f.family, f.severity) == ("LS301", "gc", "warning")
    assert f.location is not None and f.location.function == "remember_requests"
    assert "remember_requests" in f.title
    assert f.evidence["long_pauses"] == 5
    assert f.evidence["lag_spikes"] == 7
    assert f.evidence["lag_spikes_explained_share"] == pytest.approx(5 / 7, abs=0.001)
    assert f.evidence["sites"] == ["remember_requests (service.py:23)"]
    assert "gc.freeze()" in f.fix and "remember_requests" in f.fix


def test_gc_without_an_application_frame_has_no_location() -> None:
    s = session([gc_window(t + 1.0, [(t + 0.5, 0.05)]) for t in range(3)], until=10.0)
    f = only(gc_pauses.check(s))
    assert f.location is None
    assert f.evidence["sites"] == []


@pytest.mark.parametrize(
    ("longest", "total", "severity"),
    [(0.25, 0.3, "error"), (0.24, 0.3, "warning"), (0.05, 1.0, "error")],
)
def test_gc_severity(longest: float, total: float, severity: str) -> None:
    # 10 s of session; the rest of ``total`` in short collections.
    windows = [gc_window(t + 1.0, [(t + 0.5, longest)]) for t in range(3)]
    windows.append(gc_window(5.0, pause=max(0.0, total - 3 * longest)))
    assert only(gc_pauses.check(session(windows, until=10.0))).severity == severity


@pytest.mark.parametrize(
    ("longest", "short_total", "severity"),
    [
        (0.05, 0.0, "warning"),  # 3 collections a request's latency shows on their own
        (0.049, 0.0, "info"),  # 3 of 20-50 ms: what a few thousand live tasks make
        (0.049, 0.36, "warning"),  # ... but collecting takes 5% of the time as well
        (0.049, 0.34, "info"),
    ],
)
def test_gc_warning_needs_severe_pauses_or_a_share_of_the_time(
    longest: float, short_total: float, severity: str
) -> None:
    # 10 s of session; the lag spikes the collections make go with them.
    windows = [gc_window(t + 1.0, [(t + 0.5, longest)], cpu=longest) for t in range(1, 4)]
    windows.append(gc_window(5.0, pause=short_total))
    spikes = [e for t in range(1, 4) for e in second(t, spike=longest)]
    assert only(gc_pauses.check(session(windows, spikes, until=10.0))).severity == severity


def test_gc_mentions_uncollectable_objects() -> None:
    windows = [gc_window(t + 1.0, [(t + 0.5, 0.05)], uncollectable=4) for t in range(3)]
    assert "gc.garbage" in only(gc_pauses.check(session(windows, until=10.0))).fix


# -- LS611 executor backlog ------------------------------------------------------------------


def sample(
    t: float,
    *,
    queued: int = 0,
    busy: int = 4,
    waits: Sequence[float] = (),
    submitters: tuple[Submitter, ...] = (),
    oldest: float | None = None,
) -> ExecutorSample:
    buckets = [0] * (max((lag_bucket(w) for w in waits), default=-1) + 1)
    for w in waits:
        buckets[lag_bucket(w)] += 1
    return ExecutorSample(
        t=t,
        loop=1,
        window=0.5,
        max_workers=4,
        workers=4,
        busy=busy,
        queued=queued,
        oldest=oldest,
        submitted=len(waits),
        started=len(waits),
        wait_buckets=tuple(buckets),
        wait_max=max(waits, default=0.0),
        run=0.05 * len(waits),
        submitters=submitters,
    )


LOOKUP = Submitter("/srv/app/db.py", 7, "fetch_profile", 10, "load_profile_blocking")


@pytest.mark.parametrize(
    ("backlogged", "others", "busy", "reported"),
    [
        (3, 7, 4, True),  # 3 of 10 samples
        (2, 4, 4, False),  # too few
        (3, 8, 4, False),  # 3 of 11: under 30%
        (5, 0, 3, False),  # queued, but a worker was free (about to take it)
    ],
)
def test_executor_backlog_thresholds(
    backlogged: int, others: int, busy: int, reported: bool
) -> None:
    samples = [sample(1 + i * 0.5, queued=5, busy=busy) for i in range(backlogged)]
    samples += [sample(10 + i * 0.5, queued=0, busy=1) for i in range(others)]
    assert bool(executor.check(session(samples))) is reported


@pytest.mark.parametrize(
    ("n", "wait", "reported"), [(20, 0.1, True), (19, 0.1, False), (20, 0.09, False)]
)
def test_executor_wait_thresholds(n: int, wait: float, reported: bool) -> None:
    # One sample saw work queued with every worker busy: too few for a backlog on their own.
    s = session(sample(1.0, waits=[wait] * n, busy=4, queued=1), sample(1.5, busy=1))
    assert bool(executor.check(s)) is reported


def test_executor_waits_with_a_thread_free_in_every_sample_are_no_backlog() -> None:
    # The hand-off to a free thread waited (a loaded machine keeps it from a core): the default
    # executor's size is not the problem, as for any other pool.
    s = session(sample(1.0, waits=[0.115] * 30, busy=1, queued=1), sample(1.5, busy=2))
    assert executor.check(s) == []


def test_executor_finding_names_the_submitting_code() -> None:
    samples = [
        sample(1 + i * 0.5, queued=30, waits=[0.3] * 8, submitters=(LOOKUP,), oldest=0.4)
        for i in range(6)
    ]
    f = only(executor.check(session(samples)))
    assert (f.code, f.family, f.severity) == ("LS611", "executor", "warning")
    assert f.location is not None
    assert (f.location.file, f.location.line, f.location.function) == (
        "/srv/app/db.py",
        7,
        "fetch_profile",
    )
    assert "fetch_profile" in f.title and "4 threads" in f.title
    assert f.evidence["work"] == "load_profile_blocking"
    assert f.evidence["queued_max"] == 30 and f.evidence["backlog_share"] == 1.0
    assert f.evidence["wait_p99_s"] == pytest.approx(0.3, rel=0.2)
    assert "load_profile_blocking" in f.fix and "Semaphore" in f.fix


def test_executor_error_when_work_waits_a_second() -> None:
    s = session(sample(1.0, waits=[1.0] * 20, busy=4, queued=3))
    assert only(executor.check(s)).severity == "error"
    s = session(sample(1.0, waits=[0.9] * 20, busy=4, queued=3, oldest=1.2))
    assert only(executor.check(s)).severity == "error"
    s = session(sample(1.0, waits=[0.9] * 20, busy=4, queued=3, oldest=0.5))
    assert only(executor.check(s)).severity == "warning"


def test_executor_location_falls_back_to_the_await_site() -> None:
    samples = [sample(1 + i * 0.5, queued=3) for i in range(4)]
    site = census(2.0, sites=[await_site(31, "fetch_profile", "executor", 12, 0.4)])
    f = only(executor.check(session(samples, site)))
    assert f.location is not None and f.location.function == "fetch_profile"


def test_each_pool_is_judged_on_its_own_and_the_anyio_fix_fits_a_sync_endpoint() -> None:
    endpoint = Submitter("/srv/app/api.py", 30, "customer", 40, "customer")
    crm = Submitter("/srv/app/api.py", 26, "fetch_customer", 12)
    busy_anyio = [
        replace(
            sample(1 + i * 0.5, queued=20, busy=4, waits=[0.4] * 8, submitters=(endpoint,)),
            pool="anyio worker threads",
            running=(crm,),
        )
        for i in range(6)
    ]
    calm_default = [sample(1 + i * 0.5, queued=0, busy=1) for i in range(6)]
    f = only(executor.check(session([*busy_anyio, *calm_default])))
    assert f.location is not None and f.location.function == "customer"
    assert f.title.startswith("anyio worker threads backlog: `customer` waits")
    assert f.evidence["pool"] == "anyio worker threads"
    assert f.evidence["busy_threads_run"] == ["fetch_customer (api.py:26) x72"]  # 6 samples
    assert "async def" in f.fix and "total_tokens" in f.fix and "fetch_customer" in f.fix


def test_waits_with_a_thread_free_are_no_backlog_of_anyios_threads() -> None:
    # A loaded machine delays the hand-off; the pool, with threads to spare, is not the cause.
    samples = [
        replace(sample(1 + i * 0.5, queued=0, busy=2, waits=[0.3] * 8), pool="anyio worker threads")
        for i in range(6)
    ]
    assert executor.check(session(samples)) == []


def test_a_pool_of_the_programs_own_gets_its_own_finding() -> None:
    pool = "ThreadPoolExecutor 'db' (max_workers=4)"
    samples = [
        replace(sample(1 + i * 0.5, queued=9, waits=[0.3] * 8, submitters=(LOOKUP,)), pool=pool)
        for i in range(6)
    ]
    f = only(executor.check(session(samples)))
    assert f.title.startswith(f"{pool} backlog: work from `fetch_profile`")
    assert "max_workers" in f.fix and "default executor" not in f.fix


# -- LS901 variability -----------------------------------------------------------------------


def spiky(
    first: int, n: int, spike: float, lags: Sequence[float] = CALM, busy: float | None = 0.1
) -> list[Event]:
    """``n`` seconds, each with four heartbeats (4%) late by ``spike``."""
    return [
        lag(t + 0.25 * (k + 1), [*lags, spike], busy=busy)
        for t in range(first, first + n)
        for k in range(4)
    ]


def bursts(*at: int) -> list[Event]:
    """A thousand ``deliver`` tasks created in each second of ``at``."""
    return [lifecycle(t + 1.0, created=1000, created_by={"deliver": 1000}) for t in at]


@pytest.mark.parametrize(
    ("spike", "spiky_seconds", "calm_seconds", "reported"),
    [
        (0.012, 3, 3, True),
        (0.009, 3, 3, False),  # p99 under 10 ms
        (0.012, 2, 4, False),  # spikes in only two seconds
        (0.012, 3, 0, False),  # under 4 seconds measured
    ],
)
def test_variability_thresholds(
    spike: float, spiky_seconds: int, calm_seconds: int, reported: bool
) -> None:
    first = 1 + calm_seconds
    s = session(
        seconds(1, calm_seconds),
        spiky(first, spiky_seconds, spike),
        bursts(*range(first, first + spiky_seconds)),
    )
    assert bool(variability.check(s)) is reported


def test_variability_needs_p99_well_above_p50() -> None:
    # Every heartbeat late by 4 ms: p99 15 ms is not 5 times p50.
    assert variability.check(session(spiky(1, 6, 0.015, [0.004] * 25), bursts(1, 3, 5))) == []
    assert variability.check(session(spiky(1, 6, 0.015, [0.002] * 25), bursts(1, 3, 5)))


@pytest.mark.parametrize(
    ("in_spikes", "in_calm", "reported"),
    [
        ((4, 5, 6), (), True),
        # Busy threads go with the spike in their own second and the next one; a calm second
        # is judged on its own.
        ((5,), (), True),  # 2 of 3 spike seconds: at least 60%
        ((6,), (), False),  # 1 of 3
        ((4, 5, 6), (0, 1), True),  # 100% of spike seconds against 50% of calm ones
        ((4, 5, 6), (1, 2, 3), False),  # against 75%: too little lift
    ],
)
def test_variability_cause_thresholds(
    in_spikes: tuple[int, ...], in_calm: tuple[int, ...], reported: bool
) -> None:
    threads = [sample(t + 0.5, busy=2, waits=[0.001]) for t in (*in_spikes, *in_calm)]
    s = session(seconds(0, 4), spiky(4, 3, 0.03), threads)
    assert bool(variability.check(s)) is reported


@pytest.mark.parametrize(
    ("created", "reported"),
    [
        ({4: 1000, 5: 1000, 6: 1000}, True),
        ({4: 199, 5: 199, 6: 199}, False),  # too few to be a burst
        # As many in every second: a steady rate, no burst.
        ({t: 1000 for t in range(7)}, False),
        # 1.5 times the quiet level (the first quartile of the seconds): a burst.
        ({**{t: 1000 for t in range(4)}, 4: 1500, 5: 1500, 6: 1500}, True),
        ({**{t: 1000 for t in range(4)}, 4: 1499, 5: 1499, 6: 1499}, False),
    ],
)
def test_variability_task_creation_thresholds(created: dict[int, int], reported: bool) -> None:
    made = [lifecycle(t + 1.0, created=n, created_by={"deliver": n}) for t, n in created.items()]
    s = session(seconds(0, 4), spiky(4, 3, 0.03), made)
    assert bool(variability.check(s)) is reported


@pytest.mark.parametrize(
    ("in_spikes", "reported"),
    [
        ((1, 3, 5, 7), True),  # 8 of 9 spike seconds (each burst and the second after it)
        ((1, 4, 7), False),  # 6 of 9: with no calm seconds to compare with, not enough
    ],
)
def test_variability_cause_with_no_calm_seconds(in_spikes: tuple[int, ...], reported: bool) -> None:
    s = session(spiky(1, 9, 0.03), bursts(*in_spikes))
    assert bool(variability.check(s)) is reported


def test_variability_steady_creation_is_no_burst_beside_the_partly_counted_ends() -> None:
    # A steady rate, spikes in 5 of 6 seconds (no calm seconds to compare with): the session's
    # first and last seconds, counted only in part, are not the quiet level.
    made = [
        lifecycle(t + 1.0, created=n, created_by={"deliver": n})
        for t, n in {0: 300, **{t: 1000 for t in range(1, 5)}, 5: 400}.items()
    ]
    s = session(seconds(0, 1), spiky(1, 5, 0.03), made)
    assert variability.check(s) == []
    bursty = [replace(e, created=1600, created_by={"deliver": 1600}) for e in made[2:5]]
    assert variability.check(session(seconds(0, 1), spiky(1, 5, 0.03), made, bursty))


def test_variability_counts_calm_seconds_whatever_their_heartbeats() -> None:
    # The heartbeat slows down on a calm loop: a calm second has a few beats, a busy one many.
    # The two calm seconds still count: bursts go with 3 of the 4 spike seconds (the second
    # after a burst's, too) and with neither calm one.
    s = session(
        [lag(0.75, CALM), lag(1.5, CALM[:2]), lag(2.5, CALM[:2]), lag(7.5, CALM)],
        spiky(3, 4, 0.03, CALM * 2),
        bursts(3, 6),
        start=0.5,
    )
    f = only(variability.check(s))
    assert (f.evidence["seconds"], f.evidence["spike_seconds"]) == (8, 4)
    assert f.evidence["goes_with"] == ["task_creation"]


def test_variability_from_bursts_of_task_creation_names_the_coroutine() -> None:
    bursts = [lifecycle(t + 1.0, created=1000, created_by={"deliver": 1000}) for t in range(4, 8)]
    s = session(
        seconds(1, 3),
        spiky(4, 4, 0.03),
        seconds(8, 3),
        bursts,
        census(9.0, sites=[await_site(20, "deliver", "sleep", 900, 0.5)]),
    )
    f = only(variability.check(s))
    assert (f.code, f.family, f.severity) == ("LS901", "variability", "warning")
    assert f.evidence["goes_with"] == ["task_creation"]
    assert f.location is not None and (f.location.function, f.location.line) == ("deliver", 20)
    assert "deliver" in f.title and "Semaphore" in f.fix


def test_variability_without_a_cause_is_not_reported() -> None:
    # Tasks are created at the same rate in calm seconds: nothing to tell from them.
    steady = [lifecycle(t + 1.0, created=1000, created_by={"deliver": 1000}) for t in range(1, 9)]
    assert variability.check(session(seconds(1, 4), spiky(5, 4, 0.03), steady)) == []


def test_variability_explained_by_gc_defers_to_ls301() -> None:
    windows = [gc_window(t + 1.0, [(t + 0.6, 0.06)], stack=ALLOC) for t in range(4, 8)]
    s = session(seconds(1, 3), spiky(4, 4, 0.06), seconds(8, 3), windows)
    assert gc_pauses.check(s)
    f = only(variability.check(s))
    assert f.severity == "info"
    assert f.evidence["goes_with"][0] == "gc" and f.evidence["see"] == ["LS301"]
    assert f.location is not None and f.location.function == "remember_requests"


def test_variability_with_executor_threads_names_the_work() -> None:
    samples = [sample(t + 0.5, busy=2, waits=[0.001], submitters=(LOOKUP,)) for t in range(4, 8)]
    s = session(seconds(1, 3), spiky(4, 4, 0.03), seconds(8, 3), samples)
    f = only(variability.check(s))
    assert f.evidence["goes_with"] == ["executor"] and f.severity == "warning"
    assert f.location is not None and f.location.function == "fetch_profile"
    assert "load_profile_blocking" in f.title


# -- all rules ------------------------------------------------------------------------------


def test_a_calm_session_has_no_timing_findings() -> None:
    s = session(
        seconds(1, 20, busy=0.2),
        [gc_window(t + 1.0, pause=0.002) for t in range(20)],
        [sample(t + 0.5, busy=1, waits=[0.001] * 3) for t in range(20)],
    )
    assert evaluate(s) == ()


def test_every_finding_uses_a_known_family_and_json() -> None:
    s = session(
        seconds(1, 6, [0.004] * 25, busy=0.99),
        [gc_window(t + 1.0, [(t + 0.5, 0.3)]) for t in range(4)],
        [sample(1 + i * 0.5, queued=9, waits=[2.0] * 20) for i in range(4)],
        spiky(7, 4, 0.05),
    )
    findings = evaluate(s)
    assert {f.code for f in findings} >= {"LS201", "LS301", "LS611"}
    for f in findings:
        assert f.family in FAMILIES
        assert f.to_json()["evidence"] == f.evidence


def test_blocks_that_were_garbage_collections_are_left_to_ls301() -> None:
    gc_blocks = [dataclasses.replace(block(1.0 + i, 0.08, [ALLOC[0]]), gc=0.075) for i in range(4)]
    cpu_blocks = [block(1.0 + i, 0.08, [ALLOC[0]]) for i in range(4)]
    assert blocking.check(session(gc_blocks, until=10.0)) == []
    assert blocking.check(session(cpu_blocks, until=10.0))


@pytest.mark.parametrize(("n", "severity"), [(3, "info"), (2, None)])
def test_variability_from_blocks_defers_to_ls101(n: int, severity: str | None) -> None:
    # Blocks are spikes: only as many as LS101 reports explain them (it wants 3).
    stalls = [block(4.2 + i, 0.03, [HANDLER]) for i in range(0, 2 * n, 2)][:n]
    s = session(seconds(0, 4), spiky(4, 3, 0.03), seconds(7, 1), spiky(8, 1, 0.03), stalls)
    findings = variability.check(s)
    if severity is None:
        assert findings == []
    else:
        f = only(findings)
        assert f.severity == severity and f.evidence["see"] == ["LS101"]
        assert f.location is not None and f.location.function == "handle_request"


@pytest.mark.parametrize(("blocked", "leading"), [(0.04, "blocks"), (0.01, "saturation")])
def test_variability_in_seconds_that_blocks_kept_busy_leads_with_the_blocks(
    blocked: float, leading: str
) -> None:
    # A handler that blocks for most of each second (a synchronous HTTP call on every request):
    # its seconds are busy, and on a busy machine busier, but what makes the spikes is the blocks.
    stalls = [block(t + 0.05 * k, blocked, [HANDLER]) for t in range(4, 8) for k in range(20)]
    s = session(seconds(1, 3), spiky(4, 4, 0.06, busy=0.9), seconds(8, 3), stalls)
    f = only(variability.check(s))
    assert f.evidence["goes_with"][0] == leading, f.evidence
    if leading == "blocks":
        assert f.severity == "info" and f.evidence["see"] == ["LS101"]
