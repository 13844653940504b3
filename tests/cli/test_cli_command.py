"""The ``loopscope`` command: help, bad input, and programs that fail."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from clirun import assert_no_loopscope_traceback, log_path_from, logs, loopscope
from loopscope.cli import UsageError, parse


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = loopscope("--help", state=tmp_path)
    assert result.returncode == 0
    assert "run" in result.stdout and "demo" in result.stdout
    assert "live profiler for Python asyncio programs" in result.stdout


def test_run_help_shows_how_to_name_the_program(tmp_path: Path) -> None:
    result = loopscope("run", "--help", state=tmp_path)
    assert result.returncode == 0
    out = result.stdout
    assert "usage: loopscope run [options] (SCRIPT [ARGS...] | -m MODULE [ARGS...])" in out
    for option in ("--python PATH", "--headless", "--duration S", "--json", "--log FILE"):
        assert option in out


def test_demo_help(tmp_path: Path) -> None:
    result = loopscope("demo", "--help", state=tmp_path)
    assert result.returncode == 0
    assert "--headless" in result.stdout


def test_missing_script_starts_nothing(tmp_path: Path) -> None:
    result = loopscope("run", "--headless", "nothere.py", state=tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "loopscope: no such file: nothere.py\n"
    assert result.stdout == ""
    assert logs(tmp_path) == []


def test_no_program_is_a_usage_error(tmp_path: Path) -> None:
    result = loopscope("run", "--headless", state=tmp_path)
    assert result.returncode == 2
    assert "give a SCRIPT or -m MODULE" in result.stderr


def test_json_without_headless_is_a_usage_error(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("pass\n")
    result = loopscope("run", "--json", str(app), state=tmp_path)
    assert result.returncode == 2
    assert "--json need --headless" in result.stderr
    assert logs(tmp_path) == []


def test_the_dashboard_needs_a_terminal(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("pass\n")
    result = loopscope("run", str(app), state=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "loopscope: run: the dashboard needs a terminal; use --headless\n"
    assert logs(tmp_path) == []


def _executable(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    ("python", "message"),
    [
        (lambda d: str(d / "missing"), "no such file"),
        (lambda d: str(d), "not an executable file"),
        (lambda d: _executable(d / "fake", "#!/bin/sh\necho hello\n"), "not a Python interpreter"),
        (
            lambda d: _executable(d / "old", "#!/bin/sh\necho 2.7.18 cpython\n"),
            "Python 2.7.18; loopscope needs Python 3.10 or newer",
        ),
    ],
    ids=["missing", "directory", "not-python", "too-old"],
)
def test_bogus_python_is_refused(
    tmp_path: Path, python: Callable[[Path], str], message: str
) -> None:
    app = tmp_path / "app.py"
    app.write_text("print('must not run')\n")
    bogus = python(tmp_path)
    result = loopscope("run", "--headless", "--python", bogus, str(app), state=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"loopscope: --python {bogus}: {message}\n"
    assert logs(tmp_path) == []


def test_syntax_error_is_reported_with_the_programs_exit_code(tmp_path: Path) -> None:
    app = tmp_path / "broken.py"
    app.write_text("import asyncio\n\ndef handler(:\n    pass\n")
    result = loopscope("run", "--headless", str(app), state=tmp_path)
    assert result.returncode == 0
    assert f"loopscope: {app} failed (exit code 1)" in result.stderr
    assert "    SyntaxError: invalid syntax" in result.stderr
    assert_no_loopscope_traceback(result.stderr)
    assert "SyntaxError" in log_path_from(result.stderr).read_text()


def test_program_that_raises_is_reported_with_its_traceback(tmp_path: Path) -> None:
    app = tmp_path / "raises.py"
    app.write_text(
        "import asyncio\n\n"
        "async def main():\n"
        "    await asyncio.sleep(0.2)\n"
        "    raise RuntimeError('the database is on fire')\n\n"
        "asyncio.run(main())\n"
    )
    result = loopscope("run", "--headless", str(app), state=tmp_path)
    assert result.returncode == 0
    stderr = result.stderr
    assert f"loopscope: {app} failed (exit code 1); the end of its log" in stderr
    assert "    Traceback (most recent call last):" in stderr
    assert "    RuntimeError: the database is on fire" in stderr
    assert_no_loopscope_traceback(stderr)
    # Written where it says, under the state directory.
    (log,) = logs(tmp_path)
    assert log == log_path_from(stderr)
    assert log.name.endswith("-raises.log")
    assert "RuntimeError: the database is on fire" in log.read_text()
    # The summary and the (empty) findings still come out.
    assert "program exited with code 1" in result.stdout
    assert "No findings." in result.stdout


def test_program_exit_code_is_reported_not_returned(tmp_path: Path) -> None:
    app = tmp_path / "exits.py"
    app.write_text("import sys\nsys.exit(3)\n")
    result = loopscope("run", "--headless", "--json", str(app), state=tmp_path)
    assert result.returncode == 0
    assert "failed (exit code 3)" in result.stderr
    assert result.stdout.lstrip().startswith("{")


# -- Parsing -------------------------------------------------------------------------------


def test_everything_after_the_script_belongs_to_the_program() -> None:
    ns = parse(["run", "--headless", "app.py", "--json", "-m", "x", "--duration", "3"])
    assert (ns.script, ns.module) == ("app.py", None)
    assert ns.args == ["--json", "-m", "x", "--duration", "3"]
    assert ns.headless and not ns.json and ns.duration is None


def test_everything_after_the_module_belongs_to_the_program() -> None:
    ns = parse(["run", "--python", "/usr/bin/python3", "-m", "pkg.mod", "--headless", "a"])
    assert (ns.script, ns.module, ns.args) == (None, "pkg.mod", ["--headless", "a"])
    assert ns.python == "/usr/bin/python3" and not ns.headless


def test_module_joined_to_its_flag_and_script_after_double_dash() -> None:
    assert parse(["run", "-mpkg.mod"]).module == "pkg.mod"
    ns = parse(["run", "--json", "--", "-odd.py", "x"])
    assert (ns.script, ns.args, ns.json) == ("-odd.py", ["x"], True)


def test_dash_m_without_a_module() -> None:
    with pytest.raises(UsageError, match="-m needs a MODULE"):
        parse(["run", "--headless", "-m"])
