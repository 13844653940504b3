"""The fleet's metrics from a model's view: histograms cumulative and exact per bucket, label sets
bounded, counters that never go down; and their Prometheus text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

import builders as b
from loopscope.events import Event
from loopscope.fleet._fleet import LIVE, Member
from loopscope.fleet.metrics import BOUNDS, OTHER, Metrics, coarse
from loopscope.fleet.prometheus import FleetCollector
from loopscope.session import Session
from loopscope.sources.base import ListSource


def _member(events: list[Event], pid: int = 4242) -> Member:
    session = Session(ListSource(events))
    session.feed_all()
    member = Member(pid, "service", None)
    member.set(LIVE)
    member.view = session.view()
    return member


def _events(functions: int) -> list[Event]:
    events: list[Event] = [b.hello(0.0), b.lag(0.25, [0.0003, 0.0003, 0.003, 0.5])]
    for i in range(functions):
        for k in range(i + 1):  # function i blocks i + 1 times
            events.append(b.block(1.0 + i + k * 0.1, 0.05, [b.app(10 + i, f"handler_{i}")]))
    events.append(b.census(4.5, total=3))
    events.append(b.lag(5.0, [0.0001]))
    return events


def test_histograms_are_cumulative_and_exact_at_each_bound() -> None:
    metrics = Metrics().of(_member(_events(0)))
    assert metrics is not None
    delay = dict(metrics.delay.cumulative())
    assert metrics.delay.count == 5
    assert delay[f"{BOUNDS[0]:.6g}"] == 1  # 0.1 ms
    assert delay[f"{BOUNDS[1]:.6g}"] == 3  # + two of 0.3 ms, under 0.4 ms
    assert delay[f"{BOUNDS[5]:.6g}"] == 4  # + 3 ms, under 6.4 ms
    assert delay["+Inf"] == 5
    assert metrics.delay.sum == 0.0001 + 0.0006 + 0.003 + 0.5


def test_block_labels_are_bounded_and_the_rest_is_other() -> None:
    metrics = Metrics(top=2).of(_member(_events(4)))
    assert metrics is not None
    by_function = {s.function: s.count for s in metrics.blocks}
    # The two that had the most blocked time when first seen keep names; the rest is "other".
    assert set(by_function) == {"handler_3", "handler_2", OTHER}
    assert sum(by_function.values()) == 1 + 2 + 3 + 4
    assert by_function[OTHER] == 1 + 2
    assert metrics.block_duration.count == 10


def test_a_counter_never_goes_down_when_the_model_forgets_a_frame() -> None:
    metrics = Metrics(top=5)
    member = _member(_events(3))
    first = {(s.function, s.cause): s.count for s in metrics.of(member).blocks}  # type: ignore[union-attr]
    member.view = _member([b.hello(0.0), b.lag(0.25, [0.001])]).view  # the frames are gone
    again = {(s.function, s.cause): s.count for s in metrics.of(member).blocks}  # type: ignore[union-attr]
    assert again == first


def test_prometheus_text_has_every_family_with_pid_and_process() -> None:
    member = _member(_events(2))

    class Members:
        def members(self) -> list[Member]:
            return [member]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(Members()))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    for name in (
        "python_asyncio_eventloop_delay_seconds_bucket",
        "python_asyncio_tasks",
        "python_asyncio_blocks_total",
        "python_asyncio_block_duration_seconds_count",
        "loopscope_findings",
    ):
        lines = [ln for ln in text.splitlines() if ln.startswith(name + "{")]
        assert lines, (name, text)
        assert all('pid="4242"' in ln and 'process="service"' in ln for ln in lines)
    assert 'python_asyncio_tasks{pid="4242",process="service",state="waiting"} 3.0' in text
    assert (
        'python_asyncio_blocks_total{cause="cpu",file="app/handlers.py",function="handler_1"'
        in text
    )


def test_coarse_puts_everything_past_the_last_bound_in_inf() -> None:
    h = coarse((0,) * 79 + (3,), 300.0)
    assert h.cumulative()[-2][1] == 0 and h.cumulative()[-1] == ("+Inf", 3)
