"""The task lifecycle collector, on real loops: counts, chaining, restoring, guarding."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import pytest

from loopscope.agent._guard import Guard
from loopscope.agent._lifecycle import SWEEP_EVERY, LifecycleCollector, SamplingPolicy
from loopscope.agent._periodic import LoopContext
from loopscope.events import Event, Lifecycle, Notice, decode

SRC = str(Path(__file__).resolve().parents[2] / "src")
TIMEOUT = 10.0


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Let the loop run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


class Recorder:
    """The events a collector emits, summed over its windows."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.guard = Guard(self.events.append)

    def collector(self, loop: asyncio.AbstractEventLoop, window: float) -> LifecycleCollector:
        return LifecycleCollector(
            LoopContext(loop, id(loop), self.events.append, self.guard), window=window
        )

    def total(self, field: str) -> int:
        return sum(getattr(e, field) for e in self.events if isinstance(e, Lifecycle))

    def created_by(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.events:
            if isinstance(e, Lifecycle):
                for name, n in e.created_by.items():
                    out[name] = out.get(name, 0) + n
        return out

    def notices(self) -> list[Notice]:
        return [e for e in self.events if isinstance(e, Notice)]


async def ok() -> int:
    await asyncio.sleep(0)
    return 1


async def fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("boom")


async def linger(seconds: float) -> None:
    await asyncio.sleep(seconds)


def test_counts_created_finished_failed_and_cancelled_exactly() -> None:
    recorder = Recorder()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lifecycle = recorder.collector(loop, window=0.02)
        lifecycle.start()
        # Enough tasks for sweeps between windows, some living across several windows (so
        # that they are counted by a done callback), in bursts like a server's.
        expected = {"ok": 0, "fail": 0, "linger": 0}
        for burst in range(12):
            tasks: list[asyncio.Task[Any]] = [asyncio.create_task(ok()) for _ in range(50)]
            tasks += [asyncio.create_task(fail()) for _ in range(3)]
            long_lived = asyncio.create_task(linger(0.1))
            doomed = [asyncio.create_task(linger(60)) for _ in range(2)]
            expected["ok"] += 50
            expected["fail"] += 3
            expected["linger"] += 3
            await asyncio.sleep(0)
            for task in doomed:
                task.cancel()
            if burst % 4 == 0:
                await long_lived
            else:
                long_lived.cancel()
            await asyncio.gather(*tasks, *doomed, return_exceptions=True)
        created = sum(expected.values())
        await until(lambda: recorder.total("finished") == created, "every end counted")
        lifecycle.stop()
        assert recorder.total("created") == created
        assert recorder.total("failed") == 12 * 3
        assert recorder.total("cancelled") == 12 * (2 + 1) - 3  # bursts 0, 4, 8 await theirs
        assert recorder.created_by() == {
            "ok": expected["ok"],
            "fail": expected["fail"],
            "linger": expected["linger"],
        }
        assert all(e.window > 0 for e in recorder.events if isinstance(e, Lifecycle))

    asyncio.run(main())
    assert recorder.notices() == []


def test_counts_tasks_that_outlive_every_sweep() -> None:
    recorder = Recorder()

    async def main() -> None:
        lifecycle = recorder.collector(asyncio.get_running_loop(), window=0.01)
        lifecycle.start()
        server = asyncio.Event()

        async def connection() -> None:
            await server.wait()

        connections = [asyncio.create_task(connection()) for _ in range(SWEEP_EVERY * 70)]
        await until(lambda: len(lifecycle._watched) == len(connections), "done callbacks")
        server.set()
        await asyncio.gather(*connections)
        await until(lambda: recorder.total("finished") == len(connections), "the ends counted")
        lifecycle.stop()
        assert recorder.total("created") == len(connections)
        assert recorder.total("failed") == recorder.total("cancelled") == 0

    asyncio.run(main())


def test_chains_to_the_programs_factory_and_handler_and_restores_them() -> None:
    recorder = Recorder()
    made: list[str] = []  # names: holding the tasks would keep the failed one from being freed
    handled: list[dict[str, Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(coro.__qualname__)
        return task

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        handled.append(context)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)
        loop.set_exception_handler(handler)
        lifecycle = recorder.collector(loop, window=0.01)
        lifecycle.start()
        assert loop.get_task_factory() is not factory

        assert await asyncio.create_task(ok()) == 1
        assert made == ["ok"]

        # A failed task nobody awaits: asyncio reports it when the task is freed.
        unretrieved = asyncio.create_task(fail())
        await until(unretrieved.done, "the task to fail")
        del unretrieved

        def reported() -> bool:
            gc.collect()
            return bool(handled) and bool(recorder.notices())

        await until(reported, "the report of the unretrieved exception")
        (context,) = handled
        assert "exception was never retrieved" in context["message"]
        (notice,) = recorder.notices()
        assert notice.level == "warning"
        assert notice.message.startswith("1 task exception was never retrieved")
        assert notice.message.endswith("latest: ValueError: boom (task fail)")

        lifecycle.stop()
        assert loop.get_task_factory() is factory
        assert loop.get_exception_handler() is handler
        await asyncio.create_task(ok())
        assert made == ["ok", "fail", "ok"]
        assert recorder.total("created") == 2
        loop.set_task_factory(None)
        loop.set_exception_handler(None)

    asyncio.run(main())


def test_without_a_factory_or_handler_restores_none_and_uses_the_default_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lifecycle = recorder.collector(loop, window=0.01)
        lifecycle.start()
        named = asyncio.create_task(ok(), name="named")
        assert named.get_name() == "named"
        await named
        loop.call_exception_handler({"message": "something else went wrong"})
        lifecycle.stop()
        assert loop.get_task_factory() is None
        assert loop.get_exception_handler() is None

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
    assert "something else went wrong" in caplog.text
    assert recorder.notices() == []


def test_a_program_factory_installed_over_ours_stays() -> None:
    recorder = Recorder()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lifecycle = recorder.collector(loop, window=60)
        lifecycle.start()
        ours = loop.get_task_factory()
        assert ours is not None

        def theirs(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            return ours(loop, coro, **kwargs)

        loop.set_task_factory(theirs)
        lifecycle.stop()
        assert loop.get_task_factory() is theirs
        assert await asyncio.create_task(ok()) == 1  # ours passes through
        loop.set_task_factory(None)

    asyncio.run(main())


class Odd(Coroutine[Any, None, Any]):
    """A coroutine whose name cannot be read: loopscope's sweep fails on it."""

    def __init__(self) -> None:
        self._inner = ok()

    def send(self, value: None) -> Any:
        return self._inner.send(value)

    def throw(self, *args: Any) -> Any:
        return self._inner.throw(*args)

    def close(self) -> None:
        self._inner.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._inner.__await__()

    def __getattr__(self, name: str) -> Any:
        if name == "__qualname__":
            raise RuntimeError("no name")
        raise AttributeError(name)


def test_a_failing_hook_is_disabled_and_the_program_runs_on() -> None:
    recorder = Recorder()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lifecycle = recorder.collector(loop, window=60)
        lifecycle.start()
        odd = asyncio.create_task(Odd())
        tasks = [asyncio.create_task(ok()) for _ in range(SWEEP_EVERY)]  # the sweep fails
        assert await odd == 1
        assert await asyncio.gather(*tasks) == [1] * SWEEP_EVERY
        assert not recorder.guard.enabled("lifecycle")
        # The disabled collector took itself out of the program's way.
        assert loop.get_task_factory() is None
        assert loop.get_exception_handler() is None
        assert await asyncio.create_task(ok()) == 1
        lifecycle.stop()

    asyncio.run(main())
    (notice,) = recorder.notices()
    assert notice.level == "error"
    assert "lifecycle" in notice.message and "no name" in notice.message


# ---------------------------------------------------------------------------------------------
# Duty cycling: above a creation rate, the factory is in place for a slice of each window


def test_sampling_policy_share() -> None:
    # 1,000 tasks/s at 1 us each is 0.1% of the loop: count everything.
    assert SamplingPolicy(budget=0.005).share(1_000, 1e-6, 0.5) == 1.0
    # 200,000 tasks/s at 1 us is 20%: a fortieth of the time keeps it at 0.5%.
    assert SamplingPolicy(budget=0.005, min_duty=0.01).share(200_000, 1e-6, 0.5) == pytest.approx(
        0.025
    )
    # Never a slice shorter than min_duty of the window...
    assert SamplingPolicy(budget=0.005, min_duty=0.1).share(200_000, 1e-6, 0.5) == 0.1
    # ... nor one that would see fewer than min_sample tasks (20,000/s at 10 us is 20%).
    assert (
        SamplingPolicy(budget=0.005, min_duty=0.01, min_sample=500).share(20_000, 10e-6, 0.5)
        == 0.05
    )
    assert SamplingPolicy(budget=0.005, min_sample=500).share(20_000, 10e-6, 0.01) == 1.0


def sampling(
    recorder: Recorder, loop: asyncio.AbstractEventLoop, **kwargs: Any
) -> LifecycleCollector:
    """A collector that samples a quarter of each 50 ms window once tasks are created for
    0.1 s, whatever they cost; its loop is taken to be saturated (never idle)."""
    return LifecycleCollector(
        LoopContext(loop, id(loop), recorder.events.append, recorder.guard),
        window=0.05,
        policy=SamplingPolicy(budget=0.0, rate_span=0.1, min_duty=0.25, min_sample=1),
        idle_clock=lambda: 0.0,
        **kwargs,
    )


async def churn(until: Callable[[], bool], what: str, made: list[float] | None = None) -> None:
    """Create and await batches of short tasks until ``until()``; note each batch's time."""
    deadline = time.monotonic() + TIMEOUT
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if made is not None:
            made.append(time.time())
        await asyncio.gather(*[asyncio.create_task(ok()) for _ in range(BATCH)])


BATCH = 100


def lifecycles(recorder: Recorder) -> list[Lifecycle]:
    return [e for e in recorder.events if isinstance(e, Lifecycle)]


@pytest.mark.serial  # the share of time sampled, scaled back, judged to 20%
def test_a_high_rate_is_sampled_and_scaled_close_to_the_truth() -> None:
    """Scaled counts within 20% of the tasks made (the slice is a quarter of each window; the
    error is the rate's variation between slices and the rest of the window)."""
    recorder = Recorder()
    made: list[float] = []  # time.time() of each batch of BATCH tasks

    async def main() -> None:
        lifecycle = sampling(recorder, asyncio.get_running_loop())
        lifecycle.start()
        sampled = lambda: [e for e in lifecycles(recorder) if e.sampled < 1.0]  # noqa: E731
        await churn(lambda: len(sampled()) >= 30, "30 sampled windows", made)
        lifecycle.stop()

    asyncio.run(main())
    windows = [e for e in lifecycles(recorder) if e.sampled < 1.0][:30]
    # A quarter of each window, give or take a slice's end timer firing late.
    assert statistics.median(e.sampled for e in windows) == pytest.approx(0.25, abs=0.05)
    start, end = windows[0].t - windows[0].window, windows[-1].t
    truth = BATCH * sum(1 for t in made if start <= t < end)
    created = sum(e.created for e in windows)
    shares = [(e.created, round(e.sampled, 2)) for e in windows]
    assert abs(created - truth) < 0.2 * truth, (created, truth, shares)
    # Created and finished are scaled alike: short tasks end in the window they start in.
    finished = sum(e.finished for e in windows)
    assert abs(finished - created) < 0.05 * created
    assert sum(e.created_by.get("ok", 0) for e in windows) == pytest.approx(created, abs=30)
    assert recorder.notices() == []


def test_a_low_rate_is_counted_exactly_all_the_time() -> None:
    recorder = Recorder()
    made = 0

    async def main() -> None:
        nonlocal made
        loop = asyncio.get_running_loop()
        # The default budget; about 1,000 tasks a second for over twice the rate span.
        lifecycle = LifecycleCollector(
            LoopContext(loop, id(loop), recorder.events.append, recorder.guard),
            window=0.05,
            policy=SamplingPolicy(rate_span=0.2),
        )
        lifecycle.start()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            await asyncio.gather(*[asyncio.create_task(ok()) for _ in range(5)])
            made += 5
            await asyncio.sleep(0.005)
        await until(lambda: recorder.total("finished") == made, "every end counted")
        assert lifecycle.duty == 1.0
        lifecycle.stop()

    asyncio.run(main())
    assert len(lifecycles(recorder)) >= 8
    assert all(e.sampled == 1.0 for e in lifecycles(recorder))
    assert recorder.total("created") == made


def counting_factory(seen: list[int], then: Any = None) -> Callable[..., asyncio.Future[Any]]:
    """A program's task factory that counts the tasks it makes, chained to ``then``."""

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if then is not None:
            return then(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    return factory


def test_a_factory_set_between_slices_is_chained_to_and_kept() -> None:
    recorder = Recorder()
    seen = [0]
    theirs = counting_factory(seen)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lifecycle = sampling(recorder, loop)
        lifecycle.start()
        ours = loop.get_task_factory()
        assert ours is not None
        # Between two slices the loop has no factory: the program sets its own.
        await churn(lambda: lifecycle.duty < 1.0 and loop.get_task_factory() is None, "a gap")
        loop.set_task_factory(theirs)
        before = recorder.total("created")
        made = 0
        chained = [False]

        def slice_on() -> bool:
            factory = loop.get_task_factory()
            assert factory in (theirs, ours)
            if factory is ours:
                chained[0] = lifecycle._original_factory is theirs
            return chained[0]

        await churn(slice_on, "a slice chained to the program's factory")
        # Every task went through the program's factory, slice or not.
        for _ in range(20):
            await asyncio.gather(*[asyncio.create_task(ok()) for _ in range(BATCH)])
            made += BATCH
        await churn(lambda: recorder.total("created") > before, "counts in a later window")
        assert seen[0] >= made
        lifecycle.stop()
        assert loop.get_task_factory() is theirs
        assert await asyncio.create_task(ok()) == 1
        loop.set_task_factory(None)

    asyncio.run(main())
    assert recorder.notices() == []


@pytest.mark.serial  # needs sampling slices to open within its deadline, as the test above
def test_a_factory_set_over_ours_in_a_slice_stays_and_ours_keeps_counting() -> None:
    recorder = Recorder()
    seen = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lifecycle = sampling(recorder, loop)
        lifecycle.start()
        ours = loop.get_task_factory()
        await churn(lambda: lifecycle.duty < 1.0 and loop.get_task_factory() is ours, "a slice")
        theirs = counting_factory(seen, then=ours)  # chains to whatever was there: ours
        loop.set_task_factory(theirs)
        windows = len(lifecycles(recorder))

        def later() -> bool:
            assert loop.get_task_factory() is theirs  # never taken out, nor put under ours
            recent = lifecycles(recorder)[windows + 1 :]
            return len(recent) >= 4 and all(e.created > 0 for e in recent)

        await churn(later, "counts from slices under the program's factory")
        assert all(e.sampled < 1.0 for e in lifecycles(recorder)[windows:])
        lifecycle.stop()
        assert loop.get_task_factory() is theirs
        count = seen[0]
        assert await asyncio.create_task(ok()) == 1  # ours passes through
        assert seen[0] == count + 1
        loop.set_task_factory(None)

    asyncio.run(main())
    assert recorder.notices() == []


@pytest.mark.parametrize("when", ["in a slice", "between slices"])
def test_stop_while_duty_cycling_restores_the_factory(when: str) -> None:
    recorder = Recorder()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        original = counting_factory([0])
        loop.set_task_factory(original)
        lifecycle = sampling(recorder, loop)
        lifecycle.start()
        ours = loop.get_task_factory()
        expected = ours if when == "in a slice" else original
        await churn(
            lambda: lifecycle.duty < 1.0 and loop.get_task_factory() is expected, "the moment"
        )
        # The window's end, and the slice's start or end (none after a slice ended).
        timers = [t for t in (lifecycle._handle, lifecycle._slice_handle) if t is not None]
        assert timers
        lifecycle.stop()
        assert loop.get_task_factory() is original
        assert all(t.cancelled() for t in timers)  # none will put ours back later
        loop.set_task_factory(None)

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# Every supported interpreter (3.12+ pass context= and eager tasks through the factory)

TARGET = """
import asyncio, contextvars, importlib, sys, time, types

package = types.ModuleType("_ls_agent")
package.__path__ = [sys.argv[1]]
sys.modules["_ls_agent"] = package
lifecycle_module = importlib.import_module("_ls_agent._lifecycle")
events = importlib.import_module("_ls_agent.events")
Guard = importlib.import_module("_ls_agent._guard").Guard
LoopContext = importlib.import_module("_ls_agent._periodic").LoopContext


async def ok():
    await asyncio.sleep(0)


async def fail():
    raise ValueError("boom")


async def main(eager):
    loop = asyncio.get_running_loop()
    original = asyncio.eager_task_factory if eager else None
    loop.set_task_factory(original)
    out = []
    lifecycle = lifecycle_module.LifecycleCollector(
        LoopContext(loop, id(loop), out.append, Guard(out.append)), window=0.01
    )
    lifecycle.start()
    tasks = [asyncio.create_task(ok()) for _ in range(100)]
    # create_task passes context= on to the factory from 3.11
    kwargs = {"context": contextvars.copy_context()} if sys.version_info >= (3, 11) else {}
    tasks += [asyncio.create_task(fail(), **kwargs) for _ in range(5)]
    await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.monotonic() + 10
    while sum(e.finished for e in out if e.kind == "lifecycle") < 105:
        assert time.monotonic() < deadline, out
        await asyncio.sleep(0.005)
    lifecycle.stop()
    assert loop.get_task_factory() is original
    for event in out:
        print(events.encode(event), flush=True)


asyncio.run(main(eager=False))
if sys.version_info >= (3, 12):
    asyncio.run(main(eager=True))
"""


def test_counts_on_every_interpreter(target_python: str, tmp_path: Path) -> None:
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    done = subprocess.run(
        [target_python, str(script), os.path.join(SRC, "loopscope", "agent")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert done.returncode == 0, done.stderr
    windows = [decode(line) for line in done.stdout.splitlines()]
    assert all(isinstance(e, Lifecycle) for e in windows), windows
    runs = 2 if _version(target_python) >= (3, 12) else 1  # and once with eager tasks
    lifecycle = [e for e in windows if isinstance(e, Lifecycle)]
    assert sum(e.created for e in lifecycle) == 105 * runs
    assert sum(e.finished for e in lifecycle) == 105 * runs
    assert sum(e.failed for e in lifecycle) == 5 * runs
    assert sum(e.cancelled for e in lifecycle) == 0


def _version(python: str) -> tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    major, minor = out.stdout.split()
    return int(major), int(minor)


# aiohttp warns (ResourceWarning) before it reports to the loop; the suite's warnings-as-errors
# would stop it there.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_unclosed_aiohttp_sessions_are_kept_where_created_and_the_wrapper_goes_on_stop() -> None:
    aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is not installed")
    from loopscope.events import TaskErrors

    recorder = Recorder()
    handled: list[str] = []
    original_init = aiohttp.ClientSession.__dict__["__init__"]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        handled.append(context["message"])

    async def leak() -> None:
        session = aiohttp.ClientSession()  # the creation site
        del session

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(handler)
        lifecycle = recorder.collector(loop, window=0.01)
        lifecycle.start()
        for _ in range(3):
            await leak()
            gc.collect()
        await until(lambda: len(handled) == 3, "aiohttp's three reports")
        await until(
            lambda: any(isinstance(e, TaskErrors) for e in recorder.events), "the errors event"
        )
        assert aiohttp.ClientSession.__dict__["__init__"] is not original_init
        lifecycle.stop()
        assert aiohttp.ClientSession.__dict__["__init__"] is original_init
        loop.set_exception_handler(None)

    asyncio.run(main())
    assert handled == ["Unclosed client session"] * 3
    errors = [e for ev in recorder.events if isinstance(ev, TaskErrors) for e in ev.errors]
    by_where = {e.coroutine: e for e in errors}
    assert sum(e.count for e in errors) == 3
    # The first report is kept where the session was dropped (its creation was not seen), the
    # others where they were created: the line in leak() that made them.
    assert by_where["dropped"].count == 1
    created = by_where["created"]
    assert created.count == 2
    assert created.error == "unclosed aiohttp.ClientSession"
    assert created.stack[0].function.endswith("leak")
    assert (
        "aiohttp.ClientSession()"
        in Path(created.stack[0].file).read_text().splitlines()[created.stack[0].line - 1]
    )
