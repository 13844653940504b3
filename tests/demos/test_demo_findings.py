"""Each demo under ``loopscope demo NAME --headless --json`` yields the findings of its families,
naming the scenario's functions; its ``--fixed`` variant, under the same load, yields none of
them for the scenario's code.

A family whose rule is not in ``loopscope.rules.RULES`` yet is skipped, saying so: these
tests start to run when the rule arrives.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.demos import catalog
from loopscope.rules import RULES
from loopscope.rules.finding import Kind

DURATION = "8"
# The variability rule judges the loop's lag as a whole: it names no function.
LOCATED = {"blocking", "race", "duplicate", "contention", "executor", "gc"}

CASES = [(s.name, family) for s in catalog.SCENARIOS.values() for family in s.family]


def _families_with_rules() -> set[str]:
    """The families of the kinds of finding that the rules' modules name."""
    families = set()
    for rule in RULES:
        module = importlib.import_module(rule.__module__)
        families.update(k.family for k in vars(module).values() if isinstance(k, Kind))
    return families


def _needs_rule(family: str) -> None:
    if family not in _families_with_rules():
        pytest.skip(f"no rule of the '{family}' family in loopscope.rules.RULES yet")


_reports: dict[tuple[str, bool], dict[str, Any]] = {}
_stderrs: dict[tuple[str, bool], str] = {}


def _report(name: str, fixed: bool, state: Path) -> dict[str, Any]:
    """The findings of one headless run of a demo, shared by the tests that read it."""
    key = (name, fixed)
    if key not in _reports:
        args = ["demo", name, "--headless", "--duration", DURATION, "--json"]
        result = loopscope(*args, *(["--fixed"] if fixed else []), state=state)
        assert result.returncode == 0, result.stderr
        assert_no_loopscope_traceback(result.stderr)
        assert "loopscope: demo load generator done" in result.stderr  # its figures are shown
        _reports[key] = json.loads(result.stdout)
        _stderrs[key] = result.stderr
    return _reports[key]


def _stderr(name: str, fixed: bool, state: Path) -> str:
    """What loopscope said on stderr in that run: the load generator's figures among it."""
    _report(name, fixed, state)
    return _stderrs[(name, fixed)]


def _function_names(finding: dict[str, Any]) -> set[str]:
    """The finding's function as named ("Node.__init__", "install.<locals>.login") and bare."""
    location = finding["location"]
    if not location:
        return set()
    return {location["function"], location["function"].rsplit(".", 1)[-1]}


def _names_scenario_function(finding: dict[str, Any], scenario: catalog.Scenario) -> bool:
    return bool(_function_names(finding) & set(scenario.functions))


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "family"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_demo_shows_its_family(name: str, family: str, tmp_path: Path) -> None:
    _needs_rule(family)
    scenario = catalog.SCENARIOS[name]
    findings = _report(name, False, tmp_path)["findings"]
    found = [f for f in findings if f["family"] == family]
    # What the run did say, and the load generator's figures, for a failure to be read.
    assert found, (
        f"no {family} finding in the '{name}' demo; found "
        f"{[(f['code'], f['severity'], f['title'], f['evidence']) for f in findings]}; "
        f"stderr ends {_stderr(name, False, tmp_path)[-1500:]!r}"
    )
    if family in LOCATED:
        named = {name for f in found for name in _function_names(f)}
        assert named & set(scenario.functions), (named, scenario.functions)


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "family"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_fixed_demo_does_not(name: str, family: str, tmp_path: Path) -> None:
    """Only findings naming the functions the fix changed count: on a loaded machine the
    process can be kept off the CPU for a hundred milliseconds (starting an executor thread,
    say), and such a block lands wherever the loop was, which is not what the fix is about.
    Information is not a finding of a problem: the fixed demos keep their buggy code beside
    the fix (LS503 still points at the unused race window in the source)."""
    _needs_rule(family)
    scenario = catalog.SCENARIOS[name]
    report = _report(name, True, tmp_path)
    wrong = [
        f
        for f in report["findings"]
        if f["family"] == family
        and f["severity"] != "info"
        and (family not in LOCATED or _names_scenario_function(f, scenario))
    ]
    assert not wrong, json.dumps(wrong, indent=1)


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("name", "harm"),
    [
        ("duplicate", "DUPLICATE work"),
        ("contention", "QUEUEING"),
        ("executor", "STARVED"),
        ("variability", "GC PAUSES"),
    ],
)
def test_each_scenario_shows_its_damage_and_its_fix_does_not(
    name: str, harm: str, tmp_path: Path
) -> None:
    """The load generator's own measure of the harm, from the same runs as the findings."""
    broken, fixed = _stderr(name, False, tmp_path), _stderr(name, True, tmp_path)
    assert f"damage: {harm}" in broken, broken
    assert harm not in fixed, fixed
    done = re.search(r"load generator done: (\d+) requests in [\d.]+ s, (\d+) errors", fixed)
    assert done and int(done.group(1)) > 0 and int(done.group(2)) == 0, fixed


def test_blocking_demo_names_every_blocking_function(tmp_path: Path) -> None:
    findings = _report("blocking", False, tmp_path)["findings"]
    causes = {
        f["location"]["function"]: f["evidence"]["cause"]
        for f in findings
        if f["family"] == "blocking" and f["location"]
    }
    assert {"hash_password", "render_report"} <= causes.keys(), causes
    # (Their cause reads "cpu" unless the machine is so busy that the loop thread spends most
    # of a block waiting for a CPU: that is the blocking rule's business, not the demo's.)
    assert causes.get("load_config") == "sleep", causes
    assert causes.get("fetch_partner_rates") == "io", causes
