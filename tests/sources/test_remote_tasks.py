"""Tasks and await sites of a 3.14+ target read from outside by its own interpreter
(`_remote_debugging`), nothing injected: real targets on 3.14 and 3.15, in another root."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.attach import inspect
from loopscope.events import Census, ExternalTasks, SourceState
from loopscope.sources.remote_tasks import RemoteTasksSource, unavailable
from pythons import find_pythons, missing_reason

pytestmark = pytest.mark.timeout(60)

PROGRAM = """
import asyncio

async def fetch(i):
    await asyncio.sleep(100)

async def fan_out():
    await asyncio.gather(*(fetch(i) for i in range(3)))

async def guarded(lock):
    async with lock:
        pass

async def main():
    lock = asyncio.Lock()
    await lock.acquire()
    asyncio.create_task(fan_out(), name="fan-out")
    waiters = [asyncio.create_task(guarded(lock)) for _ in range(2)]
    await asyncio.sleep(0)
    print("ready", flush=True)
    await asyncio.sleep(100)

asyncio.run(main())
"""


@pytest.fixture(params=["3.14", "3.15"], scope="module")
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    python = find_pythons().get(request.param)
    if python is None:
        pytest.skip(missing_reason(request.param))
    script = tmp_path_factory.mktemp("remote") / "fan.py"
    script.write_text(PROGRAM)
    proc = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    yield proc, script
    proc.kill()
    proc.communicate()


def test_tasks_their_await_sites_and_what_they_wait_on(
    target: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, script = target
    info = inspect(proc.pid)
    assert info.other_root and unavailable(info) is None
    source = RemoteTasksSource(info, interval=0.1)
    census = tasks = None
    states = []
    for event in source.events():
        if isinstance(event, SourceState):
            states.append(event.state)
        elif isinstance(event, Census):
            census = event
        elif isinstance(event, ExternalTasks):
            tasks = event
            source.close()
    assert states[0] == "live" and census is not None and tasks is not None
    assert census.total == 7  # main, fan-out, three fetches, two waiting on the lock
    sites = {(s.function, s.line, s.kind): s.count for s in census.sites}
    assert sites[("fetch", 5, "sleep")] == 3, sites
    assert sites[("guarded", 11, "lock")] == 2, sites
    assert sites[("fan_out", 8, "task")] == 1, sites
    assert all(s.file == str(script) for s in census.sites)
    groups = {g.coroutine: g.count for g in tasks.live}
    assert groups == {"fetch": 3, "guarded": 2, "fan_out": 1, "main": 1}
    assert proc.poll() is None


def test_no_inject_reads_them_with_the_targets_interpreter(
    target: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    proc, _ = target
    out = loopscope(
        "attach", "--no-inject", "--no-pyspy", "--headless", "--duration", "1.5", str(proc.pid),
        state=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert "| tasks 7 |" in out.stdout + out.stderr
    assert f"read the tasks of process {proc.pid} with its own interpreter" in out.stderr
    assert "nothing was injected" in out.stderr
