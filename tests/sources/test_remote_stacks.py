"""A target's loop thread sampled from outside its GIL by its own interpreter (3.14+'s
`_remote_debugging`, `_unwind` on 3.10-3.13): a C call that holds the GIL (a regular expression
that backtracks) gets many samples, which the agent's watchdog cannot take, and `run` and
`attach` name the call with them. Real targets on every supported Python, 3.14 and 3.15 in
another root (tests/pythons.py)."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.attach import inspect
from loopscope.events import ExternalSamples, SourceState
from loopscope.sources.remote_stacks import RemoteStacksSource, unavailable
from pythons import SUPPORTED, find_pythons, missing_reason

pytestmark = pytest.mark.timeout(120)

# One match of the regex takes 60-120 ms on this machine (chosen at start), every 0.3 s.
PROGRAM = r"""
import asyncio, re, time

PATTERN = re.compile(r"(a+)+$")


def one_match(n):
    start = time.perf_counter()
    PATTERN.match("a" * n + "b")
    return time.perf_counter() - start


def check_input(n):
    return PATTERN.match("a" * n + "b")


async def main():
    n = 16
    while min(one_match(n) for _ in range(3)) < 0.06:
        n += 1
    print("ready", flush=True)
    while True:
        await asyncio.sleep(0.3)
        check_input(n)


asyncio.run(main())
"""


@pytest.fixture(params=SUPPORTED, scope="module")
def python(request: pytest.FixtureRequest) -> str:
    found = find_pythons().get(request.param)
    if found is None:
        pytest.skip(missing_reason(request.param))
    return found


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("remote-stacks") / "service.py"
    path.write_text(PROGRAM)
    return path


@pytest.fixture(scope="module")
def target(python: str, script: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.communicate()


def _runs(events: list[ExternalSamples], function: str) -> list[int]:
    """Lengths of the runs of consecutive samples whose stack names ``function``."""
    runs, current = [], 0
    for e in events:
        for which in e.which:
            frames = e.stacks[which].frames if which >= 0 else ()
            if any(f.function == function for f in frames):
                current += 1
            elif current:
                runs.append(current)
                current = 0
    return runs


@pytest.mark.serial  # samples a millisecond apart: judged with the cores free
def test_a_c_call_holding_the_gil_gets_a_sample_a_millisecond(
    target: subprocess.Popen[bytes],
) -> None:
    info = inspect(target.pid)
    assert unavailable(info) is None
    source = RemoteStacksSource(info)
    windows: list[ExternalSamples] = []
    states: list[SourceState] = []
    deadline = time.monotonic() + 30
    for event in source.events():
        if isinstance(event, SourceState):
            states.append(event)
            if event.state == "unavailable" and "ermission" in event.detail:
                pytest.skip(f"the target's interpreter may not read it: {event.detail}")
        elif isinstance(event, ExternalSamples):
            windows.append(event)
            if len(_runs(windows, "check_input")) >= 6 or time.monotonic() > deadline:
                source.close()
    assert [s.state for s in states] == ["live", "ended"], states
    runs = _runs(windows, "check_input")
    assert len(runs) >= 6, runs
    # 60 ms and more of a call holding the GIL, read every millisecond once seen twice
    assert statistics.median(runs[1:]) >= 20, runs
    assert all(e.source == "remote_stacks" and e.thread_id == 0 for e in windows)
    assert target.poll() is None


@pytest.mark.serial  # samples a millisecond apart: judged with the cores free
def test_run_names_the_c_call_from_its_samples(python: str, script: Path, tmp_path: Path) -> None:
    out = loopscope(
        "run", "--python", python, "--headless", "--duration", "5", "--json", str(script),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    _assert_named(json.loads(out.stdout))


def _assert_named(report: dict[str, Any]) -> None:
    """check_input is named, its cause the GIL, from 20 samples a block or more."""
    blocking = [f for f in report["findings"] if f["code"] == "LS101" and f["location"]]
    named = [f for f in blocking if f["location"]["function"] == "check_input"]
    assert named, report
    (finding,) = named
    evidence = finding["evidence"]
    assert evidence["cause"] == "gil", finding
    assert evidence["count"] >= 4, finding
    # the watchdog alone takes at most a sample or two of each (test_pyspy_gil.py)
    assert evidence["samples"] >= 20 * evidence["count"], finding


@pytest.mark.serial  # samples a millisecond apart: judged with the cores free
def test_attach_names_the_c_call_from_its_samples(
    target: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    out = loopscope(
        "attach", "--headless", "--duration", "4", "--json", str(target.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    _assert_named(json.loads(out.stdout))
    assert target.poll() is None


def test_a_process_without_python_is_said_to_be_why(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        (state,) = list(RemoteStacksSource(inspect(proc.pid)).events())
    finally:
        proc.kill()
        proc.wait()
    assert isinstance(state, SourceState) and state.source == "remote_stacks"
    assert state.state == "unavailable"
    assert state.detail == f"process {proc.pid} runs no Python: needs Python 3.10+"


def test_the_stacks_the_helper_has_forgotten_are_forgotten_too() -> None:
    """The helper numbers each new stack and, past `STACK_IDS`, forgets them all and goes on
    numbering: over a long session the ids it sent must not pile up in loopscope."""
    from loopscope.sources.remote_stacks import STACK_IDS, _Batches

    batches = _Batches(pid=1)
    dispatch = ["/usr/lib/python3.12/asyncio/events.py", 84, "Handle._run"]
    samples = []
    for key in range(3 * STACK_IDS):
        stack = [["/app/service.py", key + 1, "handler"], dispatch]
        batch = {"stacks": {str(key): stack}, "samples": [[1000.0 + key, key, -1]]}
        samples.extend(batches.samples(batch))
    assert len(batches._stacks) <= 2 * STACK_IDS
    assert len(samples) == 3 * STACK_IDS  # each sample found its stack when it came
    # the latest STACK_IDS ids, those the helper may still send samples of, are all known
    late = {"samples": [[2000.0, 3 * STACK_IDS - STACK_IDS, -1], [2001.0, 3 * STACK_IDS - 1, -1]]}
    assert [s.callback[0].line for s in batches.samples(late)] == [2 * STACK_IDS + 1, 3 * STACK_IDS]
    # a frame many stacks share is kept once, and goes with the stacks that held it
    kept = {id(frame) for frames, _ in batches._stacks.values() for frame in frames}
    assert len(kept) == len(batches._stacks) + 1  # each stack's own line, and `dispatch`
    assert len(batches._known) <= len(kept)
