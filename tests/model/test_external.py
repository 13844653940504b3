"""py-spy's samples in the model: blocks the agent could not sample are located from them, and
without the agent they give the loop's busy share and hot frames."""

from __future__ import annotations

import dataclasses

import pytest

from loopscope.events import Block, ExternalSamples, Frame, LoopStarted, SourceState, Stack
from loopscope.model import Model
from loopscope.model._external import HOLD_SECONDS
from loopscope.rules import blocking
from loopscope.sources.pyspy import Sample, SampleWindow

APP = "/srv/app/service.py"
LOOP, THREAD = 77, 140000
CHECK = (Frame("/usr/lib/python3.12/re/__init__.py", 167, "match"), Frame(APP, 13, "check_input"))


def _loop(model: Model) -> None:
    model.apply(SourceState(t=0.0, source="py-spy", state="live", detail="record"))
    model.apply(LoopStarted(t=0.0, loop=LOOP, thread_id=THREAD, thread_name="MainThread",
                            loop_class="asyncio.unix_events._UnixSelectorEventLoop",
                            features=("blocks",)))  # fmt: skip


def _gil_block(
    t: float, duration: float = 0.2, samples: int = 0, held: float | None = None
) -> Block:
    stacks = (Stack(samples, (Frame(APP, 20, "blocker"),)),) if samples else ()
    # A C call holding the GIL: on CPU throughout, the watchdog waiting for it from 10 ms in.
    held = duration - 0.01 if held is None else held
    return Block(t=t, loop=LOOP, duration=duration, task="Task-2", cpu=duration,
                 samples=samples, stacks=stacks, held=held)  # fmt: skip


def _samples(start: float, n: int, states: str = "c", thread: int = THREAD) -> ExternalSamples:
    """``n`` samples 20 ms apart from ``start``, in check_input while in state ``states``."""
    states = (states * n)[:n]
    return ExternalSamples(
        t=start + 0.02 * (n - 1), source="py-spy", thread_id=thread, native_id=1,
        window=0.02 * (n - 1), stacks=(Stack(n, CHECK),),
        offsets_ms=tuple(20 * i for i in range(n)), which=(0,) * n, states=states,
    )  # fmt: skip


def _located(model: Model) -> dict[str | None, str]:
    return {
        f.location.function if f.location else None: f.evidence["cause"]
        for f in blocking.check(model.snapshot())
    }


def test_samples_first_then_the_block_it_is_located_with_cause_gil() -> None:
    model = Model()
    _loop(model)
    for i in range(4):
        model.apply(_samples(10.0 + i, 16))
        model.apply(_gil_block(10.05 + i))
    assert _located(model) == {"check_input": "gil"}
    assert model.snapshot().external is not None
    assert model.snapshot().external.attributed == 4  # type: ignore[union-attr]


def test_a_collection_seen_from_outside_holding_the_gil_is_a_collection() -> None:
    # A full collection holds the GIL on CPU as a C call does; the agent timed it in the block.
    model = Model()
    _loop(model)
    for i in range(4):
        model.apply(_samples(10.0 + i, 16))
        model.apply(dataclasses.replace(_gil_block(10.05 + i), gc=0.19))
    assert [h.cause for h in model.snapshot().blocks.hot] == ["gc"]
    assert _located(model) == {}  # LS301's, not LS101's


def test_a_block_that_comes_first_waits_for_the_samples_of_its_span() -> None:
    model = Model()
    _loop(model)
    model.apply(_samples(9.0, 5))  # py-spy is running
    for i in range(3):
        model.apply(_gil_block(10.05 + i))
        assert model.snapshot().blocks.count == i  # held back
        model.apply(_samples(10.0 + i, 16))
    assert _located(model) == {"check_input": "gil"}


def test_a_block_whose_samples_never_come_is_added_after_a_while_unlocated() -> None:
    model = Model()
    _loop(model)
    model.apply(_samples(9.0, 5))
    for i in range(3):
        model.apply(_gil_block(10.0 + i * 0.3))
    assert model.snapshot().blocks.count == 0
    model.apply(_samples(11.0 + HOLD_SECONDS + 1, 2, "i"))
    assert model.snapshot().blocks.count == 3
    assert _located(model) == {None: "gil"}


