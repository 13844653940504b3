"""Whatever a client sends, the agent neither fails nor does anything but what the protocol
says: fuzzing its message reader, then garbage sent to a real agent in a real target."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_harness import Client, Target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopscope.agent._guard import Guard
from loopscope.agent._server import MAX_LINE, Outbox, Server
from loopscope.events import Block, Event, Hello, LoopStarted

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
ops = st.sampled_from(["detach", "detach_on_close", "config", "task_detail", "explode", ""])
messages = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"op": ops | json_values}, optional={"protocol": st.integers(), "x": json_values}
    ).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),  # not JSON, not UTF-8, NUL bytes...
    st.sampled_from(
        [
            b"[" * 60_000,  # deeper than any parser allows
            b"1" * 20_000,  # an integer too long to convert
            b'{"op": "detach"',  # cut short
            b"\xff\xfe{}",
            b'{"op": "hello", "protocol": 999}',  # a version we do not speak: just ignored
        ]
    ),
)


class _Reader:
    """A `Server` that is never started: its message reader fed through a socket pair."""

    def __init__(self) -> None:
        self.detaches = 0
        self.notices: list[Event] = []
        self.outbox = Outbox()
        self.server = Server(
            "/nonexistent/never-bound.sock",
            self.outbox,
            Guard(self.notices.append),
            self._no_hello,
            self._detach,
            private_dir=False,
        )
        self.ours, self.theirs = socket.socketpair()
        self.ours.setblocking(False)
        self.server._client = self.ours

    @staticmethod
    def _no_hello() -> Hello:
        raise AssertionError("the reader never says hello")

    def _detach(self) -> None:
        self.detaches += 1
        self.server._stop.set()  # as the agent's uninstall does

    def feed(self, data: bytes) -> None:
        """Send ``data`` and end; the server reads until it detaches or drops the client."""

        def send() -> None:
            with contextlib.suppress(OSError):  # the reader hung up first
                self.theirs.sendall(data)
                self.theirs.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)  # more than a socket buffer holds may be sent
        sender.start()
        while self.server._client is not None and not self.server._stop.is_set():
            select.select([self.ours], [], [], 1.0)
            self.server._read(self.ours)
        self.theirs.shutdown(socket.SHUT_RDWR)  # wakes a sender the reader left behind
        sender.join()

    def close(self) -> None:
        self.theirs.close()
        self.ours.close()
        self.outbox.close()


def _expected(data: bytes) -> tuple[bool, bool]:
    """(detached, dropped for a line too long), as the protocol says: lines are taken in order
    up to the first too long; ``detach`` detaches at once; ``detach_on_close`` detaches when the
    connection ends, however it ends; anything else is ignored."""
    *lines, rest = data.split(b"\n")
    on_close = False
    for line in lines:
        if len(line) > MAX_LINE:
            return on_close, True
        try:
            message: Any = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(message, dict):
            if message.get("op") == "detach":
                return True, False
            on_close = on_close or message.get("op") == "detach_on_close"
    return on_close, len(rest) > MAX_LINE


@pytest.fixture
def reader() -> Iterator[_Reader]:
    r = _Reader()
    yield r
    r.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, max_size=8), st.sampled_from([b"\n", b"\r\n"]), st.booleans())
def test_the_message_reader_survives_anything(
    lines: list[bytes], newline: bytes, last_complete: bool
) -> None:
    data = newline.join(lines) + (newline if last_complete else b"")
    r = _Reader()
    try:
        r.feed(data)
        detached, too_long = _expected(data.replace(b"\r\n", b"\n"))
        assert r.detaches == detached
        assert r.notices == []  # nothing raised inside the reader
        if too_long:
            assert r.server._client is None
    finally:
        r.close()


def test_a_line_too_long_drops_the_client(reader: _Reader) -> None:
    reader.feed(b'{"op": "nop"}\n' + b"x" * (MAX_LINE + 1) + b'\n{"op": "detach"}\n')
    assert reader.detaches == 0  # the line after the long one was never read
    assert reader.server._client is None


def test_detach_on_close_detaches_when_the_client_is_dropped(reader: _Reader) -> None:
    reader.feed(b'{"op": "detach_on_close"}\n' + b"x" * (MAX_LINE + 1))
    assert reader.detaches == 1
    assert reader.server._client is None


# -- a real agent in a real target -------------------------------------------------------------

GARBAGE = [
    b"\x00\x01\x02\xff\xfe\n",
    b"not json at all\n",
    b"[1, 2, 3]\n",
    b'"a string"\n',
    b'{"op": 42}\n',
    b'{"op": "hello", "protocol": 999}\n',
    b'{"op": "config", "collectors": "none", "protocol": 2}\n',
    b'{"op": "detach"',  # cut short: the rest of the line never comes...
    b"garbage\n",  # ...so this ends it, and makes it invalid
    b"[" * 60_000 + b"\n",
    b"9" * 20_000 + b"\n",
    b"\n\n\n",
]


def test_garbage_from_a_client_leaves_the_agent_serving(target_python: str, tmp_path: Path) -> None:
    target = Target(target_python, tmp_path)
    try:
        rude = Client(target.socket_path)
        rude.wait_for(lambda e: isinstance(e, LoopStarted))
        for chunk in GARBAGE:
            rude._sock.sendall(chunk)
        target.send("sleep")
        target.read()
        rude.wait_for(lambda e: isinstance(e, Block))  # still served, nothing detached
        rude._sock.sendall(b"y" * (MAX_LINE + 10))  # too long: the agent hangs up
        rude.read_until_eof()
        rude.close()
        polite = Client(target.socket_path)
        try:
            polite.wait_for(lambda e: isinstance(e, Hello))
            target.send("sleep")
            target.read()
            polite.wait_for(lambda e: isinstance(e, Block) and e.t > 0)
            assert not [e for e in polite.events if e.kind == "notice"], polite.kinds()
        finally:
            polite.close()
        state = target.state()
        assert state["factory"] and state["handler"]  # the program's own, untouched
        target.send("ping")
        assert target.read() == {"pong": True}
    finally:
        assert target.finish() == 0


def test_a_hello_that_cannot_be_built_turns_away_only_that_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import loopscope.agent

    path = str(tmp_path / "a.sock")
    agent = loopscope.agent.install(socket_path=path)
    try:
        monkeypatch.setattr(sys, "argv", [object()])  # a program may put anything there
        turned_away = Client(path)
        assert turned_away.read_until_eof() == []
        turned_away.close()
        monkeypatch.undo()
        served = Client(path)
        served.wait_for(lambda e: isinstance(e, Hello))
        notice = served.wait_for(lambda e: e.kind == "notice")  # the failure, from the backlog
        assert "hello" in notice.message and "TypeError" in notice.message  # type: ignore[attr-defined]
        served.close()
        assert agent.active
    finally:
        agent.uninstall()
