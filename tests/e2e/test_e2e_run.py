"""`loopscope run` and `loopscope demo`, headless, end to end: real programs, real agent, real
findings."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.demos import catalog as demo_catalog

pytestmark = pytest.mark.spread  # no state shared between its tests

BURN = """\
import asyncio
import time


def crunch_numbers():
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < 0.06:
        n += 1
    return n


async def main():
    print("hello from the program", flush=True)
    while True:
        crunch_numbers()
        await asyncio.sleep(0.05)


asyncio.run(main())
"""


def _lines_of(path: Path, function: str) -> range:
    tree = ast.parse(path.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    assert node.end_lineno is not None
    return range(node.lineno, node.end_lineno + 1)


def _report(stdout: str) -> dict[str, Any]:
    report = json.loads(stdout)  # stdout holds the JSON object and nothing else
    assert isinstance(report, dict)
    return report


def _blocking(report: dict[str, Any], function: str) -> dict[str, Any]:
    found = [
        f
        for f in report["findings"]
        if f["family"] == "blocking" and f["location"] and f["location"]["function"] == function
    ]
    assert found, json.dumps(report["findings"], indent=1)
    return found[0]


def _assert_names(finding: dict[str, Any], path: Path, function: str) -> None:
    location = finding["location"]
    assert Path(location["file"]).resolve() == path.resolve()
    assert location["line"] in _lines_of(path, function)
    assert function in finding["title"]
    assert finding["code"] == "LS101" and finding["severity"] in ("warning", "error")
    assert finding["fix"]


def test_run_script_finds_the_blocking_function(tmp_path: Path) -> None:
    app = tmp_path / "burn.py"
    app.write_text(BURN)
    log = tmp_path / "burn.log"
    result = loopscope(
        "run",
        "--headless",
        "--duration",
        "4",
        "--json",
        "--log",
        str(log),
        str(app),
        state=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = _report(result.stdout)
    assert report["target"]["argv"] == [str(app)]
    # 4 s of watching, and the events of the program's stop: on a loaded machine stopping it
    # took up to 2.1 s.
    assert 3.0 <= report["duration_s"] <= 8.0
    finding = _blocking(report, "crunch_numbers")
    _assert_names(finding, app, "crunch_numbers")
    assert finding["evidence"]["count"] >= 10
    # The program's output went to its log, not to loopscope's stdout or stderr.
    assert "hello from the program" in log.read_text()
    assert "hello from the program" not in result.stdout + result.stderr
    # With --json the summary lines go to stderr.
    assert "lag p50" in result.stderr
    assert_no_loopscope_traceback(result.stderr)


def test_run_module_with_its_arguments(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    app = package / "server.py"
    app.write_text(
        BURN.replace(
            'print("hello from the program", flush=True)',
            'import sys; print("args", sys.argv[1:], flush=True)',
        )
    )
    log = tmp_path / "shop.log"
    result = loopscope(
        "run",
        "--headless",
        "--duration",
        "4",
        "--json",
        "--log",
        str(log),
        "-m",
        "shop.server",
        "--port",
        "8080",
        state=tmp_path / "state",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    _assert_names(_blocking(_report(result.stdout), "crunch_numbers"), app, "crunch_numbers")
    assert "args ['--port', '8080']" in log.read_text()


def test_run_with_each_python(tmp_path: Path, target_python: str) -> None:
    app = tmp_path / "burn.py"
    app.write_text(BURN)
    result = loopscope(
        "run",
        "--headless",
        "--duration",
        "2.5",
        "--json",
        "--python",
        target_python,
        str(app),
        state=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = _report(result.stdout)
    version = Path(target_python).name.removeprefix("python")
    assert report["target"]["python"].startswith(version + ".")
    _assert_names(_blocking(report, "crunch_numbers"), app, "crunch_numbers")


def test_run_rich_text_report(tmp_path: Path) -> None:
    app = tmp_path / "burn.py"
    app.write_text(BURN)
    result = loopscope("run", "--headless", "--duration", "2.5", str(app), state=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum("lag p50" in line for line in lines) >= 2  # one a second, and the last one
    assert "LS101" in result.stdout and "crunch_numbers" in result.stdout
    assert f"loopscope: stopped {app}" in result.stderr


@pytest.mark.timeout(60)
def test_demo_names_its_blocking_function(tmp_path: Path) -> None:
    result = loopscope("demo", "--headless", "--duration", "5", "--json", state=tmp_path)
    assert result.returncode == 0, result.stderr
    handlers = Path(demo_catalog.__file__).with_name("blocking.py")
    finding = _blocking(_report(result.stdout), "render_report")
    _assert_names(finding, handlers, "render_report")


def _start_headless(app: Path, state: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, XDG_STATE_HOME=str(state))
    return subprocess.Popen(
        [sys.executable, "-m", "loopscope", "run", "--headless", *extra, str(app)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _program_pid(process: subprocess.Popen[str]) -> int:
    """Reads loopscope's stderr up to the line naming the program's pid."""
    assert process.stderr is not None
    line = process.stderr.readline()
    match = re.search(r"\(pid (\d+)\)", line)
    assert match, line
    return int(match.group(1))


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")  # exited, awaiting its reaper
    except FileNotFoundError:
        return True


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_ctrl_c_in_headless_mode_stops_the_program_and_reports(tmp_path: Path) -> None:
    app = tmp_path / "burn.py"
    app.write_text(BURN)
    process = _start_headless(app, tmp_path, "--json")
    try:
        pid = _program_pid(process)
        assert process.stderr is not None
        # Summary lines until one counts a finding: the blocks LS101 needs are in (the first
        # line only says it is watching, before any block on a loaded machine).
        deadline = time.monotonic() + 30.0
        while "| findings " not in (line := process.stderr.readline()):
            assert "lag p50" in line and time.monotonic() < deadline, line
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert _gone(pid)
    _assert_names(_blocking(_report(out), "crunch_numbers"), app, "crunch_numbers")
    assert_no_loopscope_traceback(err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_program_outlives_loopscope(tmp_path: Path, sig: signal.Signals) -> None:
    app = tmp_path / "burn.py"
    app.write_text(BURN)
    process = _start_headless(app, tmp_path)
    pid = _program_pid(process)
    try:
        process.send_signal(sig)
        process.wait(30)
        _wait_for(lambda: _gone(pid), "the program to end with loopscope")
    finally:
        process.kill()
        process.communicate()
        if not _gone(pid):  # the test failed: do not leave the orphan running
            os.killpg(pid, signal.SIGKILL)


# Imported by every interpreter started with it on PYTHONPATH: makes loopscope's launcher (and
# so the program's agent) start late, as on a machine too busy to start a program at once.
SLOW_START = """\
import os, sys, time
if any(arg.endswith("_launch.py") for arg in sys.orig_argv):
    time.sleep(float(os.environ["SLOW_START_S"]))
"""


def test_duration_counts_from_the_programs_hello(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_START)
    script = tmp_path / "burn.py"
    script.write_text(BURN)
    started = time.monotonic()
    result = loopscope(
        "run", "--headless", "--duration", "1.5", "--json", str(script),
        state=tmp_path, env={"PYTHONPATH": str(site), "SLOW_START_S": "3"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    report = _report(result.stdout)
    # Observed for its 1.5 s once its agent answered, not cut off before it could.
    assert report["target"] is not None, result.stderr
    assert elapsed >= 3 + 1.5, elapsed
    assert report["duration_s"] >= 1.0, report["duration_s"]
    _blocking(report, "crunch_numbers")
