"""Faults in the middle of an attached session: the target killed or exec'ing, loopscope itself
killed, two loopscopes at once. loopscope says what happened at once, keeps what it saw (on
screen and in the recording), and the program is never worse off."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attach_targets import SERVICE, PlainTarget

from capabilities import needs
from clirun import assert_no_loopscope_traceback, blocking_functions, loopscope
from loopscope.attach import attach
from loopscope.record._format import RecordingError
from loopscope.record.reader import Recording
from loopscope.rules.blocking import MIN_BLOCKS
from loopscope.session import Session
from loopscope.sources.attach import AttachSource
from loopscope.sources.recorded import RecordedSource, RecordingControl
from loopscope.tui import make_app
from loopscope.tui.app import LoopscopeApp
from loopscope.tui.widgets import HeaderBar
from pythons import find_pythons

pytestmark = [pytest.mark.timeout(120), needs("ptrace")]
# How soon loopscope must say that the target is gone. The connection drops the instant the
# process dies; the rest is polling (20 ms) and, on a loaded test machine, scheduling.
SAYS_SO_WITHIN = 1.0
SLACK = 1.0  # for the two cores this suite shares with others

# The attach tests' service, which also exec's a new program (a plain sleep) when told to.
EXECS = SERVICE.replace(
    '            elif cmd == "ping":',
    '            elif cmd == "exec":\n'
    '                os.execv(sys.executable, [sys.executable, "-c", "import time; '
    'time.sleep(120)"])\n'
    '            elif cmd == "ping":',
)


def _python(version: str = "3.12") -> str:
    path = find_pythons().get(version)
    if path is None:
        pytest.skip(f"Python {version} is not installed")
    return path


def _popen(*args: str, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loopscope", *args],
        env=dict(os.environ, XDG_STATE_HOME=str(state), COLUMNS="200"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class _Stream:
    """A pipe read as it comes, with the time each piece arrived."""

    def __init__(self, stream: Any) -> None:
        self.fd = stream.fileno()
        self.text = ""

    def wait_for(self, phrase: str, timeout: float = 30.0, since: int = 0) -> float:
        """Read until ``phrase`` has been seen (after offset ``since``); the monotonic time it
        arrived."""
        deadline = time.monotonic() + timeout
        while phrase not in self.text[since:]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {phrase!r} in {self.text!r}"
            readable, _, _ = select.select([self.fd], [], [], left)
            if readable:
                data = os.read(self.fd, 65536)
                assert data, f"closed before {phrase!r}: {self.text!r}"
                self.text += data.decode(errors="replace")
        return time.monotonic()

    def rest(self, proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
        proc.wait(timeout=timeout)
        while data := os.read(self.fd, 65536):
            self.text += data.decode(errors="replace")
        return self.text


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _agent_gone(target: PlainTarget) -> bool:
    state = target.ask("state")
    return (
        not [t for t in state["threads"] if t.startswith("loopscope")]
        and not state["set_running_loop"]
    )


def _wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _assert_recording_replays(path: Path, state: Path, last: str = "target_exited") -> None:
    with Recording.open(path) as rec:
        assert rec.info.complete
        kinds = [e.kind for e in rec.events()]
    assert {"hello", "loop_started", "lag", "block"} <= set(kinds), kinds
    assert kinds[-1] == last, kinds[-5:]
    out = loopscope("report", "--json", str(path), state=state)
    assert out.returncode == 0, out.stderr
    findings = json.loads(out.stdout)["findings"]
    assert blocking_functions(findings) == ["render_report"]


def _recorded_kinds(path: Path) -> set[str]:
    """The kinds of event written to the recording so far (read while it is written)."""
    return set(_recorded(path))


def _recorded(path: Path) -> list[str]:
    """The kind of every event written to the recording so far, in order."""
    try:
        with Recording.open(path) as rec:
            return [e.kind for e in rec.events()]
    except RecordingError:  # not created yet
        return []


# -- the target goes away ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigkill", "exec"])
def test_headless_says_at_once_that_the_target_is_gone_and_the_recording_replays(
    tmp_path: Path, how: str
) -> None:
    target = PlainTarget(_python(), tmp_path, EXECS)
    assert target.read() == {"ready": True}
    path = tmp_path / "session.lsrec"
    client = None
    try:
        client = _popen(
            "attach", "--headless", "--record", str(path), "--json", str(target.pid),
            state=tmp_path / "state",
        )  # fmt: skip
        err = _Stream(client.stderr)
        err.wait_for("| findings ")  # watching, recording, and it saw the blocks
        if how == "sigkill":
            gone = time.monotonic()
            target.proc.kill()
            said = err.wait_for(f"process {target.pid} exited")
        else:
            target.send("exec")
            gone = time.monotonic()
            said = err.wait_for(f"process {target.pid} exec'd a new program (")
            assert target.proc.poll() is None  # the same pid runs on, with another program
        stderr = err.rest(client)
        stdout = client.stdout.read() if client.stdout else ""
    finally:
        _stop(client)
        target.close()
    print(f"{how}: said so after {(said - gone) * 1000:.0f} ms")
    assert said - gone < SAYS_SO_WITHIN + SLACK
    assert client.returncode == 0, stderr
    assert_no_loopscope_traceback(stderr)
    if how == "exec":
        assert "import time; time.sleep(120)" in stderr
    # what it printed live, and what it recorded
    live = json.loads(stdout)["findings"]
    assert blocking_functions(live) == ["render_report"]
    _assert_recording_replays(path, tmp_path)


@pytest.mark.parametrize("how", ["sigkill", "exec"])
def test_dashboard_says_within_a_second_and_keeps_the_data(tmp_path: Path, how: str) -> None:
    import asyncio

    target = PlainTarget(_python(), tmp_path, EXECS)
    assert target.read() == {"ready": True}
    path = tmp_path / "dash.lsrec"
    attached = attach(target.pid)
    source = AttachSource(attached, detach_on_close=True)
    recorded = RecordedSource(source)
    control = RecordingControl(
        recorded, directory=tmp_path, name="dash", meta={"pid": target.pid}, first=path
    )
    control.start()
    session = Session(recorded, clock=time.time)
    session.start()

    def header(app: LoopscopeApp) -> str:
        return app.dashboard.query_one(HeaderBar).render().plain

    def blocks_named(app: LoopscopeApp) -> bool:
        view = app.dashboard.view
        return view is not None and any(
            f.location.function == "render_report" for f in view.findings
        )

    def lag_seen(app: LoopscopeApp) -> bool:
        view = app.dashboard.view
        return view is not None and view.snapshot.lag.heartbeats > 0

    async def run() -> float:
        app = make_app(session, how="attached", refresh=0.05, recording=control)
        assert isinstance(app, LoopscopeApp)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 30
            # (and a lag window in: on a loaded machine one stretched block is enough to be
            # named, before the first window is sent)
            while not blocks_named(app) or not lag_seen(app):
                assert time.monotonic() < deadline, header(app)
                await pilot.pause(0.05)
            if how == "sigkill":
                target.proc.kill()
            else:
                target.send("exec")
            gone = time.monotonic()
            while "program exited" not in header(app) and "program ended" not in header(app):
                assert time.monotonic() < gone + 10, header(app)
                await pilot.pause(0.02)
            said = time.monotonic() - gone
            await pilot.pause(0.3)
            assert blocks_named(app)  # the data stays on screen
            assert "render_report" in app.export_screenshot()
            text = header(app)
            assert ("exec'd a new program" in text) == (how == "exec"), text
        return said

    try:
        said = asyncio.run(run())
    finally:
        session.close()
        control.stop()
        target.close()
    print(f"{how}: the dashboard said so after {said * 1000:.0f} ms")
    assert said < SAYS_SO_WITHIN + SLACK
    _assert_recording_replays(path, tmp_path)


# -- loopscope goes away -----------------------------------------------------------------------


def test_loopscope_killed_takes_its_agent_with_it_and_its_recording_reads(
    tmp_path: Path,
) -> None:
    target = PlainTarget(_python(), tmp_path)
    path = tmp_path / "killed.lsrec"
    client = None
    try:
        client = _popen(
            "attach", "--headless", "--json", "--record", str(path), str(target.pid),
            state=tmp_path / "state",
        )  # fmt: skip
        _Stream(client.stderr).wait_for("| findings ")
        assert not _agent_gone(target)
        # The live finding may come from blocks the writer has not yet flushed: the report
        # below needs as many in the file as the rule asks for.
        _wait(
            lambda: _recorded(path).count("block") >= MIN_BLOCKS,
            f"{MIN_BLOCKS} blocks written to the recording",
        )
        client.send_signal(signal.SIGKILL)
        client.wait()
        # What was recorded up to the kill reads, replays and reports.
        with Recording.open(path) as rec:
            assert not rec.info.complete
            kinds = {e.kind for e in rec.events()}
        assert {"hello", "loop_started", "block"} <= kinds
        report = loopscope("report", "--json", str(path), state=tmp_path / "r")
        assert report.returncode == 0, report.stderr
        assert "render_report" in report.stdout
        # The agent sees its client's connection end and removes itself, as on a normal quit.
        _wait(lambda: _agent_gone(target), "the agent to remove itself")
        assert target.ask("ping") == {"pong": True}
        again = loopscope(
            "attach", "--headless", "--duration", "0.5", str(target.pid), state=tmp_path / "s2"
        )
        assert again.returncode == 0, again.stderr
        assert "agent injected with" in again.stderr  # nothing was left listening
        assert target.finish() == (0, "")
    finally:
        _stop(client)
        target.close()


def test_loopscope_killed_with_keep_agent_leaves_it_serving(tmp_path: Path) -> None:
    target = PlainTarget(_python(), tmp_path)
    client = None
    try:
        client = _popen(
            "attach",
            "--headless",
            "--json",
            "--keep-agent",
            str(target.pid),
            state=tmp_path / "state",
        )
        _Stream(client.stderr).wait_for("| findings ")
        client.send_signal(signal.SIGKILL)
        client.wait()
        # The agent notices the connection is gone and serves the next client.
        again = loopscope(
            "attach", "--headless", "--no-inject", "--duration", "1", "--json", str(target.pid),
            state=tmp_path / "s2",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "connected to the agent already listening" in again.stderr
        assert "its agent removed itself" in again.stderr
        assert json.loads(again.stdout)["findings"]  # it got data: the backlog and live events
        assert _agent_gone(target)
        assert target.ask("ping") == {"pong": True}
        assert target.finish() == (0, "")
    finally:
        _stop(client)
        target.close()


def test_a_second_loopscope_is_told_one_client_at_a_time(tmp_path: Path) -> None:
    target = PlainTarget(_python(), tmp_path)
    first = None
    try:
        first = _popen("attach", "--headless", "--json", str(target.pid), state=tmp_path / "state")
        first_err = _Stream(first.stderr)
        first_err.wait_for("| findings ")
        second = loopscope(
            "attach", "--headless", "--duration", "5", str(target.pid), state=tmp_path / "s2"
        )
        assert second.returncode == 1, second.stderr
        assert_no_loopscope_traceback(second.stderr)
        assert (
            f"another client is connected to the loopscope agent in process {target.pid}; it "
            "serves one client at a time. Quit that client first" in second.stderr
        ), second.stderr
        # The first goes on undisturbed, and detaches as usual.
        first_err.wait_for("lag", since=len(first_err.text))
        first.send_signal(signal.SIGINT)
        rest = first_err.rest(first)
        assert first.returncode == 0, rest
        assert f"detached from process {target.pid}: its agent removed itself" in rest
        assert _agent_gone(target)
        assert target.finish() == (0, "")
    finally:
        _stop(first)
        target.close()
