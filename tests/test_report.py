from __future__ import annotations

import json

from rich.console import Console

from builders import app, block, census, hello, lag
from loopscope.events import Event, TargetExited
from loopscope.report import duration, evidence_line, render_findings, report_json, summary_line
from loopscope.rules.finding import Finding, Location
from loopscope.session import Session, View
from loopscope.sources.base import ListSource


def view_of(events: list[Event]) -> View:
    session = Session(ListSource(events))
    session.feed_all()
    return session.view()


def busy_session() -> list[Event]:
    out: list[Event] = [hello(100.0)]
    out += [lag(100.0 + i * 0.25, [0.0004] * 60 + [0.052, 0.081]) for i in range(1, 49)]
    out += [block(101.0 + i * 0.5, 0.06, [app(42, "render_report", "app.py")]) for i in range(7)]
    out += [census(112.0, total=130)]
    return out


def text(renderable: object) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_duration_formats() -> None:
    assert [duration(x) for x in (None, 0.0004, 0.052, 0.0815, 1.25)] == [
        "-",
        "0.4ms",
        "52ms",
        "82ms",
        "1.25s",
    ]


def test_summary_line() -> None:
    line = summary_line(view_of(busy_session()))
    assert line == (
        "12.0s lag p50 0.5ms p99 81ms max 81ms | tasks 130 | blocks 7 (+5 in 10s) | findings 1"
    )


def test_summary_line_without_data_and_after_exit() -> None:
    assert (
        summary_line(view_of([])) == "0.0s lag p50 - p99 - max - | tasks 0 | blocks 0 (+0 in 10s)"
    )
    line = summary_line(view_of([hello(1.0), TargetExited(t=3.0, exit_code=2, reason="exited")]))
    assert line.endswith("| program exited with code 2")
    assert line.startswith("2.0s ")


def test_no_findings() -> None:
    assert text(render_findings(view_of([hello(1.0)]))).strip() == "No findings."


def test_findings_as_text() -> None:
    out = text(render_findings(view_of(busy_session())))
    lines = out.splitlines()
    assert lines[0] == "WARNING LS101 `render_report` blocks the loop (CPU) at app.py:42"
    assert "count 7" in lines[1] and "total 420ms" in lines[1] and "max 60ms" in lines[1]
    assert "share of time 4%" in lines[1]
    assert lines[2] == "  at /srv/app/app.py:42 in render_report"
    assert lines[3].startswith("  fix: Move the CPU work off the loop")


def test_evidence_line_formats_by_name_and_skips_lists() -> None:
    finding = Finding(
        code="LS999",
        family="leak",
        severity="info",
        title="t",
        location=Location("a.py", 1, "f"),
        evidence={
            "count": 3,
            "wait_s": 0.25,
            "cpu_share": 0.5,
            "rate": 1.5,
            "cause": "cpu",
            "tasks": ["a"],
            "first_t": 1.0,
            "missing": None,
        },
    )
    assert evidence_line(finding) == "count 3, wait 250ms, cpu share 50%, rate 1.5, cause cpu"


def test_report_json_schema() -> None:
    report = report_json(view_of(busy_session()))
    assert set(report) == {"target", "duration_s", "findings"}
    assert report["target"] == {
        "pid": 4242,
        "python": "3.11.7",
        "executable": "/srv/venv/bin/python",
        "argv": ["app.py", "--port", "8080"],
    }
    assert report["duration_s"] == 12.0
    (finding,) = report["findings"]
    assert set(finding) == {"code", "family", "severity", "title", "location", "evidence", "fix"}
    assert finding["location"] == {
        "file": "/srv/app/app.py",
        "line": 42,
        "function": "render_report",
    }
    assert finding["evidence"]["count"] == 7
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_report_json_without_a_target() -> None:
    assert report_json(view_of([])) == {"target": None, "duration_s": 0.0, "findings": []}
