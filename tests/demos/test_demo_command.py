"""``loopscope demo``: the list of demos, their names, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirun import assert_no_loopscope_traceback, logs, loopscope
from loopscope.cli import UsageError, _request_from_args, parse
from loopscope.demos import catalog


def test_list_prints_one_line_per_demo(tmp_path: Path) -> None:
    result = loopscope("demo", "--list", state=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(catalog.SCENARIOS)
    assert all(len(line.split()) > 2 for line in lines)  # each says what it shows
    assert "(default)" in lines[0] and lines[0].startswith(catalog.DEFAULT)
    assert logs(tmp_path) == []  # nothing was started


def test_unknown_demo_names_the_demos(tmp_path: Path) -> None:
    result = loopscope("demo", "nosuchdemo", "--headless", state=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "nosuchdemo" in result.stderr
    for name in catalog.SCENARIOS:
        assert name in result.stderr
    assert result.stdout == ""
    assert logs(tmp_path) == []
    assert_no_loopscope_traceback(result.stderr)


def test_unknown_demo_is_named_before_the_terminal_is_asked_for(tmp_path: Path) -> None:
    result = loopscope("demo", "nosuchdemo", state=tmp_path)  # no terminal, no --headless
    assert result.returncode == 2
    assert "no demo named 'nosuchdemo'" in result.stderr


def test_demo_help_shows_the_options(tmp_path: Path) -> None:
    result = loopscope("demo", "--help", state=tmp_path)
    assert result.returncode == 0
    for option in ("--list", "--fixed", "--load N", "--headless", "--record FILE", "--json"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("argv", "args"),
    [
        (["demo", "--headless"], (catalog.DEFAULT,)),
        (["demo", "race", "--headless", "--fixed"], ("race", "--fixed")),
        (["demo", "executor", "--headless", "--load", "8"], ("executor", "--load", "8")),
    ],
)
def test_demo_runs_the_service_with_its_scenario(argv: list[str], args: tuple[str, ...]) -> None:
    request = _request_from_args(parse(argv))
    assert request.spec.module == "loopscope.demos.service"
    assert request.spec.args == args
    assert request.how == "demo"


def test_load_must_be_positive() -> None:
    with pytest.raises(UsageError, match="--load"):
        _request_from_args(parse(["demo", "--headless", "--load", "0"]))
