"""`loopscope diff`: real recordings of the blocking demo and of its fixed variant, compared."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from recordings import write

from builders import app, block, hello, lag
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.commands.diff import Side, compare
from loopscope.record._format import SCHEMA_VERSION

BLOCKERS = {"hash_password", "render_report", "load_config", "fetch_partner_rates"}


@pytest.fixture(scope="module")
def demo_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(the blocking demo's recording, its --fixed variant's, a state directory)."""
    state = tmp_path_factory.mktemp("diff")
    paths = []
    for name, fixed in (("before", []), ("after", ["--fixed"])):
        path = state / f"{name}.lsrec"
        result = loopscope(
            "demo",
            "blocking",
            *fixed,
            "--headless",
            "--duration",
            "3",
            "--record",
            str(path),
            state=state,
        )
        assert result.returncode == 0, result.stderr
        paths.append(path)
    return paths[0], paths[1], state


def _diff(*args: str, state: Path) -> tuple[int, dict[str, Any], str]:
    result = loopscope("diff", *args, "--json", state=state)
    assert_no_loopscope_traceback(result.stderr)
    return result.returncode, json.loads(result.stdout) if result.stdout else {}, result.stderr


def _functions(findings: list[dict[str, Any]]) -> set[str]:
    return {f["location"]["function"] for f in findings if f["location"]}


def test_the_fix_shows_as_fixed_findings_and_less_lag(demo_pair: tuple[Path, Path, Path]) -> None:
    before, after, state = demo_pair
    code, diff, _ = _diff(str(before), str(after), "--fail-on-regression", state=state)
    assert code == 0, diff["regressions"]
    assert diff["unrelated"] is None
    fixed = diff["findings"]["fixed"]
    assert {f["code"] for f in fixed} >= {"LS101"}
    assert _functions(fixed) & BLOCKERS, fixed
    assert not [f for f in diff["findings"]["new"] if f["severity"] != "info"], diff["findings"]
    loop = diff["loop"]
    assert loop["lag_p99_s"]["after"] < loop["lag_p99_s"]["before"], loop
    assert loop["lag_max_s"]["change_pct"] < 0
    assert loop["blocks"]["before"] > 0
    assert loop["blocked_s"]["after"] < loop["blocked_s"]["before"]
    gone = {b["location"]["function"] for b in diff["blocks"] if b["status"] == "gone"}
    assert gone & BLOCKERS, diff["blocks"]
    # The demo is an aiohttp service: its blocks are counted by the route that served them, as
    # aiohttp names it (its method and resource).
    routes = {r["route"]: r for r in diff["routes"]}
    assert routes.keys() <= {"POST /login", "GET /report", "GET /config", "GET /partner-rates"}, (
        diff["routes"]
    )
    assert routes, diff["routes"]
    assert any(r["figures"]["blocked_s"]["before"] > 0 for r in diff["routes"]), diff["routes"]
    assert diff["processes"] == []
    assert diff["regressions"] == []


def test_the_other_way_round_is_a_regression(demo_pair: tuple[Path, Path, Path]) -> None:
    before, after, state = demo_pair
    code, diff, _ = _diff(str(after), str(before), "--fail-on-regression", state=state)
    assert code == 1
    lines = diff["regressions"]
    assert any(line.startswith("new finding LS101") for line in lines), lines
    # The blocking locations are new: they count through their findings, not twice.
    assert not any(line.startswith("blocked time at") for line in lines), lines
    # Without --fail-on-regression the same diff exits 0: the regressions are only reported.
    code, diff, _ = _diff(str(after), str(before), state=state)
    assert code == 0 and diff["regressions"] == lines


def test_the_table(demo_pair: tuple[Path, Path, Path]) -> None:
    before, after, state = demo_pair
    result = loopscope("diff", str(before), str(after), state=state)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Findings" in out and "fixed" in out and "LS101" in out
    assert "lag p99" in out and "busy" in out and "Blocks per location" in out
    assert any(name in out for name in BLOCKERS)
    assert "No regression (threshold 20%)." in out


