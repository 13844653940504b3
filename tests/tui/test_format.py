from __future__ import annotations

import pytest

from loopscope.tui._format import (
    DASH,
    clip,
    count,
    duration,
    location,
    loop_class,
    percent,
    rate,
    short_path,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, DASH),
        (0.0, "0 µs"),
        (0.000042, "42 µs"),
        (0.00042, "420 µs"),
        (0.0042, "4.2 ms"),
        (0.042, "42 ms"),
        (0.9996, "1.00 s"),
        (1.5, "1.50 s"),
        (42.0, "42.0 s"),
        (125.0, "2m05s"),
        (7300.0, "2h02m"),
        (float("inf"), "∞"),
    ],
)
def test_duration_in_human_units(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_numbers() -> None:
    assert count(1234567) == "1,234,567"
    assert rate(0.26) == "0.3/s"
    assert rate(52.04) == "52.0/s"
    assert rate(1234) == "1.2k/s"
    assert percent(0.873) == "87%"
    assert percent(None) == DASH


@pytest.mark.parametrize(
    ("path", "cwd", "shown"),
    [
        ("/srv/app/report.py", "/srv/app", "report.py"),
        ("/srv/app/pkg/report.py", "/srv/app/", "pkg/report.py"),
        ("/srv/application/x.py", "/srv/app", "…/application/x.py"),
        ("/usr/lib/python3.11/asyncio/tasks.py", "/srv/app", "…/asyncio/tasks.py"),
        ("/srv/x.py", "", "/srv/x.py"),
        ("<frozen runpy>", "/srv", "<frozen runpy>"),
        ("report.py", "/srv", "report.py"),
    ],
)
def test_short_path(path: str, cwd: str, shown: str) -> None:
    assert short_path(path, cwd) == shown


def test_location_and_clip() -> None:
    assert location("/srv/app/report.py", 12, "/srv/app") == "report.py:12"
    assert clip("Handler.render_report", 10) == "…er_report"
    assert clip("Handler.render_report", 10, keep="start") == "Handler.r…"
    assert clip("short", 10) == "short"
    assert clip("abc", 1) == "…"


def test_loop_class() -> None:
    assert loop_class("asyncio.unix_events._UnixSelectorEventLoop") == "_UnixSelectorEventLoop"
    assert loop_class("uvloop.Loop") == "uvloop.Loop"
    assert loop_class("Loop") == "Loop"
