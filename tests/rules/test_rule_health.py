"""LS601 contention, LS701 task leak, LS801/LS802 lost exceptions: each threshold from both
sides, on hand-built snapshots."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from builders import APP, app
from loopscope.events import Frame
from loopscope.model import Model
from loopscope.model.snapshot import (
    ContentionView,
    NeverAwaitedView,
    SiteGrowth,
    Snapshot,
    TaskErrorView,
)
from loopscope.rules import contention, evaluate, exception, leak
from loopscope.rules.finding import FAMILIES, Finding

SITE = Frame(f"{APP}/cache.py", 18, "Cache.refresh")


def empty() -> Snapshot:
    return Model().snapshot()


def with_(**fields: Any) -> Snapshot:
    return dataclasses.replace(empty(), **fields)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


# ---------------------------------------------------------------------------------------------
# LS601


def resource(
    waiters: list[int],
    *,
    oldest: float = 0.3,
    every: float = 0.5,
    kind: str = "lock",
    type: str = "Lock",
) -> ContentionView:
    samples = tuple((1.0 + i * every, n, oldest if n else 0.0) for i, n in enumerate(waiters))
    seen = [s for s in samples if s[1]]
    return ContentionView(
        id=7,
        loop=1,
        type=type,
        label=f"{type} locked",
        kind=kind,
        site=SITE,
        waiters=waiters[-1],
        peak=max(waiters),
        first_t=seen[0][0] if seen else 0.0,
        last_t=seen[-1][0] if seen else 0.0,
        censuses=len(seen),
        wait_p50=oldest,
        wait_p99=oldest,
        wait_max=oldest if seen else 0.0,
        samples=samples,
    )


@pytest.mark.parametrize(
    ("waiters", "every", "reported"),
    [
        ([3, 3, 3, 3], 0.5, True),  # 4 censuses in a row over 1.5 s
        ([3, 3, 3, 3], 0.49, False),  # 4 censuses, but under 1.5 s
        ([3, 3, 3], 1.0, False),  # 2 s, but 3 censuses
        ([2, 2, 2, 2, 2, 2], 0.5, False),  # under 3 waiters
        ([3, 3, 0, 3, 3, 0, 3, 3], 0.5, False),  # never 4 in a row
        ([0, 5, 9, 12, 9, 0], 0.5, True),
    ],
)
def test_contention_sustained_waiters(waiters: list[int], every: float, reported: bool) -> None:
    findings = contention.check(with_(contention=(resource(waiters, every=every),)))
    assert bool(findings) is reported


@pytest.mark.parametrize(("oldest", "reported"), [(0.25, True), (0.24, False), (0.0, False)])
def test_contention_sustained_waiters_must_wait(oldest: float, reported: bool) -> None:
    # A busy lock found with waiters at every census, each through before the next one: no
    # waiter is seen to last, nobody queues for long.
    findings = contention.check(with_(contention=(resource([7] * 6, oldest=oldest),)))
    assert bool(findings) is reported


@pytest.mark.parametrize(
    ("oldest", "censuses", "reported"),
    [(1.0, 2, True), (0.99, 2, False), (3.0, 1, False)],
)
def test_contention_a_long_wait(oldest: float, censuses: int, reported: bool) -> None:
    view = resource([1] * censuses, oldest=oldest)
    assert bool(contention.check(with_(contention=(view,)))) is reported


@pytest.mark.parametrize(
    ("kind", "type", "reported"),
    [
        ("lock", "Lock", True),
        ("semaphore", "BoundedSemaphore", True),
        ("queue_put", "Queue", True),
        ("queue_get", "Queue", False),  # idle consumers
        ("event", "Event", False),  # waiting for a signal
        ("condition", "Condition", False),
        ("", "Semaphore", True),  # a census without kinds: by type
        ("", "Event", False),
    ],
)
def test_contention_only_for_waits_that_contend(kind: str, type: str, reported: bool) -> None:
    view = resource([10] * 6, kind=kind, type=type)
    assert bool(contention.check(with_(contention=(view,)))) is reported


@pytest.mark.parametrize(
    ("oldest", "peak", "kind", "severity"),
    [
        (4.99, 99, "lock", "warning"),
        (5.0, 3, "lock", "error"),
        (0.3, 100, "lock", "error"),
        (0.3, 100, "semaphore", "warning"),  # many queued on a bound may be deliberate
        (5.0, 3, "semaphore", "error"),
        (0.3, 500, "queue_put", "warning"),
    ],
)
def test_contention_severity(oldest: float, peak: int, kind: str, severity: str) -> None:
    view = resource([3, 3, 3, peak], oldest=oldest, kind=kind)
    assert only(contention.check(with_(contention=(view,)))).severity == severity


def test_contention_finding_names_the_await_site_and_fix_by_kind() -> None:
    view = resource([0, 5, 19, 19, 19, 12])
    finding = only(contention.check(with_(contention=(view,))))
    assert (finding.code, finding.family) == ("LS601", "contention")
    assert finding.location is not None
    assert (finding.location.file, finding.location.line) == (SITE.file, SITE.line)
    assert finding.title.startswith("`refresh` waits on a contended Lock at cache.py:18")
    evidence = finding.evidence
    assert (evidence["waiters_now"], evidence["waiters_peak"]) == (12, 19)
    assert evidence["sustained_s"] == 2.0
    assert evidence["wait_max_s"] == 0.3 and evidence["censuses"] == 5
    assert evidence["site"] == "Cache.refresh (cache.py:18)"
    assert "do not await slow I/O" in finding.fix
    semaphore = resource([5] * 6, kind="semaphore", type="Semaphore")
    assert "bound" in only(contention.check(with_(contention=(semaphore,)))).fix
    queue = resource([5] * 6, kind="queue_put", type="Queue")
    queued = only(contention.check(with_(contention=(queue,))))
    assert "consumers" in queued.fix and "full Queue" in queued.title
    nowhere = dataclasses.replace(view, site=None)
    assert only(contention.check(with_(contention=(nowhere,)))).location is None


def test_a_finding_names_the_routes_whose_requests_wait_in_its_function() -> None:
    view = resource([0, 5, 19, 19, 19, 12])
    waits = (("GET /profile/{uid}", ("Cache.refresh", "profile")), ("GET /health", ("health",)))
    finding = only(evaluate(with_(contention=(view,), route_waits=waits)))
    assert finding.evidence["routes"] == ["GET /profile/{uid}"]
    # No route waited there: none named.
    unrelated = (("GET /health", ("health",)),)
    assert "routes" not in only(evaluate(with_(contention=(view,), route_waits=unrelated))).evidence


# ---------------------------------------------------------------------------------------------
# LS701


def series(values: list[float], every: float = 0.5) -> tuple[tuple[float, int], ...]:
    return tuple((100.0 + i * every, round(v)) for i, v in enumerate(values))


def tasks(values: list[float], every: float = 0.5, **fields: Any) -> Snapshot:
    snap = empty()
    view = dataclasses.replace(
        snap.tasks, series=series(values, every), total=round(values[-1]), **fields
    )
    return dataclasses.replace(snap, tasks=view)


LINEAR = [10 + 5 * i for i in range(9)]  # 10 -> 50 over 4 s: +40, 10/s


def test_leak_a_steady_rise() -> None:
    assert leak.growing(series(LINEAR)) == pytest.approx((10.0, 4.0, 10.0))
    finding = only(leak.check(tasks(LINEAR)))
    assert (finding.code, finding.family, finding.severity) == ("LS701", "leak", "warning")
    assert finding.location is None  # no growing site known
    assert finding.evidence["tasks_per_second"] == 10.0 and finding.evidence["growth"] == 40.0


@pytest.mark.parametrize(
    ("values", "every", "reported"),
    [
        (LINEAR, 0.5, True),
        (LINEAR, 0.37, False),  # spans 2.96 s: under 3 s
        (LINEAR[:5], 1.0, False),  # 5 points: under 6
        ([10 + 2.4 * i for i in range(9)], 0.5, False),  # grows 19.2: under 20 tasks
        ([10 + 2.5 * i for i in range(9)], 0.5, True),  # grows 20
        ([1000 + 12 * i for i in range(9)], 0.5, False),  # 96 on 1000: under 10%
        ([1000 + 13 * i for i in range(9)], 0.5, True),  # 104 on 1000
    ],
)
def test_leak_span_points_and_growth(values: list[float], every: float, reported: bool) -> None:
    assert bool(leak.check(tasks(values, every))) is reported


def test_leak_not_a_ramp_that_levels_off_nor_a_sawtooth_nor_a_fall() -> None:
    ramp = [10, 60, 100, 100, 101, 99, 100, 100, 100, 100, 101, 100]
    assert leak.check(tasks(ramp)) == []
    saw = [10, 40, 70, 100, 10, 40, 70, 100, 10, 40, 70, 100]
    assert leak.check(tasks(saw)) == []
    assert leak.check(tasks(list(reversed(LINEAR)))) == []
    # the same rise with noise on it still counts
    noisy = [v + (6 if i % 2 else -6) for i, v in enumerate(LINEAR)]
    assert leak.check(tasks(noisy))
    # A service whose load starts 2 s late: one step from idle to its 22 requests in flight,
    # with a census that caught a moment between requests. Its means (and medians) rise in every
    # third of the span.
    step = [2, 2, 2, 2, 2, 2, 22, 22, 2, 22, 22, 22]
    assert leak.check(tasks(step)) == []
    # A leak in batches, one every second, still grows in every quarter.
    batches = [10, 10, 35, 35, 60, 60, 85, 85, 110, 110]
    assert leak.check(tasks(batches))


def test_leak_names_the_site_that_grows_and_the_error_bound() -> None:
    growing = SiteGrowth(f"{APP}/conn.py", 11, "watch_connection", "sleep", 46, 9.5, 4.0, 6)
    slow = SiteGrowth(f"{APP}/conn.py", 30, "serve", "stream_read", 4, 2.0, 4.0, 1)
    snap = dataclasses.replace(tasks(LINEAR), site_growth=(growing, slow))
    finding = only(leak.check(snap))
    assert finding.location is not None
    assert (finding.location.function, finding.location.line) == ("watch_connection", 11)
    assert "`watch_connection` at conn.py:11" in finding.title
    assert finding.evidence["site"] == "watch_connection (conn.py:11)"
    assert (finding.evidence["site_waiting"], finding.evidence["site_kind"]) == (46, "sleep")
    assert "TaskGroup" in finding.fix and "watch_connection" in finding.fix
    # a site that explains under 30% of the growth is not named
    weak = dataclasses.replace(growing, slope=2.9)
    assert only(leak.check(dataclasses.replace(snap, site_growth=(weak,)))).location is None
    big = [10 + 125 * i for i in range(9)]  # +1000 over 4 s
    assert only(leak.check(tasks(big))).severity == "error"
    below = [10 + 124 * i for i in range(9)]
    assert only(leak.check(tasks(below))).severity == "warning"


# ---------------------------------------------------------------------------------------------
# LS801, LS802


def task_error(count: int, location: Frame | None = None) -> TaskErrorView:
    raised = app(11, "send_metric", "metrics.py")
    return TaskErrorView(
        coroutine="send_metric",
        error="ConnectionError",
        message="refused",
        count=count,
        location=location,
        stack=(raised, app(40, "handle")),
        created=app(15, "handle_request"),
        first_t=1.0,
        last_t=2.0,
    )


def test_unretrieved_exceptions_are_errors_from_the_first() -> None:
    assert exception.check(with_(task_errors=(task_error(0),))) == []
    raised = app(11, "send_metric", "metrics.py")
    finding = only(exception.check(with_(task_errors=(task_error(1, raised),))))
    assert (finding.code, finding.family, finding.severity) == ("LS801", "exception", "error")
    assert finding.location is not None and finding.location.function == "send_metric"
    assert finding.title == (
        "Task `send_metric` failed with ConnectionError at metrics.py:11 "
        "and nobody retrieved the exception (1 times)"
    )
    assert finding.evidence["created_at"] == "handle_request (handlers.py:15)"
    assert finding.evidence["stack"][0] == "send_metric (metrics.py:11)"
    assert "add_done_callback" in finding.fix
    assert only(exception.check(with_(task_errors=(task_error(3),)))).location is None


def test_never_awaited_is_a_warning_at_the_call() -> None:
    here = app(15, "Orders.record")
    never = NeverAwaitedView("write_audit", here, 1, 1.0, 1.0)
    finding = only(exception.check(with_(never_awaited=(never,))))
    assert (finding.code, finding.severity) == ("LS802", "warning")
    assert finding.title == "`record` calls `write_audit` without awaiting it at handlers.py:15"
    assert "await write_audit(" in finding.fix and "create_task" in finding.fix
    assert exception.check(with_(never_awaited=(dataclasses.replace(never, count=0),))) == []
    nowhere = dataclasses.replace(never, location=None)
    assert only(exception.check(with_(never_awaited=(nowhere,)))).location is None


def test_every_rule_is_registered_and_uses_known_families() -> None:
    snap = dataclasses.replace(
        tasks(LINEAR),
        contention=(resource([5] * 6),),
        task_errors=(task_error(1),),
        never_awaited=(NeverAwaitedView("f", None, 1, 1.0, 1.0),),
    )
    findings = evaluate(snap)
    assert {f.code for f in findings} == {"LS601", "LS701", "LS801", "LS802"}
    assert all(f.family in FAMILIES for f in findings)
    assert findings[0].severity == "error"
