from __future__ import annotations

import pytest

from builders import APP, duplicate_group, duplicates
from loopscope.events import DuplicateGroup, Event
from loopscope.model import Model
from loopscope.model.snapshot import Snapshot
from loopscope.rules import duplicate, evaluate
from loopscope.rules.finding import FAMILIES, Finding


def snapshot(*events: Event) -> Snapshot:
    model = Model()
    for e in events:
        model.apply(e)
    return model.snapshot()


def session(*passes: list[DuplicateGroup]) -> Snapshot:
    """One duplicates pass every half second, each with its groups."""
    return snapshot(*(duplicates(1.0 + i * 0.5, groups) for i, groups in enumerate(passes)))


def in_flight(peak: int, concurrent: int, ended: int, **kw: object) -> list[list[DuplicateGroup]]:
    """Passes that see ``peak`` identical calls at once ``concurrent`` times, then see them end."""
    seen = [
        [duplicate_group(in_flight=peak, instances=peak * (i + 1), **kw)] for i in range(concurrent)
    ]  # type: ignore[arg-type]
    done = [duplicate_group(in_flight=0, instances=peak * concurrent, ended=ended, **kw)]  # type: ignore[arg-type]
    return [*seen, done]


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


@pytest.mark.parametrize(
    ("peak", "concurrent", "ended", "reported"),
    [
        (3, 2, 1, True),
        (2, 5, 5, False),  # two at once happens by chance
        (8, 1, 8, False),  # once is a coincidence
        (8, 4, 0, False),  # never ending: long-lived loops, not work
    ],
)
def test_in_flight_thresholds(peak: int, concurrent: int, ended: int, reported: bool) -> None:
    findings = duplicate.check(session(*in_flight(peak, concurrent, ended)))
    assert ("LS401" in [f.code for f in findings]) == reported


@pytest.mark.parametrize(("peak", "severity"), [(3, "warning"), (9, "warning"), (10, "error")])
def test_in_flight_severity(peak: int, severity: str) -> None:
    assert only(duplicate.check(session(*in_flight(peak, 3, 2)))).severity == severity


def test_in_flight_finding_names_the_function_and_the_fix() -> None:
    found = only(
        duplicate.check(
            session(
                *in_flight(
                    12,
                    3,
                    12,
                    function="PriceService.fetch_price",
                    args="self=<PriceService #7f>, symbol='ACME'",
                )
            )
        )
    )
    assert found.family == "duplicate" and found.family in FAMILIES
    assert found.location is not None
    assert (found.location.file, found.location.line) == (f"{APP}/prices.py", 12)
    assert found.location.function == "PriceService.fetch_price"
    assert "12 identical calls `fetch_price(self=<PriceService #7f>, symbol='ACME')`" in found.title
    assert "prices.py:12" in found.title
    assert "`fetch_price(symbol)` at prices.py:12" in found.fix
    assert "single-flight" in found.fix.lower() and "TTL" in found.fix
    evidence = found.evidence
    assert evidence["peak_in_flight"] == 12 and evidence["concurrent_passes"] == 3
    assert evidence["calls"] == 36 and evidence["wasted_call_seconds"] > 0
    assert found.to_json()["evidence"]["args"] == "self=<PriceService #7f>, symbol='ACME'"


def recurring(
    n: int, *, tasks: int | None = None, share: float = 1.0
) -> list[list[DuplicateGroup]]:
    """``n`` passes each seeing a new call (one at a time), the call in flight at ``share`` of
    them."""
    out = []
    for i in range(n):
        shown = i < round(n * share)
        out.append(
            [
                duplicate_group(
                    in_flight=1 if shown else 0,
                    starts=1 if shown else 0,
                    instances=i + 1,
                    ended=i,
                    tasks=(i + 1) if tasks is None else min(tasks, i + 1),
                )
            ]
        )
    return out


@pytest.mark.parametrize(
    ("n", "tasks", "share", "expected"),
    [
        (12, None, 1.0, "warning"),
        (12, None, 0.4, "info"),
        (12, 1, 1.0, None),  # one task redoing the call in a loop: polling
        (12, None, 0.1, None),  # rarely running
        (7, None, 1.0, None),  # too few calls
    ],
)
def test_recurring_thresholds(
    n: int, tasks: int | None, share: float, expected: str | None
) -> None:
    findings = duplicate.check(session(*recurring(n, tasks=tasks, share=share)))
    if expected is None:
        assert findings == []
    else:
        found = only(findings)
        assert (found.code, found.severity) == ("LS402", expected)
        assert "is computed again and again" in found.title
        assert found.fix.startswith("Cache `fetch_price(symbol)` at prices.py:12: ")


def _nested(outer: int, inner: int) -> list[list[DuplicateGroup]]:
    """``get_quote(symbol='ACME')`` repeated with ``outer`` calls in flight, each awaiting the
    same ``_query(sql='select 1')``, ``inner`` of which are in flight at once."""
    return [
        [
            duplicate_group(
                "get_quote",
                "symbol='ACME'",
                in_flight=outer,
                instances=outer * (i + 1),
                ended=outer * i,
            ),
            duplicate_group(
                "_query",
                "sql='select 1'",
                in_flight=inner,
                instances=inner * (i + 1),
                ended=inner * i,
                parent="get_quote(symbol='ACME')",
                line=40,
            ),
        ]
        for i in range(4)
    ]


def test_the_innermost_repeated_call_that_costs_the_time_is_reported() -> None:
    found = only(duplicate.check(session(*_nested(5, 5))))
    assert found.location is not None and found.location.function == "_query"
    assert "the repeats took" in found.title


def test_a_caller_whose_inner_repeats_take_little_of_its_time_is_reported() -> None:
    found = only(duplicate.check(session(*_nested(12, 3))))
    assert found.location is not None and found.location.function == "get_quote"


def test_argument_sets_of_one_function_make_one_finding() -> None:
    passes = [
        [
            duplicate_group(args=f"symbol='{s}'", in_flight=n, instances=n * (i + 1), ended=n * i)
            for s, n in (("ACME", 6), ("GLOBEX", 4))
        ]
        for i in range(3)
    ]
    found = only(duplicate.check(session(*passes)))
    assert found.evidence["argument_sets"] == 2
    assert found.evidence["top_args"] == ["symbol='ACME'", "symbol='GLOBEX'"]
    assert "(and 1 other argument sets)" in found.title


def test_the_rule_is_registered() -> None:
    findings = evaluate(session(*in_flight(12, 3, 12)))
    assert [f.code for f in findings] == ["LS401"]
