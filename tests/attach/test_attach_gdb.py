"""The gdb route where gdb cannot do its work: it finds out before it touches the target, and
where it gets to the target and fails there, the target is left as it was.

On some virtual machines gdb cannot call a function in a process at all. To test that path on
any machine, a real gdb is made to refuse calls the way gdb itself can (``set may-call-functions
off``), through a wrapper named ``gdb`` put first on PATH; a second wrapper makes a call crash
inside the target part-way through the injection."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_targets import PlainTarget

from capabilities import needs
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.attach import AttachError, _ladder, attach
from loopscope.attach._routes import GdbRoute, gdb_call_problem
from loopscope.sources.agent import AgentSource
from pythons import find_pythons

pytestmark = pytest.mark.timeout(120)

# What gdb 13.1 printed on a virtual machine where it could not call functions (issue 13).
BROKEN = """\
[Thread debugging using libthread_db enabled]
Using host libthread_db library "/lib/x86_64-linux-gnu/libthread_db.so.1".
__GI___clock_nanosleep (clock_id=1, flags=1, req=0x7ffdd77a9c40, rem=0x0)
@@loopscope-call@@
Couldn't write extended state status: Bad address.
[Inferior 1 (process 4242) detached]
"""


def test_the_trial_call_reads_gdbs_answer() -> None:
    worked = BROKEN.replace("Couldn't write extended state status: Bad address.", "$1 = 4242")
    assert gdb_call_problem(worked, 4242) is None
    assert gdb_call_problem(worked, 4243) is not None  # another process answered: not a pass
    assert gdb_call_problem(BROKEN, 4242) == (
        "gdb cannot call functions in a process on this machine: "
        "Couldn't write extended state status: Bad address"
    )
    denied = "ptrace: Operation not permitted.\n@@loopscope-call@@\nNo symbol table is loaded.\n"
    assert gdb_call_problem(denied, 4242) == (
        "gdb cannot trace a process on this machine: ptrace: Operation not permitted"
    )
    assert gdb_call_problem("", 4242) == (
        "gdb cannot call functions in a process on this machine: gdb gave no answer"
    )


def _gdb_wrapper(directory: Path, body: str) -> Path:
    """A directory holding a ``gdb`` that runs ``body`` before the real gdb, for PATH."""
    real = shutil.which("gdb")
    assert real is not None
    directory.mkdir()
    wrapper = directory / "gdb"
    wrapper.write_text(f'#!/bin/sh\n{body}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return directory


def _refusing_gdb(directory: Path) -> Path:
    return _gdb_wrapper(directory, 'set -- -iex "set may-call-functions off" "$@"')


# A call of address 0 inserted before the injection's line matching PATTERN (a sed address): the
# target takes a SIGSEGV inside a function gdb called, and the script fails there.
_CRASH = """\
for arg; do
    case "$arg" in *.gdb) sed -i '/PATTERN/i call ((int (*)(void))0)()' "$arg";; esac
done"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainTarget]:
    python = find_pythons()["3.12"]
    if python is None:
        pytest.skip("Python 3.12 is not installed")
    t = PlainTarget(python, tmp_path_factory.mktemp("service"))
    yield t
    t.close()


def _untouched(service: PlainTarget) -> None:
    """The program answers and holds nothing of loopscope's: no bootstrap ran in it."""
    assert service.ask("ping") == {"pong": True}
    state = service.ask("state")
    assert state["modules"] == [] and state["main_names"] == [], state
    assert [t for t in state["threads"] if t.startswith("loopscope")] == []


@needs("gdb-installed")
def test_a_gdb_that_cannot_call_functions_makes_the_route_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _refusing_gdb(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{path}:{_path()}")
    assert GdbRoute().unavailable(None) == (  # type: ignore[arg-type]
        "gdb cannot call functions in a process on this machine: "
        "Cannot call functions in the program: may-call-functions is off"
    )


@needs("gdb-installed")
def test_method_gdb_says_why_it_cannot_and_leaves_the_target_alone(
    service: PlainTarget, tmp_path: Path
) -> None:
    path = _refusing_gdb(tmp_path / "bin")
    out = loopscope(
        "attach", "--headless", "--method", "gdb", str(service.pid),
        state=tmp_path / "state", env={"PATH": f"{path}:{_path()}"},
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert (
        "cannot inject with gdb: gdb cannot call functions in a process on this machine: "
        "Cannot call functions in the program: may-call-functions is off." in out.stderr
    ), out.stderr
    assert "injecting the agent" not in out.stderr  # gdb never attached to the target
    _untouched(service)


@needs("gdb-installed", "ptrace")
def test_auto_moves_on_from_a_gdb_that_cannot_call_functions(
    service: PlainTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _refusing_gdb(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{path}:{_path()}")
    monkeypatch.setattr(_ladder, "AUTO", ("gdb", "ptrace"))  # gdb first, to see auto move on
    said: list[str] = []
    attached = attach(service.pid, progress=said.append)
    _detach(attached.socket_path)
    assert attached.route == "ptrace"
    assert (
        "not using gdb: gdb cannot call functions in a process on this machine: "
        "Cannot call functions in the program: may-call-functions is off" in said
    ), said
    assert service.ask("ping") == {"pong": True}


@needs("gdb", "ptrace")
def test_a_gdb_that_fails_in_the_target_leaves_it_running_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = find_pythons()["3.12"]
    if python is None:
        pytest.skip("Python 3.12 is not installed")
    target = PlainTarget(python, tmp_path)
    try:
        # The first call (mmap) crashes; then, with the bootstrap written, the last one.
        for n, step in enumerate(["^set \\$loopscope_buf", "^call .*Py_AddPendingCall"]):
            path = _gdb_wrapper(tmp_path / f"bin{n}", _CRASH.replace("PATTERN", step))
            monkeypatch.setenv("PATH", f"{path}:{_path()}")
            with pytest.raises(AttachError) as raised:
                attach(target.pid, method="gdb", timeout=5)
            monkeypatch.undo()
            assert raised.value.reason == "failed", raised.value.message
            assert (
                "gdb could not queue the bootstrap: The program being debugged was signaled "
                "while in a function called from GDB." in raised.value.message
            ), raised.value.message
            # Its registers were restored and gdb detached: the loop runs on as it was, and
            # the half-done injection queued nothing.
            for _ in range(3):
                _untouched(target)
        # Another route attaches to it afterwards, and it is left as it was.
        attached = attach(target.pid, method="ptrace")
        _detach(attached.socket_path)
        assert target.ask("ping") == {"pong": True}
        assert target.finish() == (0, "")  # no error out of an interrupted system call
    finally:
        target.close()


def _path() -> str:
    return os.environ["PATH"]


def _detach(socket_path: str) -> None:
    source = AgentSource(socket_path, connect_timeout=5)
    for event in source.events():
        if event.kind == "hello":
            assert source.detach()