def test_blocks_wait_for_a_sampler_that_has_not_sent_samples_yet() -> None:
    model = Model()
    _loop(model)  # py-spy is live: its first window comes a second later
    model.apply(_gil_block(10.05))
    assert model.snapshot().blocks.count == 0
    model.apply(_samples(10.0, 16))
    assert _located(model) == {"check_input": "gil"}


def test_held_blocks_are_added_when_the_sampler_ends() -> None:
    model = Model()
    _loop(model)
    model.apply(_gil_block(10.05))
    model.apply(SourceState(t=10.3, source="py-spy", state="ended", detail="closed"))
    assert _located(model) == {None: "gil"}


def test_without_a_sampler_blocks_are_added_at_once() -> None:
    model = Model()
    model.apply(_gil_block(10.05))
    assert model.snapshot().blocks.count == 1


def test_a_block_sampled_by_the_agent_keeps_its_own_stacks() -> None:
    model = Model()
    _loop(model)
    model.apply(_samples(10.0, 16))
    model.apply(_gil_block(10.05, samples=60))  # one sample per 3 ms: not starved
    assert model.snapshot().blocks.hot[0].function == "blocker"


def test_one_sample_for_a_whole_block_is_a_starved_watchdog() -> None:
    model = Model()
    _loop(model)
    for i in range(3):
        model.apply(_samples(10.0 + i, 16))
        model.apply(_gil_block(10.05 + i, samples=1))
    assert _located(model) == {"check_input": "gil"}


def test_samples_of_another_thread_are_not_the_loops() -> None:
    model = Model()
    _loop(model)
    for i in range(3):
        model.apply(_samples(10.0 + i, 16, thread=THREAD + 1))
        model.apply(_gil_block(10.05 + i))
    assert _located(model) == {None: "gil"}


@pytest.mark.parametrize(("states", "cause"), [("c", "cpu"), ("b", "unknown")])
def test_samples_locate_a_block_no_look_fell_in_without_making_it_gil(
    states: str, cause: str
) -> None:
    # A 30 ms burn between two of the watchdog's calm looks: no sample, no wait for the GIL,
    # no CPU time. The samples from outside locate it; they tell its cause only if they say
    # whether the thread was on CPU.
    model = Model()
    _loop(model)
    for i in range(3):
        model.apply(_samples(10.0 + i, 16, states))
        model.apply(dataclasses.replace(_gil_block(10.05 + i, 0.03, held=0.0), cpu=None))
    assert _located(model) == {"check_input": cause}
    # The same blocks, sampled once late by a watchdog that did not wait for the GIL.
    model = Model()
    _loop(model)
    for i in range(3):
        model.apply(_samples(10.0 + i, 16, "b"))
        model.apply(_gil_block(10.05 + i, 0.03, samples=1, held=0.0))
    assert list(_located(model)) == ["check_input"]
    assert _located(model)["check_input"] != "gil"


def test_off_cpu_samples_locate_the_block_but_do_not_make_it_gil() -> None:
    model = Model()
    _loop(model)
    for i in range(3):
        model.apply(_samples(10.0 + i, 16, "w"))
        model.apply(_gil_block(10.05 + i, samples=1, held=0.0))
    (cause,) = _located(model).values()
    assert list(_located(model)) == ["check_input"] and cause != "gil"


def test_busy_share_and_hot_frames_without_the_agent() -> None:
    model = Model()
    model.apply(_samples(10.0, 10, "ccccciiiii"))
    model.apply(_samples(10.2, 10, "iiiiiiiiii"))
    external = model.snapshot().external
    assert external is not None
    assert external.busy == 0.25 and external.samples == 20
    (hot,) = external.hot
    assert (hot.function, hot.line, hot.samples, hot.on_cpu) == ("check_input", 13, 5, 1.0)
    assert external.series == ((11.0, 0.25),)  # per second


