"""AgentSource against a stand-in agent: a real Unix socket served by a thread of the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import loopscope
from loopscope.events import Event, Hello, Lag, Notice, SourceState, encode
from loopscope.sources.agent import AgentSource

DEADLINE = 10.0


def _hello() -> Hello:
    return Hello(
        t=1.0,
        protocol=1,
        agent_version="0.1.0",
        pid=123,
        python="3.11.7",
        implementation="cpython",
        executable="/usr/bin/python3",
        argv=("app.py",),
        cwd="/",
        stdlib_paths=(),
        site_paths=(),
        monotonic=1.0,
    )


def _lag() -> Lag:
    return Lag(
        t=2.0, loop=1, window=0.25, interval=0.01, count=25, buckets=(20, 5), max=0.002, total=0.01
    )


class StandIn:
    """Listens on ``path``; for each connection, sends ``lines`` then keeps or drops it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.received = b""
        self.connected = threading.Event()
        self.conn: socket.socket | None = None

    def start(self, lines: list[bytes], *, hang_up: bool) -> threading.Thread:
        self.server.bind(str(self.path))
        self.server.listen(1)

        def serve() -> None:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed without a client ever connecting
            self.conn = conn
            self.connected.set()
            conn.sendall(b"".join(line + b"\n" for line in lines))
            if hang_up:
                conn.close()
                return
            while chunk := conn.recv(4096):
                self.received += chunk
            conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[StandIn]:
    agent = StandIn(tmp_path / "agent.sock")
    yield agent
    agent.close()


def _collect(source: AgentSource) -> tuple[threading.Thread, list[Event]]:
    events: list[Event] = []
    thread = threading.Thread(target=lambda: events.extend(source.events()), daemon=True)
    thread.start()
    return thread, events


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_waits_for_the_socket_then_reads_events_and_bad_lines(stand_in: StandIn) -> None:
    source = AgentSource(stand_in.path)
    reader, events = _collect(source)  # polling: the socket does not exist yet
    stand_in.start([encode(_hello()).encode(), b"{not json", encode(_lag()).encode()], hang_up=True)
    reader.join(DEADLINE)
    assert not reader.is_alive()

    live, hello, bad, lag, lost = events
    assert isinstance(live, SourceState) and (live.source, live.state) == ("agent", "live")
    assert hello == _hello()
    assert isinstance(bad, Notice) and bad.level == "warning"
    assert "bad message from the agent" in bad.message and "{not json" in bad.message
    assert lag == _lag()
    assert isinstance(lost, SourceState) and lost.state == "lost"


def test_close_from_another_thread_ends_a_blocked_read(stand_in: StandIn) -> None:
    stand_in.start([encode(_hello()).encode()], hang_up=False)
    source = AgentSource(stand_in.path)
    reader, events = _collect(source)
    _wait_for(lambda: len(events) >= 2, "the hello")
    source.close()
    reader.join(DEADLINE)
    assert not reader.is_alive()
    assert isinstance(events[-1], SourceState) and events[-1].state == "ended"


def test_detach_is_sent_to_the_agent(stand_in: StandIn) -> None:
    server = stand_in.start([encode(_hello()).encode()], hang_up=False)
    source = AgentSource(stand_in.path)
    reader, events = _collect(source)
    _wait_for(lambda: len(events) >= 2, "the hello")
    assert source.detach()
    _wait_for(lambda: stand_in.received, "the detach request")
    assert stand_in.received == b'{"op": "detach"}\n'
    source.close()
    reader.join(DEADLINE)
    server.join(DEADLINE)


def test_gives_up_when_the_target_is_gone(tmp_path: Path) -> None:
    source = AgentSource(tmp_path / "never.sock", alive=lambda: False)
    (state,) = list(source.events())
    assert isinstance(state, SourceState) and state.state == "unavailable"
    assert state.detail == "the program ended before its agent started"


def test_gives_up_after_the_connect_timeout(tmp_path: Path) -> None:
    source = AgentSource(tmp_path / "never.sock", connect_timeout=0.1)
    (state,) = list(source.events())
    assert isinstance(state, SourceState) and state.state == "unavailable"
    assert "could not connect to" in state.detail and "within 0.1 s" in state.detail


def test_close_while_waiting_for_the_socket(tmp_path: Path) -> None:
    source = AgentSource(tmp_path / "never.sock", connect_timeout=60)
    reader, events = _collect(source)
    source.close()
    reader.join(DEADLINE)
    assert not reader.is_alive()
    assert events == []


CLIENT = """
import sys
from loopscope.sources.agent import AgentSource
for event in AgentSource(sys.argv[1], connect_timeout=60).events():
    print(event.state, event.detail, sep="|")
"""


def test_a_socket_it_may_not_use_is_refused_at_once(stand_in: StandIn) -> None:
    """As another user (when root: the client runs as nobody), or on a socket without rights."""
    stand_in.start([], hang_up=True)
    python, user = sys.executable, None
    if os.geteuid() == 0:
        # nobody cannot run an interpreter under /root: use the system's, loopscope from source.
        python, user = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "", "nobody"
        if not python:
            pytest.skip("no system python3 that another user can run")
    else:
        stand_in.path.chmod(0)
    started = time.monotonic()
    result = subprocess.run(
        [python, "-c", CLIENT, str(stand_in.path)],
        user=user,
        cwd="/",
        env={"PYTHONPATH": str(Path(loopscope.__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    state, detail = result.stdout.strip().split("|")
    assert state == "unavailable"
    assert detail.startswith("permission denied")
    assert time.monotonic() - started < 20  # not after the 60 s connect timeout
