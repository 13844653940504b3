"""The pieces under the ptrace route: symbol addresses from ELF files, calls into a stopped
thread, and a call that never returns being abandoned without harm."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_targets import PlainTarget

from capabilities import needs
from clirun import loopscope
from loopscope.attach._elf import resolve
from loopscope.attach._proc import tracer
from loopscope.attach._ptrace import PtraceError, Tracer
from pythons import find_pythons

pytestmark = [
    pytest.mark.timeout(60),
    needs("ptrace"),
]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[PlainTarget]:
    python = find_pythons().get("3.13")
    if python is None:
        pytest.skip("Python 3.13 is not installed")
    t = PlainTarget(python, tmp_path)
    yield t
    t.close()


def test_resolve_finds_what_the_dynamic_linker_finds() -> None:
    found = resolve(os.getpid(), ["Py_AddPendingCall", "PyRun_SimpleString", "getpid", "nope"])
    libc = ctypes.CDLL(None)
    assert found == {
        "Py_AddPendingCall": ctypes.cast(ctypes.pythonapi.Py_AddPendingCall, ctypes.c_void_p).value,
        "PyRun_SimpleString": ctypes.cast(
            ctypes.pythonapi.PyRun_SimpleString, ctypes.c_void_p
        ).value,
        "getpid": ctypes.cast(libc.getpid, ctypes.c_void_p).value,
    }


def test_a_call_runs_on_the_stopped_thread_and_returns(service: PlainTarget) -> None:
    address = resolve(service.pid, ["getpid"])["getpid"]
    with Tracer(service.pid) as tracer:
        assert tracer.call(address, ()) == service.pid
    assert service.ask("ping") == {"pong": True}
    assert service.finish() == (0, "")


def test_a_call_that_never_returns_is_abandoned_and_the_program_goes_on(
    service: PlainTarget,
) -> None:
    address = resolve(service.pid, ["pause"])["pause"]  # waits for a signal that never comes
    with (
        pytest.raises(PtraceError, match=r"did not stop within 0\.3 s"),
        Tracer(service.pid, timeout=0.3) as tracer,
    ):
        tracer.call(address, ())
    assert service.ask("ping") == {"pong": True}
    assert service.finish() == (0, "")


def test_a_thread_that_stops_after_the_wait_for_it_ended_is_let_go(
    service: PlainTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine the stop asked for can come after the wait for it gave up: the
    thread stops all the same, and a traced thread stays stopped until its tracer lets it go
    (here: as long as loopscope runs)."""
    real = Tracer._wait_stop
    gave_up: list[bool] = []

    def too_late(self: Tracer, *, first: bool) -> int:
        if not gave_up:
            gave_up.append(True)
            raise PtraceError(f"process {self.pid} did not stop within 0 s")
        return real(self, first=first)

    monkeypatch.setattr(Tracer, "_wait_stop", too_late)
    with pytest.raises(PtraceError, match="did not stop"), Tracer(service.pid):
        pass
    assert gave_up
    assert tracer(service.pid) == 0
    assert service.ask("ping") == {"pong": True}
    assert service.finish() == (0, "")


def test_attach_to_a_process_another_tracer_holds_says_so(
    service: PlainTarget, tmp_path: Path
) -> None:
    with Tracer(service.pid):  # this test process is the other tracer
        out = loopscope("attach", "--headless", str(service.pid), state=tmp_path / "state")
    assert out.returncode == 1, out.stderr
    assert f"process {service.pid} is being traced by process {os.getpid()}" in out.stderr
    assert "Traceback" not in out.stderr
    assert service.ask("ping") == {"pong": True}
    assert service.finish() == (0, "")