def test_sample_windows() -> None:
    window = SampleWindow(0.25)
    callback = (Frame(APP, 13, "check_input"),)
    events = [
        window.add(Sample(10.0 + 0.05 * i, THREAD, callback if i % 2 else (), True, idle=not i % 2))
        for i in range(7)
    ]
    first = next(e for e in events if e is not None)
    assert first.offsets_ms == (0, 50, 100, 150, 200) and first.states == "icici"
    assert first.which == (-1, 0, -1, 0, -1) and first.stacks == (Stack(2, callback),)
    last = window.flush()
    assert last is not None and last.states == "ci" and last.t == 10.3


# A dense sampler from outside the GIL (remote_stacks, 3.14+): a sample every millisecond of a
# block, of the main thread (thread 0: its Python ident cannot be read from outside).

BURN = (Frame(APP, 31, "burn_python"),)


def _dense(start: float, n: int, frames: tuple[Frame, ...] = CHECK, states: str = "b",
           thread: int = 0) -> ExternalSamples:  # fmt: skip
    """``n`` samples 1 ms apart from ``start`` in ``frames``, then an idle one at 80 ms."""
    return ExternalSamples(
        t=start + 0.08, source="remote_stacks", thread_id=thread, native_id=1,
        window=0.08, stacks=(Stack(n, frames),), offsets_ms=(*range(n), 80),
        which=(0,) * n + (-1,), states=states * n + "i",
    )  # fmt: skip


def _dense_loop(model: Model, thread_name: str = "MainThread") -> None:
    model.apply(SourceState(t=0.0, source="remote_stacks", state="live", detail="pid 1"))
    model.apply(LoopStarted(t=0.0, loop=LOOP, thread_id=THREAD, thread_name=thread_name,
                            loop_class="asyncio.unix_events._UnixSelectorEventLoop",
                            features=("blocks",)))  # fmt: skip


def test_a_dense_sampler_gives_a_c_call_holding_the_gil_its_samples() -> None:
    model = Model()
    _dense_loop(model)
    for i in range(3):
        model.apply(_gil_block(10.0 + i, duration=0.06, samples=1))
        assert model.snapshot().blocks.count == i  # held for the samples of its span
        model.apply(_dense(10.0 + i, 58))
    assert _located(model) == {"check_input": "gil"}
    recent = model.snapshot().blocks.recent
    assert [b.samples for b in recent] == [58, 58, 58]
    assert all(b.location is not None and b.location.function == "check_input" for b in recent)


def test_a_dense_sampler_outnumbers_the_watchdogs_samples_of_a_python_burn() -> None:
    model = Model()
    _dense_loop(model)
    burn = Block(t=10.0, loop=LOOP, duration=0.06, task="Task-2", cpu=0.06, samples=12,
                 stacks=(Stack(12, BURN),))  # fmt: skip
    model.apply(burn)
    model.apply(_dense(10.0, 55, BURN))
    (record,) = model.snapshot().blocks.recent
    assert record.samples == 55 and record.location is not None
    assert record.location.function == "burn_python"
    assert record.cause == "cpu"  # the watchdog's samples say the GIL changed hands


def test_a_dense_sampler_with_fewer_samples_leaves_the_watchdogs() -> None:
    model = Model()
    _dense_loop(model)
    model.apply(_gil_block(10.0, duration=0.06, samples=30))
    model.apply(_dense(10.0, 20))
    (record,) = model.snapshot().blocks.recent
    assert record.samples == 30 and record.location is not None
    assert record.location.function == "blocker"


def test_main_thread_samples_are_not_those_of_a_loop_on_another_thread() -> None:
    model = Model()
    _dense_loop(model, thread_name="worker")
    model.apply(_gil_block(10.0, duration=0.06, samples=1))
    model.apply(_dense(10.0, 58))
    (record,) = model.snapshot().blocks.recent
    assert record.samples == 1 and record.location is not None
    assert record.location.function == "blocker"  # the watchdog's one sample, not main's


def test_held_blocks_are_added_when_the_stream_ends() -> None:
    # The session ends (a headless run's duration is over) before the sampler says it ended:
    # the blocks held for its samples are not lost from the last view.
    model = Model()
    _loop(model)
    model.apply(_samples(9.0, 5))
    model.apply(_gil_block(10.05))
    assert model.snapshot().blocks.count == 0
    model.end()
    assert model.snapshot().blocks.count == 1
    assert _located(model) == {None: "gil"}
