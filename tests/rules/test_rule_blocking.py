from __future__ import annotations

import json

import pytest

from builders import APP, app, block, hello, lag, site, stdlib
from loopscope.events import Event
from loopscope.model import Model
from loopscope.model.snapshot import Snapshot
from loopscope.rules import blocking, evaluate
from loopscope.rules.finding import FAMILIES, SEVERITIES, Finding, Location

SLEEPS = {(f"{APP}/handlers.py", 57): "    time.sleep(0.05)\n"}


def snapshot(*events: Event, duration: float = 60.0) -> Snapshot:
    """The snapshot of a session of ``duration`` seconds holding ``events``."""
    model = Model(source_line=lambda f, n: SLEEPS.get((f, n), ""))
    model.apply(hello(0.0))
    for e in events:
        model.apply(e)
    model.apply(lag(duration, [0.001]))
    return model.snapshot()


def blocks(n: int, duration: float, frames: list, **kw: object) -> list[Event]:  # type: ignore[type-arg]
    return [block(1.0 + i, duration, frames, **kw) for i in range(n)]  # type: ignore[arg-type]


def only(findings: list[Finding] | tuple[Finding, ...]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


RENDER = [app(42, "Reports.render_report", "app.py")]


@pytest.mark.parametrize(
    ("n", "duration", "reported"),
    [
        (3, 0.021, True),  # often enough
        (2, 0.049, False),  # neither often nor long enough: 98 ms
        (2, 0.050, True),  # 100 ms in total
        (1, 0.100, True),
        (1, 0.099, False),
    ],
)
def test_thresholds(n: int, duration: float, reported: bool) -> None:
    findings = blocking.check(snapshot(*blocks(n, duration, RENDER)))
    assert bool(findings) is reported


def test_severity_warning_below_both_bounds() -> None:
    finding = only(blocking.check(snapshot(*blocks(3, 0.249, RENDER), duration=100.0)))
    assert finding.severity == "warning"
    assert finding.evidence["share_of_time"] == pytest.approx(0.00747, abs=1e-4)


def test_severity_error_for_one_long_block() -> None:
    events = [*blocks(3, 0.030, RENDER), block(30.0, 0.250, RENDER)]
    assert only(blocking.check(snapshot(*events, duration=100.0))).severity == "error"


def test_severity_error_for_a_fifth_of_the_session() -> None:
    # 20 blocks of 100 ms in 10 s: 20% of the time blocked here, no single long block.
    events = [block(0.5 * i, 0.100, RENDER) for i in range(20)]
    finding = only(blocking.check(snapshot(*events, duration=10.0)))
    assert finding.evidence["share_of_time"] == pytest.approx(0.2)
    assert finding.severity == "error"
    events = [block(0.5 * i, 0.100, RENDER) for i in range(19)]
    assert only(blocking.check(snapshot(*events, duration=10.0))).severity == "warning"


def test_title_location_and_evidence() -> None:
    events = [
        block(10.0, 0.040, RENDER, task="Task-1", cpu_share=1.0),
        block(20.0, 0.080, RENDER, task="Task-2", cpu_share=0.9),
        block(30.0, 0.060, RENDER, task="Task-1", cpu_share=0.8),
    ]
    finding = only(blocking.check(snapshot(*events, duration=60.0)))
    assert finding.code == "LS101"
    assert finding.family == "blocking"
    assert finding.title == "`render_report` blocks the loop (CPU) at app.py:42"
    assert finding.location == Location(f"{APP}/app.py", 42, "Reports.render_report")
    ev = finding.evidence
    assert ev["count"] == 3
    assert ev["total_s"] == pytest.approx(0.18)
    assert ev["max_s"] == pytest.approx(0.08)
    assert ev["mean_s"] == pytest.approx(0.06)
    assert ev["per_minute"] == pytest.approx(3.0)
    assert ev["cause"] == "cpu"
    assert ev["cpu_share"] == pytest.approx((0.04 + 0.072 + 0.048) / 0.18, abs=1e-3)
    assert ev["share_of_time"] == pytest.approx(0.003)
    assert ev["tasks"] == ["Task-1", "Task-2"]
    assert ev["stack"][0] == "Reports.render_report (app.py:42)"
    assert len(ev["stack"]) <= blocking.STACK_FRAMES
    assert (ev["first_t"], ev["last_t"]) == (10.0, 30.0)
    json.dumps(finding.to_json(), allow_nan=False)


@pytest.mark.parametrize(
    ("frames", "cpu_share", "cause", "label", "in_fix"),
    [
        (RENDER, 1.0, "cpu", "CPU", ["asyncio.to_thread(render_report", "ProcessPool", "sleep(0)"]),
        (
            [app(57, "print_label", "handlers.py")],
            0.0,
            "sleep",
            "sleep",
            ["await asyncio.sleep("],
        ),
        (
            [stdlib("socket.py", 705, "readinto"), app(63, "lookup", "handlers.py")],
            0.0,
            "io",
            "sync I/O: socket",
            ["asyncio.open_connection", "asyncio.to_thread(lookup"],
        ),
        (
            [site("requests/api.py", 73, "get"), app(64, "fetch", "handlers.py")],
            0.05,
            "io",
            "sync I/O: HTTP client",
            ["aiohttp", "httpx.AsyncClient", "asyncio.to_thread(fetch"],
        ),
        (RENDER, None, "unknown", "cause unknown", ["asyncio.to_thread(render_report"]),
    ],
)
def test_fix_per_cause(
    frames: list,
    cpu_share: float | None,
    cause: str,
    label: str,
    in_fix: list[str],  # type: ignore[type-arg]
) -> None:
    finding = only(blocking.check(snapshot(*blocks(3, 0.05, frames, cpu_share=cpu_share))))
    assert finding.evidence["cause"] == cause
    assert f"({label})" in finding.title
    for text in in_fix:
        assert text in finding.fix


def test_gil_blocks_have_no_location_and_a_process_pool_fix() -> None:
    finding = only(blocking.check(snapshot(*blocks(3, 0.2, None))))  # type: ignore[arg-type]
    assert finding.location is None
    assert finding.evidence["cause"] == "gil"
    assert finding.evidence["samples"] == 0
    assert "GIL" in finding.title
    assert "ProcessPool" in finding.fix and "releases the GIL" in finding.fix
    assert finding.to_json()["location"] is None


def test_one_finding_per_hot_frame_most_time_first() -> None:
    events = [
        *blocks(3, 0.030, RENDER),
        *blocks(4, 0.050, [app(57, "print_label", "handlers.py")], cpu_share=0.0),
        *blocks(2, 0.030, [app(9, "tiny", "handlers.py")]),  # below both thresholds
    ]
    findings = blocking.check(snapshot(*events))
    assert [f.location.function for f in findings if f.location] == [
        "print_label",
        "Reports.render_report",
    ]


def test_no_blocks_no_findings() -> None:
    assert blocking.check(snapshot()) == []
    assert evaluate(Model().snapshot()) == ()


def test_evaluate_puts_the_most_severe_first() -> None:
    events = [
        *blocks(3, 0.030, [app(57, "print_label", "handlers.py")], cpu_share=0.0),
        *blocks(3, 0.020, RENDER),
        block(50.0, 0.300, [app(9, "load_all", "handlers.py")]),
    ]
    findings = evaluate(snapshot(*events))
    assert [f.severity for f in findings] == ["error", "warning", "warning"]
    assert findings[0].location is not None and findings[0].location.function == "load_all"
    for f in findings:
        assert f.severity in SEVERITIES
        assert f.family in FAMILIES


def test_the_finding_names_the_routes_its_blocks_stalled() -> None:
    import dataclasses

    routed = [
        dataclasses.replace(b, route=route)  # type: ignore[type-var]
        for b, route in zip(
            blocks(3, 0.05, RENDER), ["GET /report/{kind}", "GET /report/{kind}", None], strict=True
        )
    ]
    finding = only(blocking.check(snapshot(*routed)))
    assert finding.evidence["routes"] == ["GET /report/{kind}"]
    # Without a route the evidence has no such entry.
    assert "routes" not in only(blocking.check(snapshot(*blocks(3, 0.05, RENDER)))).evidence


UVICORN = [site("uvicorn/protocols/http/httptools_impl.py", 401, "RequestResponseCycle.run_asgi")]


@pytest.mark.parametrize(
    "frames",
    [UVICORN, []],  # a framework's frame; only the loop's own (uvloop at work in C)
    ids=["framework", "loop"],
)
def test_blocks_with_no_application_frame_are_said_not_blamed(frames: list) -> None:  # type: ignore[type-arg]
    # Under load a clean service's loop can stall with no application code on its stack (the
    # thread waiting for a core, C code in the loop): nothing of the program's to fix.
    finding = only(blocking.check(snapshot(*blocks(5, 0.2, frames), duration=10.0)))
    assert finding.severity == "info"
    assert "no application code" in finding.title
    assert "No application function" in finding.fix
    assert finding.location is not None  # where the loop was, for the Blocks screen


def test_unsampled_gil_blocks_are_a_problem_only_when_large_and_alone() -> None:
    # 3 s of 10 unsampled: a warning (no location to act on, but a third of the time lost).
    alone = only(blocking.check(snapshot(*blocks(6, 0.1, None), duration=10.0)))  # type: ignore[arg-type]
    assert alone.severity == "warning" and alone.location is None
    # A few unsampled blocks, under 5% of the session: said, not raised (a busy machine keeps
    # the sampler from a core too).
    few = only(blocking.check(snapshot(*blocks(3, 0.1, None), duration=10.0)))  # type: ignore[arg-type]
    assert few.severity == "info"
    # Beside application code named as blocking, they are most likely its unsampled blocks.
    both = blocking.check(snapshot(*blocks(6, 0.1, None), *blocks(3, 0.1, RENDER), duration=10.0))  # type: ignore[arg-type]
    assert sorted(f.severity for f in both) == ["info", "warning"]
    assert [f.location is None for f in both if f.severity == "info"] == [True]


def test_unsampled_blocks_the_watchdog_did_not_wait_in_are_not_called_gil() -> None:
    # A third of the session in blocks no look of the watchdog's fell in: no stack and no
    # sign of the GIL, so neither a location nor a cause to act on.
    unseen = blocks(6, 0.1, None, cpu_share=None, held=0.0)
    finding = only(blocking.check(snapshot(*unseen, duration=10.0)))  # type: ignore[arg-type]
    assert finding.evidence["cause"] == "unknown"
    assert finding.severity == "info"
    assert "GIL" not in finding.title and "ProcessPool" not in finding.fix


def test_unsampled_blocks_without_cpu_are_not_called_gil() -> None:
    # Nothing sampled and the thread's CPU did not advance: not C code holding the GIL.
    finding = only(blocking.check(snapshot(*blocks(3, 0.2, None, cpu_share=0.0, runq=0.05))))
    assert finding.evidence["cause"] != "gil"
    assert finding.severity == "info"
    assert "GIL" not in finding.title


def test_blocks_the_machine_made_are_no_finding() -> None:
    # A busy machine kept the loop's thread from a core for all but a few ms of each stall:
    # listed among the blocks (under their own pseudo-frame), blamed on nothing.
    snap = snapshot(*blocks(6, 0.05, RENDER, cpu=0.005, runq=0.045), duration=10.0)
    assert [h.cause for h in snap.blocks.hot] == ["machine"]
    assert blocking.check(snap) == []
