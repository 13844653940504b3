"""Detaching leaves the program exactly as it was, and it carries on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from agent_harness import Client, Target, wait_until

from loopscope.events import Block, LoopStarted


def _assert_restored(target: Target) -> None:
    state = wait_until(
        lambda: (s := target.state())["threads"] == ["MainThread"] and s, what="agent threads"
    )
    assert state["set_running_loop"]
    assert state["selector"]
    assert state["factory"]
    assert state["handler"]
    assert state["showwarning"]
    assert not os.path.exists(target.socket_path)


@pytest.mark.parametrize("in_code", [False, True], ids=["launcher", "in-code"])
def test_detach_restores_everything(target_python: str, tmp_path: Path, in_code: bool) -> None:
    target = Target(target_python, tmp_path, in_code=in_code)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        target.send("sleep")
        target.read()
        client.wait_for(lambda e: isinstance(e, Block))
        client.send({"op": "detach"})
        client.read_until_eof()
        if in_code:
            _assert_restored(target)
        else:
            # The program set its factory and handler after the agent started: the agent
            # must not take them away.
            state = wait_until(lambda: (s := target.state())["threads"] == ["MainThread"] and s)
            assert state["set_running_loop"] and state["selector"]
            assert state["factory"] and state["handler"] and state["showwarning"]
            assert not os.path.exists(target.socket_path)
        # The program carries on normally.
        target.send("sleep")
        assert target.read()["took"] >= 0.05
        target.send("ping")
        assert target.read() == {"pong": True}
    finally:
        client.close()
        assert target.finish() == 0


def test_uninstall_in_code(target_python: str, tmp_path: Path) -> None:
    target = Target(target_python, tmp_path, in_code=True)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        target.send("uninstall")
        client.read_until_eof()
        _assert_restored(target)
        target.send("ping")
        assert target.read() == {"pong": True}
    finally:
        client.close()
        assert target.finish() == 0


def test_client_eof_keeps_the_agent(target_python: str, tmp_path: Path) -> None:
    target = Target(target_python, tmp_path)
    try:
        first = Client(target.socket_path)
        first.wait_for(lambda e: isinstance(e, LoopStarted))
        first.close()
        target.send("sleep")
        target.read()
        second = Client(target.socket_path)
        try:
            # The block happened while nobody was connected: replayed from the backlog.
            second.wait_for(lambda e: isinstance(e, Block))
        finally:
            second.close()
    finally:
        assert target.finish() == 0
