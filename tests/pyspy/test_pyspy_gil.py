"""py-spy beside the agent: a block in C code holding the GIL (a regex with catastrophic
backtracking) is named, with its cause, only thanks to py-spy. The agent's watchdog cannot take
a sample while the GIL is held: alone, it gets at most the one sample it takes when the call
returns (wherever the loop thread is then), cannot measure the thread's CPU time either, and
so cannot tell the cause."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attach.attach_targets import PlainTarget
from capabilities import needs
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.events import ExternalSamples
from loopscope.model import Model
from loopscope.sources.pyspy import PySpySource
from pythons import find_pythons

pytestmark = [
    pytest.mark.timeout(120),
    needs("py-spy"),
]

# The regex's length is chosen at start so that one match takes 100-300 ms on this machine.
TARGET = r"""
import asyncio, re, time

PATTERN = re.compile(r"(a+)+$")


def one_match(n):
    start = time.perf_counter()
    PATTERN.match("a" * n + "b")
    return time.perf_counter() - start


def calibrate():
    n = 14
    while one_match(n) < 0.1:
        n += 1
    return n


def check_input(n):
    return PATTERN.match("a" * n + "b")


async def ticker():
    while True:
        await asyncio.sleep(0.005)


async def blocker(n):
    while True:
        await asyncio.sleep(0.3)
        check_input(n)


async def main():
    n = calibrate()
    tasks = [asyncio.create_task(ticker()), asyncio.create_task(blocker(n))]
    print('{"ready": true}', flush=True)
    await asyncio.gather(*tasks)


asyncio.run(main())
"""


@pytest.fixture
def target(target_python: str, tmp_path: Path) -> Iterator[PlainTarget]:
    t = PlainTarget(target_python, tmp_path, source=TARGET)
    assert t.read(timeout=60) == {"ready": True}
    yield t
    t.close()


def _attach(target: PlainTarget, tmp_path: Path, *options: str, with_stderr: bool = False) -> Any:
    out = loopscope(
        "attach", *options, "--headless", "--duration", "4", "--json", str(target.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert target.proc.poll() is None
    report = json.loads(out.stdout)
    return (report, out.stderr) if with_stderr else report


def _gil_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        f for f in report["findings"] if f["code"] == "LS101" and f["evidence"]["cause"] == "gil"
    ]


@needs("ptrace")
def test_the_agent_alone_names_a_c_call_holding_the_gil_by_its_starved_watchdog(
    target: PlainTarget, tmp_path: Path
) -> None:
    report = _attach(target, tmp_path, "--no-pyspy")
    # A block with no sample at all is "gil", but has no location; one whose watchdog waited
    # for the GIL has the few samples it took when the call returned: they name the caller.
    located = {f["location"]["function"] for f in _gil_findings(report) if f["location"]}
    assert located <= {"check_input", "one_match"}, report
    assert _gil_findings(report), report
    blocking = [f for f in report["findings"] if f["code"] == "LS101"]
    assert sum(f["evidence"]["count"] for f in blocking) >= 3, report
    for f in blocking:  # starved: a few samples per block, where 100 ms give dozens
        assert f["evidence"]["samples"] <= 5 * f["evidence"]["count"], f


@needs("ptrace")
def test_with_pyspy_the_c_call_holding_the_gil_is_named(
    target: PlainTarget, tmp_path: Path
) -> None:
    report, stderr = _attach(target, tmp_path, with_stderr=True)
    located = {f["location"]["function"] for f in _gil_findings(report) if f["location"]}
    assert located == {"check_input"}, (report, stderr)
    (finding,) = [f for f in _gil_findings(report) if f["location"]]
    assert finding["location"]["file"].endswith("service.py")
    assert finding["evidence"]["samples"] > 0


def test_run_with_pyspy_names_the_c_call_holding_the_gil(tmp_path: Path) -> None:
    program = tmp_path / "service.py"
    program.write_text(TARGET)
    out = loopscope(
        "run", "--pyspy", "--headless", "--duration", "6", "--json", str(program),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    located = {f["location"]["function"] for f in _gil_findings(json.loads(out.stdout))
               if f["location"]}  # fmt: skip
    # (The calibration at start-up runs the same regular expression on the loop: one_match.)
    assert {"check_input"} <= located <= {"check_input", "one_match"}, out.stdout


def test_native_stacks_show_the_c_code_and_locate_the_application_function(
    tmp_path: Path,
) -> None:
    python = find_pythons()["3.12"]
    if python is None:
        pytest.skip("Python 3.12 is not installed")
    t = PlainTarget(python, tmp_path, source=TARGET)
    model = Model()
    native_seen = False
    try:
        assert t.read(timeout=60) == {"ready": True}
        source = PySpySource(t.pid, native=True, blocks=False)
        deadline = time.monotonic() + 60
        for event in source.events():
            model.apply(event)
            if isinstance(event, ExternalSamples):
                assert event.native
                frames = [f for s in event.stacks for f in s.frames]
                native_seen = native_seen or (
                    any(f.function == "check_input" for f in frames)
                    and any(not f.file.endswith(".py") for f in frames)
                )
            external = model.snapshot().external
            if native_seen and external is not None and external.hot:
                break
            assert time.monotonic() < deadline, "py-spy --native never saw the regex"
        source.close()
    finally:
        t.close()
    assert external is not None and external.hot[0].function == "check_input"
