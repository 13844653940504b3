"""Recording an attached process: `loopscope record PID` and `loopscope attach --record FILE`,
headless, on real target programs; and Ctrl-C in a headless attach, which detaches."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attach_targets import PlainTarget

from capabilities import needs
from clirun import assert_no_loopscope_traceback, blocking_functions, loopscope
from loopscope import cli
from loopscope.record._format import RecordingError
from loopscope.record.reader import Recording
from loopscope.record.writer import RecordingWriter
from loopscope.sources.recorded import RecordingControl
from pythons import find_pythons

pytestmark = pytest.mark.timeout(120)


def _python(version: str) -> str:
    path = find_pythons().get(version)
    if path is None:
        pytest.skip(f"Python {version} is not installed")
    return path


@pytest.fixture(params=["3.10", "3.13"], ids=lambda v: f"py{v}")
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlainTarget]:
    t = PlainTarget(_python(request.param), tmp_path)
    yield t
    t.close()


def _report_json(path: Path, state: Path) -> dict[str, Any]:
    out = loopscope("report", "--json", str(path), state=state)
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    report = json.loads(out.stdout)
    assert isinstance(report, dict)
    return report


def _blocking_functions(report: dict[str, Any]) -> list[str]:
    return blocking_functions(report["findings"])


def _assert_still_running_undisturbed(target: PlainTarget) -> None:
    state = target.ask("state")
    assert [t for t in state["threads"] if t.startswith("loopscope")] == []
    assert target.ask("ping") == {"pong": True}
    assert target.finish() == (0, "")


@needs("ptrace")
def test_record_pid_records_until_the_duration_and_detaches(
    target: PlainTarget, tmp_path: Path
) -> None:
    path = tmp_path / "service.lsrec"
    out = loopscope(
        "record", str(target.pid), "-o", str(path), "--duration", "2.5", "--json",
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert f"detached from process {target.pid}: its agent removed itself" in out.stderr
    assert f"to {path}; see: loopscope report {path}" in out.stderr
    live = json.loads(out.stdout)  # --json: the findings it printed live
    with Recording.open(path) as rec:
        info = rec.info
        kinds = {e.kind for e in rec.events()}
    assert info.complete and info.duration >= 2.0
    assert info.meta["pid"] == target.pid
    assert info.meta["how"].startswith(f"process {target.pid} (")
    assert {"hello", "loop_started", "lag", "block"} <= kinds
    report = _report_json(path, tmp_path)
    assert report["target"]["pid"] == target.pid
    assert _blocking_functions(report) == ["render_report"] == _blocking_functions(live)
    _assert_still_running_undisturbed(target)


@needs("ptrace")
def test_attach_headless_record_keeps_what_came_before_the_target_exited(
    tmp_path: Path,
) -> None:
    target = PlainTarget(_python("3.12"), tmp_path)
    path = tmp_path / "attach.lsrec"
    attach = None
    try:
        attach = _popen(
            "attach", "--headless", "--record", str(path), "--json", str(target.pid),
            state=tmp_path / "state",
        )  # fmt: skip
        seen = _wait_for_line(attach.stderr, "| findings ")  # watching, and recording
        target.send("exit")  # the program ends mid-session
        assert target.proc.wait(timeout=15) == 0
        stdout, rest = attach.communicate(timeout=30)
    finally:
        target.close()
        if attach is not None and attach.poll() is None:
            attach.kill()
            attach.wait()
    stderr = seen + rest
    assert attach.returncode == 0, stderr
    assert_no_loopscope_traceback(stderr)
    assert f"process {target.pid} exited" in stderr
    assert _blocking_functions(json.loads(stdout)) == ["render_report"]
    with Recording.open(path) as rec:
        assert rec.info.complete
        kinds = [e.kind for e in rec.events()]
    assert kinds[-1] == "target_exited"
    assert _blocking_functions(_report_json(path, tmp_path)) == ["render_report"]
    text = loopscope("report", str(path), state=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"of process {target.pid} (" in text.stdout
    assert "render_report" in text.stdout


def test_record_of_no_such_process_writes_nothing(tmp_path: Path) -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) + 1
    path = tmp_path / "none.lsrec"
    out = loopscope("record", str(pid), "-o", str(path), state=tmp_path)
    assert out.returncode == 1, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert f"there is no process with pid {pid}" in out.stderr
    assert not path.exists()
    assert "recorded" not in out.stderr


def test_record_of_no_such_process_leaves_an_older_recording_alone(tmp_path: Path) -> None:
    path = tmp_path / "old.lsrec"
    RecordingWriter(path, {"how": "an earlier session"}).close()
    before = path.read_bytes()
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) + 1
    out = loopscope("record", str(pid), "-o", str(path), state=tmp_path)
    assert out.returncode == 1, out.stderr
    assert path.read_bytes() == before


@needs("ptrace")
def test_ctrl_c_in_headless_attach_detaches_and_the_program_goes_on(tmp_path: Path) -> None:
    target = PlainTarget(_python("3.12"), tmp_path)
    attach = None
    try:
        attach = _popen("attach", "--headless", "--json", str(target.pid), state=tmp_path / "state")
        seen = _wait_for_line(attach.stderr, "| findings ")  # watching: a finding (one or more)
        attach.send_signal(signal.SIGINT)
        stdout, rest = attach.communicate(timeout=30)
        stderr = seen + rest
        assert attach.returncode == 0, stderr
        assert_no_loopscope_traceback(stderr)
        assert f"interrupted: detaching from process {target.pid}, which keeps running" in stderr
        assert "stopping the program" not in stderr
        assert f"detached from process {target.pid}: its agent removed itself" in stderr
        assert _blocking_functions(json.loads(stdout)) == ["render_report"]
        _assert_still_running_undisturbed(target)
    finally:
        target.close()
        if attach is not None and attach.poll() is None:
            attach.kill()
            attach.wait()


@needs("ptrace")
def test_a_recording_that_cannot_start_after_attaching_still_detaches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def cannot_start(self: RecordingControl) -> None:
        raise RecordingError(f"{tmp_path / 'r.lsrec'}: the disk is full")

    monkeypatch.setattr(RecordingControl, "start", cannot_start)
    target = PlainTarget(_python("3.12"), tmp_path)
    try:
        argv = ["attach", "--headless", "--record", str(tmp_path / "r.lsrec"), str(target.pid)]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "agent injected with" in err and "the disk is full" in err
        deadline = time.monotonic() + 5.0
        while [t for t in target.ask("state")["threads"] if t.startswith("loopscope")]:
            assert time.monotonic() < deadline, "the agent is still running in the target"
            time.sleep(0.02)
        _assert_still_running_undisturbed(target)
    finally:
        target.close()


def _popen(*args: str, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loopscope", *args],
        env=dict(os.environ, XDG_STATE_HOME=str(state)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(stream: object, text: str, timeout: float = 30.0) -> str:
    """Read ``stream`` (a pipe) until it contains ``text``; everything read so far."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} in {seen.decode(errors='replace')!r}"
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            data = os.read(fd, 65536)
            assert data, f"closed before {text!r}: {seen.decode(errors='replace')!r}"
            seen += data
    return seen.decode(errors="replace")