def test_a_report_file_against_a_recording(demo_pair: tuple[Path, Path, Path]) -> None:
    before, after, state = demo_pair
    report = loopscope("report", str(before), "--json", state=state)
    assert report.returncode == 0, report.stderr
    report_file = state / "before.json"
    report_file.write_text(report.stdout)
    code, diff, _ = _diff(str(report_file), str(after), state=state)
    assert code == 0
    assert diff["before"]["kind"] == "report" and diff["after"]["kind"] == "recording"
    assert _functions(diff["findings"]["fixed"]) & BLOCKERS
    # The report file carries the recording's loop figures: they compare as the recording's.
    assert json.loads(report.stdout)["figures"]["blocked"]["count"] > 0
    _, direct, _ = _diff(str(before), str(after), state=state)
    assert diff["loop"] == direct["loop"] and diff["loop"]["blocks"]["before"] > 0
    assert diff["blocks"] == direct["blocks"]
    table = loopscope("diff", str(report_file), str(after), state=state)
    assert "Loop figures: not compared" not in table.stdout and "lag p99" in table.stdout


def test_unrelated_programs_are_named_and_still_compared(
    demo_pair: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    before, _, state = demo_pair
    other = tmp_path / "other.lsrec"
    write(
        other,
        [hello(100.0)]
        + [lag(100.0 + i * 0.25, [0.001] * 20) for i in range(8)]
        + [block(100.5, 0.2, [app(12, "slow_thing")])],
    )
    code, diff, stderr = _diff(str(before), str(other), state=state)
    assert code == 0
    assert "ran different programs (service and app)" in stderr
    assert "different programs" in diff["unrelated"]
    assert "slow_thing" in {b["location"]["function"] for b in diff["blocks"]}
    assert diff["loop"]["lag_p99_s"]["after"] is not None


def _newer(path: Path) -> None:
    write(path, [hello(1.0)])
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("hello\n"), "is neither a loopscope recording nor"),
        (lambda p: p.write_text('{"a": 1}'), "is neither a loopscope recording nor"),
        (lambda p: p.write_bytes(b""), "is empty, not a loopscope recording"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20), "is truncated"),
        (_newer, "was written by a newer loopscope"),
    ],
    ids=["missing", "text", "other-json", "empty", "truncated", "too-new"],
)
def test_bad_input_gives_the_message_report_gives(
    demo_pair: tuple[Path, Path, Path], tmp_path: Path, setup: Any, message: str
) -> None:
    before, _, _ = demo_pair
    bad = tmp_path / "bad.lsrec"
    setup(bad)
    for args in ((str(before), str(bad)), (str(bad), str(before))):
        result = loopscope("diff", *args, state=tmp_path)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert_no_loopscope_traceback(result.stderr)


def test_a_bad_threshold_is_a_usage_error(demo_pair: tuple[Path, Path, Path]) -> None:
    before, after, state = demo_pair
    result = loopscope("diff", str(before), str(after), "--threshold", "-5", state=state)
    assert result.returncode == 2 and "--threshold must be" in result.stderr


# -- the comparison itself, on figures made by hand ---------------------------------------------


def _side(findings: list[dict[str, Any]], p99: float, blocks: list[dict[str, Any]]) -> Side:
    figures = {
        "lag": {"p50_s": 0.001, "p99_s": p99, "max_s": p99 * 2},
        "busy_share": 0.5,
        "blocked": {"count": 1, "total_s": 0.1, "max_s": 0.1, "per_min_s": 0.1},
        "blocks": blocks,
        "routes": [],
        "processes": [],
    }
    return Side(Path("x"), "recording", None, 60.0, findings, figures)


def _finding(
    code: str, function: str, severity: str = "warning", **evidence: Any
) -> dict[str, Any]:
    return {
        "code": code,
        "severity": severity,
        "title": f"{function} does it",
        "location": {"file": "/srv/app/handlers.py", "line": 10, "function": function},
        "evidence": evidence,
    }


def _blocks(function: str, per_min: float) -> dict[str, Any]:
    return {
        "location": {"file": "/srv/app/handlers.py", "line": 10, "function": function},
        "count": 3,
        "total_s": per_min,
        "max_s": 0.05,
        "per_min_s": per_min,
        "cause": "cpu",
    }


def test_lag_and_blocked_time_against_the_threshold() -> None:
    before = _side([], 0.100, [_blocks("a", 1.0)])
    after = _side([], 0.125, [_blocks("a", 1.15)])
    assert [r.split(" rose")[0] for r in compare(before, after, 20.0)["regressions"]] == ["lag p99"]
    assert compare(before, after, 30.0)["regressions"] == []
    worse = compare(before, _side([], 0.1, [_blocks("a", 1.7)]), 20.0)["regressions"]
    assert worse == ["blocked time at handlers.py:10 in a rose from 1.00s to 1.70s a minute (+70%)"]
    # +30%, but by less than 1% of the time.
    assert compare(before, _side([], 0.1, [_blocks("a", 1.3)]), 20.0)["regressions"] == []
    # A location that blocks only after counts through its finding, if it has one.
    assert (
        compare(before, _side([], 0.1, [_blocks("a", 1.0), _blocks("b", 9.0)]), 20.0)["regressions"]
        == []
    )
    # A millisecond of lag is noise whatever the share.
    assert compare(_side([], 0.0002, []), _side([], 0.0009, []), 20.0)["regressions"] == []


