"""The py-spy source without py-spy: loop samples from `py-spy dump --json` output, blocks from
runs of samples, and what it says when py-spy cannot be used."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from loopscope.events import Block, Frame, SourceState
from loopscope.model import Model
from loopscope.rules import blocking
from loopscope.sources import pyspy
from loopscope.sources.pyspy import BlockFinder, PySpySource, Sample, loop_sample

ASYNCIO = "/usr/lib/python3.12/asyncio"
APP = "/srv/app/service.py"
LOOP_BELOW = [
    ("Handle._run", f"{ASYNCIO}/events.py", 84),
    ("BaseEventLoop._run_once", f"{ASYNCIO}/base_events.py", 1971),
    ("BaseEventLoop.run_forever", f"{ASYNCIO}/base_events.py", 641),
    ("run", f"{ASYNCIO}/runners.py", 194),
    ("<module>", APP, 40),
]
IDLE = [
    ("EpollSelector.select", "/usr/lib/python3.12/selectors.py", 468),
    *LOOP_BELOW[1:],
]


def _frames(*frames: tuple[str, str, int]) -> list[dict[str, Any]]:
    return [{"name": n, "filename": f, "line": ln, "module": None} for n, f, ln in frames]


def _thread(
    frames: list[tuple[str, str, int]], *, main: bool = True, active: bool = True
) -> dict[str, Any]:
    return {
        "pid": 100,
        "thread_id": 7 if main else 8,
        "thread_name": "MainThread" if main else "worker",
        "os_thread_id": 100 if main else 101,
        "active": active,
        "owns_gil": active,
        "frames": _frames(*frames),
    }


def _busy(function: str, line: int, caller_line: int = 20) -> list[tuple[str, str, int]]:
    return [(function, APP, line), ("handler", APP, caller_line), *LOOP_BELOW]


def test_the_callback_is_the_frames_above_the_loop_dispatch() -> None:
    sample = loop_sample(1.0, [_thread(_busy("render_report", 5))])
    assert sample is not None
    assert sample.callback == (Frame(APP, 5, "render_report"), Frame(APP, 20, "handler"))
    assert sample.thread_id == 7 and sample.active


def test_a_loop_waiting_in_the_selector_is_idle() -> None:
    sample = loop_sample(1.0, [_thread(IDLE, active=False)])
    assert sample is not None and sample.callback == ()


def test_the_main_thread_is_preferred_and_a_thread_without_a_loop_ignored() -> None:
    threads = [
        _thread(_busy("crunch", 9), main=False),
        _thread([("work", APP, 3), ("<module>", APP, 40)], main=True),
    ]
    sample = loop_sample(1.0, threads)
    assert sample is not None and sample.thread_id == 8  # the main thread runs no loop
    threads.append(_thread(_busy("render_report", 5), main=True))
    sample = loop_sample(1.0, threads)
    assert sample is not None and sample.callback[0].function == "render_report"


@pytest.mark.parametrize("dump", [None, {}, [], [{"frames": "x"}], [_thread([("f", APP, 1)])]])
def test_no_loop_thread_in_a_dump(dump: Any) -> None:
    assert loop_sample(1.0, dump) is None


def _sample(t: float, callback: tuple[Frame, ...] = (), active: bool = True) -> Sample:
    return Sample(t, 7, callback, active)


RENDER = (Frame(APP, 5, "render_report"), Frame(APP, 20, "handler"))
SLEEP = (Frame(APP, 12, "slow_io"), Frame(APP, 21, "handler"))


def _feed(finder: BlockFinder, samples: list[Sample]) -> list[Block]:
    blocks = [b for s in samples if (b := finder.add(s)) is not None]
    last = finder.flush()
    return blocks + ([last] if last is not None else [])


def test_a_run_of_samples_in_one_callback_is_a_block_timed_half_way_to_its_neighbours() -> None:
    samples = [_sample(0.0), *(_sample(0.02 * i, RENDER) for i in range(1, 4)), _sample(0.08)]
    (block,) = _feed(BlockFinder(0.02), samples)
    assert block.t == pytest.approx(0.01)
    assert block.duration == pytest.approx(0.06)
    assert block.samples == 3 and block.stacks[0].count == 3
    assert block.stacks[0].frames == RENDER
    assert block.cpu == pytest.approx(0.06) and not block.precise


def test_the_cpu_time_is_the_share_of_samples_on_cpu() -> None:
    samples = [_sample(0.0), _sample(0.02, SLEEP, False), _sample(0.04, SLEEP, False),
               _sample(0.06, SLEEP, True), _sample(0.08, SLEEP, False), _sample(0.10)]  # fmt: skip
    (block,) = _feed(BlockFinder(0.02), samples)
    assert block.cpu == pytest.approx(block.duration / 4)


def test_a_single_sample_and_short_runs_make_no_block() -> None:
    finder = BlockFinder(0.05)
    samples = [
        _sample(0.0), _sample(0.02, RENDER), _sample(0.04),  # one sample: any callback
        _sample(0.06, RENDER), _sample(0.08, RENDER), _sample(0.10),  # 40 ms < 50 ms
        _sample(0.12, RENDER), _sample(0.14, SLEEP),  # another callback ends the run
    ]  # fmt: skip
    assert _feed(finder, samples) == []


def test_a_change_of_callback_ends_a_block_and_starts_the_next() -> None:
    samples = [_sample(0.02 * i, RENDER) for i in range(3)]
    samples += [_sample(0.06 + 0.02 * i, SLEEP, False) for i in range(3)]
    first, second = _feed(BlockFinder(0.02), samples)
    assert first.t == 0.0 and first.duration == pytest.approx(0.05)
    assert second.t == pytest.approx(0.05) and second.duration == pytest.approx(0.05)
    assert second.stacks[0].frames == SLEEP


def test_the_model_names_the_function_and_cause_from_pyspy_blocks(tmp_path: Path) -> None:
    app = tmp_path / "service.py"
    app.write_text("\n" * 11 + "    time.sleep(0.05)\n")
    sleep = (Frame(str(app), 12, "slow_io"), Frame(str(app), 21, "handler"))
    render = (Frame(str(app), 5, "render_report"), Frame(str(app), 20, "handler"))
    samples: list[Sample] = []
    t = 0.0
    for _ in range(4):
        for callback, active in (((), False), (render, True), (render, True), ((), False),
                                 (sleep, False), (sleep, False), (sleep, False)):  # fmt: skip
            samples.append(_sample(t, callback, active))
            t += 0.02
    model = Model()
    for block in _feed(BlockFinder(), samples):
        model.apply(block)
    found = {f.location.function: f.evidence["cause"] for f in blocking.check(model.snapshot())
             if f.location is not None}  # fmt: skip
    assert found == {"render_report": "cpu", "slow_io": "sleep"}


def test_no_binary_is_unavailable_with_the_reason() -> None:
    source = PySpySource(os.getpid(), binary=None)
    source.binary = None
    (state,) = list(source.events())
    assert isinstance(state, SourceState)
    assert (state.source, state.state) == ("py-spy", "unavailable")
    assert "pip install py-spy" in state.detail


def test_a_bad_binary_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    (state,) = list(PySpySource(os.getpid(), binary=str(tmp_path / "nope")).events())
    assert isinstance(state, SourceState) and state.state == "unavailable"
    assert state.detail.startswith(f"cannot run {tmp_path / 'nope'}")


def test_a_failing_binary_says_what_pyspy_said(tmp_path: Path) -> None:
    fake = tmp_path / "py-spy"
    fake.write_text(
        "#!/bin/sh\necho 'Error: Permission denied (os error 13)' >&2\n"
        "echo 'Stack backtrace:' >&2\necho '  0: main' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    (state,) = list(PySpySource(os.getpid(), binary=str(fake)).events())
    assert isinstance(state, SourceState) and state.state == "unavailable"
    assert state.detail.startswith("Error: Permission denied (os error 13) (py-spy needs ptrace")
    assert "backtrace" not in state.detail


def test_find_pyspy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPSCOPE_PYSPY", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert pyspy.find_pyspy() is None
    beside = tmp_path / "py-spy"
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    assert pyspy.find_pyspy() == str(beside)
    monkeypatch.setenv("LOOPSCOPE_PYSPY", "/elsewhere/py-spy")
    assert pyspy.find_pyspy() == "/elsewhere/py-spy"


def test_on_cpu_means_running_and_holding_the_gil() -> None:
    # On 3.10 py-spy marks a thread in time.sleep active; it does not hold the GIL there.
    sleeping = _thread(_busy("slow_io", 12), active=True)
    sleeping["owns_gil"] = False
    sample = loop_sample(1.0, [sleeping])
    assert sample is not None and not sample.active


def test_a_callback_only_in_the_standard_library_is_the_loops_own_work() -> None:
    own_work = [
        ("Handle.__init__", f"{ASYNCIO}/events.py", 44),
        ("BaseEventLoop.call_soon", f"{ASYNCIO}/base_events.py", 768),
        *LOOP_BELOW,
    ]
    sample = loop_sample(1.0, [_thread(own_work)])
    assert sample is not None and sample.callback == ()
    in_a_package = [("dumps", "/venv/lib/python3.12/site-packages/orjson/x.py", 3), *LOOP_BELOW]
    sample = loop_sample(1.0, [_thread(in_a_package)])
    assert sample is not None and sample.callback[0].function == "dumps"


def test_a_first_failed_dump_is_not_the_end(tmp_path: Path) -> None:
    # On a busy target a dump fails now and then: one failure must not make py-spy unavailable.
    dump = tmp_path / "dump.json"
    dump.write_text('[{"pid": 1, "thread_id": 7, "os_thread_id": 1, "frames": []}]')
    fake = tmp_path / "py-spy"
    fake.write_text(
        f"#!/bin/sh\nif [ ! -e {tmp_path}/failed ]; then touch {tmp_path}/failed; "
        f"echo 'Error: Failed to get stack traces' >&2; exit 1; fi\ncat {dump}\n"
    )
    fake.chmod(0o755)
    source = PySpySource(os.getpid(), binary=str(fake), interval=0.001)
    events = source.events()
    state = next(events)
    source.close()
    rest = list(events)
    assert isinstance(state, SourceState) and state.state == "live", state
    assert [(e.state, e.detail) for e in rest if isinstance(e, SourceState)] == [
        ("ended", "closed")
    ]


def _trace(*changes: tuple[int, str, list[tuple[str, str, int]]]) -> list[dict[str, Any]]:
    """A chrometrace as `py-spy record --format chrometrace --idle --threads` writes it: the
    thread's root, then at each change of stack the frames that end and those that begin."""
    events: list[dict[str, Any]] = [
        {"ph": "B", "name": "thread (100): MainThread", "ts": 0, "tid": 7, "pid": 100,
         "args": {"filename": "", "line": 0}}
    ]  # fmt: skip
    stack: list[tuple[str, str, int]] = []
    for ts, _, frames in changes:
        outer_first = list(reversed(frames))
        keep = 0
        while keep < min(len(stack), len(outer_first)) and stack[keep] == outer_first[keep]:
            keep += 1
        for name, file, line in reversed(stack[keep:]):
            events.append({"ph": "E", "name": name, "ts": ts, "tid": 7, "pid": 100,
                           "args": {"filename": file, "line": line}})  # fmt: skip
        for name, file, line in outer_first[keep:]:
            events.append({"ph": "B", "name": name, "ts": ts, "tid": 7, "pid": 100,
                           "args": {"filename": file, "line": line}})  # fmt: skip
        stack = outer_first
    return events


def test_samples_from_a_recorded_trace_every_period_with_the_stack_then_current() -> None:
    busy = _busy("check_input", 13)
    # (at its end the trace closes every frame)
    trace = _trace((0, "idle", IDLE), (40_000, "busy", busy), (100_000, "idle", IDLE),
                   (140_000, "end", []))  # fmt: skip
    samples = list(pyspy.trace_samples(trace, 1000.0, 0.02, 100))
    assert [round(s.t - 1000.0, 3) for s in samples] == [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12]
    assert "".join(s.state for s in samples) == "iibbbii"  # on CPU or not: record does not say
    assert samples[2].callback == (Frame(APP, 13, "check_input"), Frame(APP, 20, "handler"))
    assert samples[2].thread_id == 7 and samples[2].native_id == 100


@pytest.mark.parametrize("trace", [None, {}, [], [{"ph": "B"}], [{"ts": "x"}]])
def test_a_trace_without_samples(trace: Any) -> None:
    assert list(pyspy.trace_samples(trace, 0.0, 0.02, 1)) == []
