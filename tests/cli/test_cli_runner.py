"""Starting and stopping real child programs under the agent."""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopscope.events import Hello, SourceState, TargetExited
from loopscope.runner import (
    Program,
    ProgramSpec,
    check_python,
    describe_exit,
    log_dir,
    new_log_path,
)
from loopscope.sources.run import RunSource

DEADLINE = 20.0


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[str], Program]]:
    """Start a program from source text; whatever happens, it is stopped at the end."""
    programs: list[Program] = []

    def start(source: str) -> Program:
        script = tmp_path / f"prog{len(programs)}.py"
        script.write_text(source)
        program = Program.start(
            ProgramSpec(python=sys.executable, script=str(script)),
            log_path=tmp_path / f"prog{len(programs)}.log",
        )
        programs.append(program)
        return program

    yield start
    for program in programs:
        program.stop(grace=(0.2, 0.2, 2.0))


def _ready(program: Program) -> Callable[[], bool]:
    """The program printed its "ready PID" line (and so set up what it set up before it)."""
    return lambda: re.search(r"^ready \d+$", program.log_path.read_text(), re.MULTILINE) is not None


IGNORES = """
import asyncio, os, signal, sys
for name in sys.argv[1:] or {signals!r}:
    signal.signal(getattr(signal, name), signal.SIG_IGN)

async def main():
    print("ready", os.getpid(), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_stop_asks_with_sigint_first(started: Callable[[str], Program]) -> None:
    program = started(IGNORES.format(signals=[]))
    _wait_for(_ready(program), "the program to start")
    assert program.stop(grace=(5.0, 5.0, 5.0)) == -signal.SIGINT
    assert program.stopped_by_loopscope


@pytest.mark.parametrize(
    ("ignored", "ends_with"),
    [(["SIGINT"], signal.SIGTERM), (["SIGINT", "SIGTERM"], signal.SIGKILL)],
    ids=["sigterm", "sigkill"],
)
def test_stop_escalates(
    started: Callable[[str], Program], ignored: list[str], ends_with: signal.Signals
) -> None:
    program = started(IGNORES.format(signals=ignored))
    _wait_for(_ready(program), "the program to start")
    assert program.stop(grace=(0.3, 0.3, 5.0)) == -ends_with


def test_stop_takes_the_programs_own_children_along(started: Callable[[str], Program]) -> None:
    program = started(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n"
        "print('ready', child.pid, flush=True)\n"
        "time.sleep(3600)\n"
    )
    _wait_for(_ready(program), "the program to start its child")
    child = int(re.findall(r"^ready (\d+)$", program.log_path.read_text(), re.MULTILINE)[0])
    program.stop(grace=(0.3, 0.3, 5.0))

    def gone() -> bool:
        try:
            with open(f"/proc/{child}/stat") as f:
                return f.read().split(") ", 1)[1].startswith("Z")  # a zombie awaiting init
        except FileNotFoundError:
            return True

    _wait_for(gone, "the grandchild to end")


def test_run_source_reports_the_agent_then_the_exit(started: Callable[[str], Program]) -> None:
    program = started(
        "import asyncio, sys\n"
        "async def main():\n"
        "    await asyncio.sleep(0.3)\n"
        "asyncio.run(main())\n"
        "print('bye', flush=True)\n"
        "sys.exit(3)\n"
    )
    events = list(RunSource(program).events())
    assert isinstance(events[0], SourceState) and events[0].state == "live"
    assert isinstance(events[1], Hello) and events[1].pid == program.pid
    exited = events[-1]
    assert isinstance(exited, TargetExited)
    assert (exited.exit_code, exited.reason) == (3, "exited")
    assert "bye" in program.log_path.read_text()


def test_run_source_when_the_program_dies_before_its_agent_starts(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nkill -TERM $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    program = Program.start(
        ProgramSpec(python=str(fake), script="app.py"), log_path=tmp_path / "log"
    )
    try:
        events = list(RunSource(program).events())
    finally:
        program.stop()
    unavailable, exited = events
    assert isinstance(unavailable, SourceState) and unavailable.state == "unavailable"
    assert isinstance(exited, TargetExited)
    assert exited.exit_code == -signal.SIGTERM
    assert exited.reason == "killed by SIGTERM before its agent started"


def test_the_socket_directory_is_private_and_removed(started: Callable[[str], Program]) -> None:
    program = started(IGNORES.format(signals=[]))
    _wait_for(program.socket_path.exists, "the agent's socket")
    directory = program.socket_path.parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    program.stop()
    assert not directory.exists()


def test_check_python_accepts_every_supported_interpreter(target_python: str) -> None:
    version = check_python(target_python)
    assert version.startswith(Path(target_python).name.removeprefix("python"))


def test_log_files_are_named_after_time_and_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert log_dir() == tmp_path / "loopscope" / "logs"
    now = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    first = new_log_path("my app", now)
    second = new_log_path("my app", now)
    assert first.name == "20260304-050607-my_app.log"
    assert second.name == "20260304-050607-my_app-1.log"


def test_log_dir_without_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert log_dir() == Path.home() / ".local" / "state" / "loopscope" / "logs"


def test_describe_exit() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(None) == "exit code unknown"


def test_programs_run_as_their_own_process_group(started: Callable[[str], Program]) -> None:
    program = started(IGNORES.format(signals=[]))
    _wait_for(_ready(program), "the program to start")
    assert os.getpgid(program.pid) == program.pid != os.getpgid(0)
