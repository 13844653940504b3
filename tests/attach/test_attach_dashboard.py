"""`loopscope attach PID` with its dashboard, in a pseudo-terminal: live data, the header says how
it attached, and quitting detaches; with `--record FILE`, the recording replays."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_targets import PlainTarget

from capabilities import needs
from loopscope.record.reader import Recording
from pythons import find_pythons

# Serial: the dashboard of a target starved of a core by the parallel phase's other tests
# comes too late for its deadlines.
pytestmark = [pytest.mark.timeout(120), needs("ptrace"), pytest.mark.serial]
_ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=]*[A-Za-z~]|\x1b[()][A-Z0-9]|\x1b[=>]")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[PlainTarget]:
    python = find_pythons().get("3.11")
    if python is None:
        pytest.skip("Python 3.11 is not installed")
    t = PlainTarget(python, tmp_path)
    yield t
    t.close()


class Terminal:
    """loopscope running in a pseudo-terminal; ``screen`` is what it wrote, escapes removed."""

    def __init__(self, *args: str, state: Path) -> None:
        pid, self.fd = pty.fork()
        if pid == 0:  # the child: become loopscope
            os.environ.update(
                TERM="xterm-256color", COLUMNS="120", LINES="40", XDG_STATE_HOME=str(state)
            )
            os.execv(sys.executable, [sys.executable, "-m", "loopscope", *args])
        self.pid = pid
        self.raw = b""

    @property
    def text(self) -> str:
        return _ESCAPES.sub(b"", self.raw).decode(errors="replace")

    def wait_for(self, *phrases: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(p in self.text for p in phrases):
            assert time.monotonic() < deadline, f"not all of {phrases} in {self.text[-2000:]!r}"
            self._read(deadline - time.monotonic())

    def press(self, key: bytes) -> None:
        os.write(self.fd, key)

    def exit_code(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._read(deadline - time.monotonic()):
                break
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)

    def _read(self, timeout: float) -> bool:
        readable, _, _ = select.select([self.fd], [], [], max(0.0, min(timeout, 0.2)))
        if not readable:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.raw += data
        return bool(data)

    def close(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def test_dashboard_shows_how_it_attached_and_quitting_detaches(
    target: PlainTarget, tmp_path: Path
) -> None:
    terminal = Terminal("attach", str(target.pid), state=tmp_path / "state")
    try:
        terminal.wait_for(f"attached to pid {target.pid}", "agent injected with ptrace")
        terminal.wait_for("render_report")  # the hot blocking frame, from live data
        terminal.press(b"q")
        assert terminal.exit_code() == 0
    finally:
        terminal.close()
    assert f"detached from process {target.pid}: its agent removed itself" in terminal.text
    state = target.ask("state")
    assert [t for t in state["threads"] if t.startswith("loopscope")] == []
    assert target.finish() == (0, "")


def test_dashboard_records_through_the_target_exiting_and_the_recording_replays(
    target: PlainTarget, tmp_path: Path
) -> None:
    path = tmp_path / "attached.lsrec"
    terminal = Terminal("attach", "--record", str(path), str(target.pid), state=tmp_path / "state")
    try:
        terminal.wait_for(f"attached to pid {target.pid}", "REC", str(path.name))
        terminal.wait_for("render_report")
        target.send("exit")  # the program ends while loopscope watches and records
        assert target.proc.wait(timeout=15) == 0
        terminal.wait_for("program exited")
        terminal.press(b"q")
        assert terminal.exit_code() == 0
    finally:
        terminal.close()
    assert f"process {target.pid} exited" in terminal.text
    assert f"see: loopscope report {path}" in terminal.text
    with Recording.open(path) as rec:
        assert rec.info.complete
        kinds = [e.kind for e in rec.events()]
    assert "block" in kinds and kinds[-1] == "target_exited"

    replay = Terminal("replay", str(path), state=tmp_path / "state")
    try:
        replay.wait_for(f"replay of {path.name}", "render_report", "program exited")
        replay.press(b"q")
        assert replay.exit_code() == 0
    finally:
        replay.close()
