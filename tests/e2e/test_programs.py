"""Every program of the two corpora under `loopscope run --headless --json`, one run each: the
finding its first line expects, naming its function, and nothing serious in the clean twins.
tests/programs/ is plain asyncio; tests/services/ are services on FastAPI, Starlette, uvicorn,
aiohttp and anyio, each with its own loopback load. The per-family end-to-end tests read the
same runs (programruns.py)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from detection import SERVICES, Expectation, judge, label, programs
from programruns import ProgramRuns, marks

pytestmark = pytest.mark.spread  # programruns.py shares the runs between workers

WEB_STACK = ("fastapi", "uvicorn", "starlette", "anyio", "httpx", "aiohttp")
# Problems loopscope does not name yet, deterministically (strict: the day it does, the test
# says so and the entry goes).
KNOWN_GAPS: dict[str, str] = {}


def _known_gap(name: str) -> list[pytest.MarkDecorator]:
    gap = KNOWN_GAPS.get(name)
    return [] if gap is None else [pytest.mark.xfail(reason=gap, strict=True)]


@pytest.mark.parametrize(
    "expect", [pytest.param(e, marks=marks(e.path)) for e in programs()], ids=lambda e: e.name
)
def test_program(expect: Expectation, program_runs: ProgramRuns) -> None:
    run_and_judge(expect, program_runs)


@pytest.mark.parametrize(
    "expect",
    [pytest.param(e, marks=[*marks(e.path), *_known_gap(e.name)]) for e in programs(SERVICES)],
    ids=lambda e: e.name,
)
def test_service(expect: Expectation, program_runs: ProgramRuns) -> None:
    missing = [name for name in WEB_STACK if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the web stack is not installed: {', '.join(missing)}")
    run_and_judge(expect, program_runs)


def run_and_judge(expect: Expectation, program_runs: ProgramRuns) -> None:
    if expect.skip is not None:
        pytest.skip(f"{expect.name}: {expect.skip}")
    findings = program_runs(expect.path).findings
    verdict = judge(expect, findings)
    shown = json.dumps(
        [
            {
                **{k: f[k] for k in ("code", "severity", "title")},
                "cause": (f.get("evidence") or {}).get("cause"),
            }
            for f in findings
        ],
        indent=1,
    )
    assert verdict.found, f"no {expect.family} finding naming {expect.function}: {shown}"
    # (with their evidence: one seen only under a loaded run's timing is read from this)
    unexpected = json.dumps([f for f in findings if label(f) in verdict.false_positives], indent=1)
    assert not verdict.false_positives, f"unexpected findings: {shown}\n{unexpected}"


ROUTED = {
    "duplicate_fastapi_tenants": "GET /tenants/{tenant}/settings",
    "race_fastapi_coupons": "POST /coupons/{code}/redeem",
    "race_starlette_seats": "POST /shows/1/seats/{seat}",
    "executor_fastapi_sync": "GET /customers/{cid}",
}


@pytest.mark.parametrize(
    ("expect", "route"),
    [
        pytest.param(e, ROUTED[e.name], marks=marks(e.path))
        for e in programs(SERVICES)
        if e.name in ROUTED
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_a_services_finding_names_the_route_it_slows(
    expect: Expectation, route: str, program_runs: ProgramRuns
) -> None:
    missing = [name for name in WEB_STACK if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the web stack is not installed: {', '.join(missing)}")
    findings = program_runs(expect.path).findings
    named = [f for f in findings if f["family"] == expect.family]
    assert any(route in f["evidence"].get("routes", []) for f in named), json.dumps(named)