def test_findings_are_matched_by_code_and_function_not_line() -> None:
    moved = _finding("LS101", "render", total_s=2.0, count=4)
    moved["location"]["line"] = 14
    before = _side(
        [_finding("LS101", "render", total_s=4.0, count=4), _finding("LS601", "pay")], 0.1, []
    )
    after = _side([moved, _finding("LS401", "quote", severity="info")], 0.1, [])
    diff = compare(before, after, 20.0)
    findings = diff["findings"]
    assert [f["code"] for f in findings["fixed"]] == ["LS601"]
    assert [f["code"] for f in findings["new"]] == ["LS401"]
    (still,) = findings["still"]
    assert still["evidence"] == {"total_s": {"before": 4.0, "after": 2.0, "change_pct": -50.0}}
    assert diff["regressions"] == []  # an info finding is no regression
    after = _side([moved, _finding("LS401", "quote", severity="warning")], 0.1, [])
    assert compare(before, after, 20.0)["regressions"] == [
        "new finding LS401 (warning): quote does it"
    ]


def test_routes_and_processes_are_compared_key_by_key() -> None:
    before, after = _side([], 0.1, []), _side([], 0.1, [])
    assert before.figures is not None and after.figures is not None
    before.figures["routes"] = [{"route": "GET /a", "blocked_s": 1.0, "requests": 10}]
    after.figures["routes"] = [
        {"route": "GET /a", "blocked_s": 2.0, "requests": 10},
        {"route": "GET /b", "blocked_s": 0.0, "requests": 3},
    ]
    diff = compare(before, after, 20.0)
    routes = {r["route"]: r for r in diff["routes"]}
    assert routes["GET /a"]["figures"]["blocked_s"]["change_pct"] == 100.0
    assert routes["GET /b"]["status"] == "new"
    assert diff["regressions"] == ["blocked time of route GET /a rose from 1.00s to 2.00s (+100%)"]
    # Per minute where the figures have it, with the floor locations have: a rise of 0.1 s a
    # minute is noise, one of 3 s a minute is not.
    before.figures["routes"] = [{"route": "GET /a", "per_min_s": 0.1}]
    after.figures["routes"] = [{"route": "GET /a", "per_min_s": 0.2}]
    assert compare(before, after, 20.0)["regressions"] == []
    after.figures["routes"] = [{"route": "GET /a", "per_min_s": 3.1}]
    (line,) = compare(before, after, 20.0)["regressions"]
    assert line.startswith("blocked time of route GET /a rose from") and "a minute" in line


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["/srv/app/service.py", "blocking"], "service"),
        (["/x/agent/_launch.py", "-m", "loopscope.demos.service", "blocking"], "service"),
        (["/x/agent/_launch.py", "app.py", "--port", "1"], "app"),
        (["/srv/pkg/__main__.py"], "pkg"),
        (["-m", "blocking"], None),  # between the launcher and the program: cannot be told
        ([], None),
    ],
)
def test_the_program_is_named_whenever_the_agent_said_hello(argv: list[str], name: str) -> None:
    from loopscope.commands.diff import _program

    assert _program({"argv": argv}) == name


def test_a_fastapi_services_blocks_are_counted_by_its_route(tmp_path: Path) -> None:
    for name in ("fastapi", "uvicorn", "httpx"):
        pytest.importorskip(name, reason=f"{name} is not installed")
    program = Path(__file__).resolve().parents[1] / "services" / "blocking_fastapi_rates.py"
    path = tmp_path / "rates.lsrec"
    result = loopscope(
        "run", "--headless", "--duration", "3", "--record", str(path), str(program),
        state=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = loopscope("report", str(path), "--json", state=tmp_path)
    assert report.returncode == 0, report.stderr
    figures = json.loads(report.stdout)["figures"]
    # Every block runs inside the one route, as FastAPI names it: its method and pattern.
    assert len(figures["routes"]) == 1, figures["routes"]
    (route,) = figures["routes"]
    assert route["route"] == "GET /orders/{order}/convert/{amount}", figures["routes"]
    assert 0 < route["blocks"] <= figures["blocked"]["count"]
    assert 0 < route["blocked_s"] <= figures["blocked"]["total_s"]
