"""The task lifecycle collector, on real loops: counts, chaining, restoring, guarding."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import time
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import pytest

from loopscope.agent._guard import Guard
from loopscope.agent._lifecycle import SWEEP_EVERY, LifecycleCollector
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
        return LifecycleCollector(loop, id(loop), self.events.append, self.guard, window=window)

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
# Every supported interpreter (3.12+ pass context= and eager tasks through the factory)

TARGET = """
import asyncio, contextvars, importlib, sys, time, types

package = types.ModuleType("_ls_agent")
package.__path__ = [sys.argv[1]]
sys.modules["_ls_agent"] = package
lifecycle_module = importlib.import_module("_ls_agent._lifecycle")
events = importlib.import_module("_ls_agent.events")
Guard = importlib.import_module("_ls_agent._guard").Guard


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
        loop, id(loop), out.append, Guard(out.append), window=0.01
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
