"""Choosing the collectors: install(collectors=...), $LOOPSCOPE_COLLECTORS, the launcher."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from agent_harness import Client

import loopscope.agent
from loopscope.agent._core import COLLECTORS, COLLECTORS_ENV, parse_collectors
from loopscope.events import Event, LoopStarted

LAUNCHER = Path(loopscope.agent.__file__).parent / "_launch.py"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, set(COLLECTORS)),
        ("all", set(COLLECTORS)),
        ("", set()),
        ("none", set()),
        ("lag,blocks", {"lag", "blocks"}),
        (" census , lifecycle ", {"census", "lifecycle"}),
        (["lifecycle"], {"lifecycle"}),
        ("-lifecycle,-census", set(COLLECTORS) - {"lifecycle", "census"}),
    ],
)
def test_parse_collectors(spec: str | list[str] | None, expected: set[str]) -> None:
    assert parse_collectors(spec) == expected


@pytest.mark.parametrize("spec", ["lag,-census", "lag,typo", "-typo"])
def test_parse_collectors_refuses(spec: str) -> None:
    with pytest.raises(ValueError, match="collector"):
        parse_collectors(spec)


async def _loop_started(client: Client) -> Event:
    return await asyncio.get_running_loop().run_in_executor(
        None, client.wait_for, lambda e: isinstance(e, LoopStarted)
    )


def _agent_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("loopscope"))


def test_collectors_turned_off_are_not_installed(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loopscope.agent.install(socket_path=path, collectors="lag")
        client = Client(path)
        try:
            started = await _loop_started(client)
            assert isinstance(started, LoopStarted)
            assert started.features == ("lag", "utilisation")
            assert loop.get_task_factory() is None  # no lifecycle
            assert _agent_threads() == ["loopscope-server"]  # no watchdog
            assert "select" in vars(loop._selector)  # type: ignore[attr-defined]
        finally:
            loopscope.agent.uninstall()
            client.close()
        assert "select" not in vars(loop._selector)  # type: ignore[attr-defined]

    asyncio.run(main())


def test_the_environment_chooses_when_install_is_not_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "a.sock")
    monkeypatch.setenv(COLLECTORS_ENV, "lifecycle")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loopscope.agent.install(socket_path=path)
        client = Client(path)
        try:
            started = await _loop_started(client)
            assert isinstance(started, LoopStarted)
            assert "lifecycle" in started.features
            assert not {"lag", "blocks", "census", "utilisation"} & set(started.features)
            assert loop.get_task_factory() is not None
            assert "select" not in vars(loop._selector)  # type: ignore[attr-defined]
        finally:
            loopscope.agent.uninstall()
            client.close()
        assert loop.get_task_factory() is None

    asyncio.run(main())


def test_the_launcher_refuses_an_unknown_collector(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text("print('ran')\n")
    done = subprocess.run(
        [sys.executable, str(LAUNCHER), str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "LOOPSCOPE_SOCKET": str(tmp_path / "a.sock"),
            COLLECTORS_ENV: "lag,nonsense",
        },
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "loopscope: unknown collector 'nonsense'" in done.stderr
    assert not (tmp_path / "a.sock").exists()
