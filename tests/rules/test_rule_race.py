"""LS501-LS503 on hand-built events: race windows seen, lost updates, windows only in source."""

from __future__ import annotations

import json

import pytest

from builders import APP, hello, lag
from loopscope.events import Event, Frame, LostUpdate, RaceSpan, RaceWindow, RaceWindows
from loopscope.model import Model
from loopscope.model.snapshot import Snapshot
from loopscope.rules import evaluate, race
from loopscope.rules.finding import Finding

BANK = f"{APP}/bank.py"
WITHDRAW = RaceSpan(BANK, "Account.withdraw", 10, "self.balance", 11, (12,), 13)
DEPOSIT = RaceSpan(BANK, "Account.deposit", 20, "self.balance", 21, (22,), 23, "condition")
LOCKED = RaceSpan(BANK, "Account.careful", 30, "self.balance", 32, (33,), 34, guarded=True)


def snapshot(*events: Event, duration: float = 60.0) -> Snapshot:
    model = Model(source_line=lambda f, n: "")
    model.apply(hello(0.0))
    for e in events:
        model.apply(e)
    model.apply(lag(duration, [0.001]))
    return model.snapshot()


def scan(*spans: RaceSpan) -> RaceWindows:
    return RaceWindows(t=0.5, windows=spans, files=1, functions=3, cost=0.001)


def seen(span: RaceSpan, t: float, tasks: tuple[str, ...] = ("Task-1", "Task-2")) -> RaceWindow:
    return RaceWindow(
        t=t,
        loop=1,
        window=span,
        tasks=tasks,
        count=len(tasks),
        lines=tuple(span.await_lines[0] for _ in tasks),
        inspected=10,
    )


def lost(t: float, task: str = "Task-2", other: str = "Task-1", repeats: int = 0) -> LostUpdate:
    return LostUpdate(
        t=t,
        target="Account.balance",
        task=task,
        read=Frame(BANK, 11, "Account.withdraw"),
        version_read=3,
        other_task=other,
        other_write=Frame(BANK, 13, "Account.withdraw"),
        write=Frame(BANK, 13, "Account.withdraw"),
        version_now=4,
        repeats=repeats,
    )


def by_code(findings: list[Finding] | tuple[Finding, ...], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def test_a_window_seen_with_two_tasks_is_a_warning_naming_the_function() -> None:
    findings = race.check(snapshot(scan(WITHDRAW), seen(WITHDRAW, 5.0)))
    (finding,) = by_code(findings, "LS501")
    assert finding.family == "race" and finding.severity == "warning"
    assert (finding.location.file, finding.location.line, finding.location.function) == (  # type: ignore[union-attr]
        BANK,
        11,
        "Account.withdraw",
    )
    assert "Account.withdraw" in finding.title and "self.balance" in finding.title
    assert "bank.py:11" in finding.title and "bank.py:13" in finding.title
    evidence = finding.evidence
    assert (evidence["read_line"], evidence["await_lines"], evidence["write_line"]) == (
        11,
        [12],
        13,
    )
    assert evidence["observations"] == 1 and evidence["max_tasks"] == 2
    assert evidence["tasks"] == ["Task-2", "Task-1"]
    assert "asyncio.Lock" in finding.fix
    json.dumps(finding.to_json())


@pytest.mark.parametrize(
    ("observations", "tasks", "severity"),
    [
        (race.ERROR_OBSERVATIONS - 1, 2, "warning"),
        (race.ERROR_OBSERVATIONS, 2, "error"),
        (1, race.ERROR_TASKS, "error"),
        (1, race.ERROR_TASKS - 1, "warning"),
    ],
)
def test_severity_escalates_with_frequency_and_crowding(
    observations: int, tasks: int, severity: str
) -> None:
    names = tuple(f"Task-{i}" for i in range(tasks))
    events = [seen(WITHDRAW, 1.0 + i, names) for i in range(observations)]
    (finding,) = by_code(race.check(snapshot(scan(WITHDRAW), *events)), "LS501")
    assert finding.severity == severity
    assert finding.evidence["observations"] == observations


def test_a_window_seen_before_its_scan_arrived_still_counts() -> None:
    (finding,) = by_code(race.check(snapshot(seen(WITHDRAW, 1.0))), "LS501")
    assert finding.location.function == "Account.withdraw"  # type: ignore[union-attr]


def test_windows_never_seen_are_info_and_guarded_ones_are_nothing() -> None:
    findings = race.check(snapshot(scan(WITHDRAW, DEPOSIT, LOCKED)))
    assert [(f.code, f.severity, f.location.function) for f in findings] == [  # type: ignore[union-attr]
        ("LS503", "info", "Account.withdraw"),
        ("LS503", "info", "Account.deposit"),
    ]
    assert "check" in findings[1].fix  # the check-then-act fix


def test_unobserved_windows_are_bounded() -> None:
    spans = [
        RaceSpan(BANK, f"f{i}", i * 10, "self.x", i * 10 + 1, (i * 10 + 2,), i * 10 + 3)
        for i in range(race.MAX_UNOBSERVED + 5)
    ]
    assert len(race.check(snapshot(scan(*spans)))) == race.MAX_UNOBSERVED


def test_a_lost_update_is_an_error_at_the_stale_write() -> None:
    findings = race.check(
        snapshot(lost(2.0), lost(3.0, "Task-3", "Task-2", repeats=4), duration=30.0)
    )
    (finding,) = by_code(findings, "LS502")
    assert finding.severity == "error"
    assert finding.location.line == 13  # type: ignore[union-attr]
    evidence = finding.evidence
    assert evidence["count"] == 6
    assert evidence["tasks"] == ["Task-2", "Task-3"]
    assert evidence["other_tasks"] == ["Task-1", "Task-2"]
    assert evidence["read"] == "Account.withdraw (bank.py:11)"
    assert (evidence["first_t"], evidence["last_t"]) == (2.0, 3.0)


def test_race_findings_take_part_in_evaluate() -> None:
    findings = evaluate(snapshot(scan(WITHDRAW, DEPOSIT), seen(WITHDRAW, 1.0), lost(2.0)))
    assert [f.code for f in findings] == ["LS502", "LS501", "LS503"]


def test_no_race_events_no_findings() -> None:
    assert race.check(snapshot()) == []
