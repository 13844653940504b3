"""`loopscope attach --no-inject` on real targets: py-spy alone names the blocking functions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from attach.attach_targets import PlainTarget
from capabilities import needs
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.events import SourceState
from loopscope.sources.pyspy import PySpySource
from pythons import find_pythons

pytestmark = [
    pytest.mark.timeout(120),
    needs("py-spy"),
]

# The loop blocks in a CPU burn, then in time.sleep, every 150 ms; a ticker keeps it busy. The
# blocks last 150 ms: on a loaded machine a py-spy dump takes longer than its 20 ms period, and
# a block needs two samples.
TARGET = r"""
import asyncio, time


def render_report():
    end = time.perf_counter() + 0.15
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def slow_io():
    time.sleep(0.15)


async def ticker():
    while True:
        await asyncio.sleep(0.005)


async def blocker():
    while True:
        await asyncio.sleep(0.15)
        render_report()
        await asyncio.sleep(0.15)
        slow_io()


async def main():
    tasks = [asyncio.create_task(ticker()), asyncio.create_task(blocker())]
    print('{"ready": true}', flush=True)
    await asyncio.gather(*tasks)


asyncio.run(main())
"""


@pytest.fixture
def target(target_python: str, tmp_path: Path) -> Iterator[PlainTarget]:
    t = PlainTarget(target_python, tmp_path, source=TARGET)
    assert t.read() == {"ready": True}
    yield t
    t.close()


def test_cpu_and_sleep_blockers_are_named_without_an_agent(
    target: PlainTarget, tmp_path: Path
) -> None:
    out = loopscope(
        "attach", "--no-inject", "--headless", "--duration", "4", "--json", str(target.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert "observing it from outside with py-spy" in out.stderr
    assert "nothing was injected" in out.stderr
    report = json.loads(out.stdout)
    found = {
        f["location"]["function"]: f["evidence"]["cause"]
        for f in report["findings"]
        if f["code"] == "LS101" and f["location"] is not None
    }
    assert found == {"render_report": "cpu", "slow_io": "sleep"}, report
    assert report["target"]["pid"] == target.pid
    assert target.proc.poll() is None  # py-spy came and went; the program runs on


def test_the_source_ends_when_the_program_exits(tmp_path: Path) -> None:
    python = find_pythons()["3.12"]
    if python is None:
        pytest.skip("Python 3.12 is not installed")
    target = PlainTarget(python, tmp_path, source=TARGET)
    try:
        assert target.read() == {"ready": True}
        source = PySpySource(target.pid)
        events = source.events()
        first = next(events)
        assert isinstance(first, SourceState) and first.state == "live", first
        target.close()  # kills it
        rest = list(events)  # ends by itself: no close()
    finally:
        target.close()
    last = rest[-1]
    assert isinstance(last, SourceState)
    assert (last.state, last.detail) == ("ended", "the program exited")
