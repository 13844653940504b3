"""The aiomonitor source against real monitored processes.

The targets run with the interpreter of loopscope's own virtualenv (``sys.executable``), since
aiomonitor is installed there (a dev dependency) and not in the pyenv Pythons the agent tests
use. Two of them listen on the SAME web UI port (aiomonitor binds it with ``SO_REUSEPORT``, as two
services left at the default 20102 would): the kernel hands each connection to either process, so
each session must find the port among its target's own sockets and keep only the answers that
target gave.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attach.attach_targets import PlainTarget
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.events import Census, ExternalTasks, SourceState
from loopscope.sources.aiomonitor import AiomonitorSource, find, seconds

aiomonitor = pytest.importorskip("aiomonitor", reason="aiomonitor is not installed")

pytestmark = pytest.mark.timeout(120)

# argv: web UI port, terminal UI port, the name that sets this process apart. Short jobs run
# through aiomonitor's task factory, so that terminated tasks are recorded.
TARGET = r"""
import asyncio, sys
import aiomonitor

WEB, TERM, NAME = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


async def worker():
    while True:
        await asyncio.sleep(0.05)


async def short_job():
    await asyncio.sleep(0.01)


async def main():
    loop = asyncio.get_running_loop()
    with aiomonitor.start_monitor(
        loop, webui_port=WEB, port=TERM, console_enabled=False, hook_task_factory=True
    ):
        keep = [asyncio.create_task(worker(), name=f"{NAME}-{i}") for i in range(3)]
        print('{"ready": true}', flush=True)
        while True:
            await asyncio.gather(*(short_job() for _ in range(2)))
            asyncio.create_task(short_job(), name=f"{NAME}-short")
            await asyncio.sleep(0.2)


asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def shared_port() -> int:
    return _free_port()


@pytest.fixture
def monitored(tmp_path: Path, shared_port: int) -> Iterator[dict[str, PlainTarget]]:
    targets: dict[str, PlainTarget] = {}
    try:
        for name in ("alpha", "beta"):
            directory = tmp_path / name
            directory.mkdir()
            source = TARGET.replace(
                "sys.argv[1]), int(sys.argv[2]), sys.argv[3]",
                f"{shared_port!r}), int({_free_port()!r}), {name!r}",
            )
            t = PlainTarget(sys.executable, directory, source=source)
            assert t.read(timeout=60) == {"ready": True}
            targets[name] = t
        yield targets
    finally:
        for t in targets.values():
            t.close()


def _reads(pid: int, n: int) -> list[ExternalTasks]:
    source = AiomonitorSource(pid, interval=0.05)
    out: list[ExternalTasks] = []
    events = source.events()
    try:
        for event in events:
            assert not (isinstance(event, SourceState) and event.state != "live"), event
            if isinstance(event, ExternalTasks):
                out.append(event)
                if len(out) >= n:
                    break
    finally:
        source.close()
    return out


def test_two_processes_on_one_port_each_get_their_own_tasks(
    monitored: dict[str, PlainTarget], shared_port: int
) -> None:
    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        pid = monitored[name].pid
        endpoint = find(pid)
        assert endpoint is not None and endpoint.port == shared_port
        for tasks in _reads(pid, 8):  # each read on connections the kernel spread at random
            names = {n for g in tasks.live for n in g.names}
            assert {f"{name}-0", f"{name}-1", f"{name}-2"} <= names, tasks
            assert not any(n.startswith(other) for n in names), tasks
            assert tasks.endpoint == f"127.0.0.1:{shared_port}"


def test_live_and_terminated_tasks_by_coroutine(monitored: dict[str, PlainTarget]) -> None:
    pid = monitored["alpha"].pid
    source = AiomonitorSource(pid, interval=0.1)
    census: Census | None = None
    tasks: ExternalTasks | None = None
    deadline = time.monotonic() + 30
    events = source.events()
    try:
        for event in events:
            if isinstance(event, Census):
                census = event
            elif isinstance(event, ExternalTasks):
                tasks = event
                if tasks.terminated_total >= 3 or time.monotonic() > deadline:
                    break
    finally:
        source.close()
    assert census is not None and tasks is not None
    live = {g.coroutine: g for g in tasks.live}
    assert live["worker"].count == 3
    assert live["worker"].oldest > 0  # the task factory records when each task started
    assert census.total == tasks.total == sum(g.count for g in tasks.live)
    assert tasks.terminated_total >= 3
    assert {g.coroutine for g in tasks.terminated} == {"short_job"}


def test_a_process_without_aiomonitor_is_unavailable(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:  # loopscope's own process listens on a port that is no aiomonitor
        (state,) = list(AiomonitorSource(os.getpid()).events())
    finally:
        listener.close()
    assert isinstance(state, SourceState)
    assert (state.source, state.state) == ("aiomonitor", "unavailable")


def test_ps_shows_the_aiomonitor_port(
    monitored: dict[str, PlainTarget], shared_port: int, tmp_path: Path
) -> None:
    out = loopscope("ps", "--json", state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    rows = {row["pid"]: row for row in json.loads(out.stdout)}
    for t in monitored.values():
        assert rows[t.pid]["aiomonitor_port"] == shared_port


def test_attach_without_injecting_reads_aiomonitor(
    monitored: dict[str, PlainTarget], shared_port: int, tmp_path: Path
) -> None:
    pid = monitored["beta"].pid
    out = loopscope(
        "attach", "--no-inject", "--headless", "--duration", "3", str(pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert f"from aiomonitor on :{shared_port}" in out.stderr
    # The summary lines count the monitored loop's tasks: 3 workers, main, a short job or two.
    counts = [int(n) for n in re.findall(r"\| tasks (\d+) \|", out.stdout)]
    assert counts and counts[-1] >= 4, out.stdout
    assert monitored["beta"].proc.poll() is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("00:05.250", 5.25), ("1h02:03.000", 3723.0), ("2d00:01.500", 172801.5), ("-", 0.0)],
)
def test_aiomonitor_durations(text: str, value: float) -> None:
    assert seconds(text) == pytest.approx(value)
