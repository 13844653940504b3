"""The duplicates collector: fingerprints of the application coroutines in flight, on real loops
and in real target processes on every Python."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import io
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from agent_harness import Client, Target, wait_until

from loopscope.agent import _duplicates
from loopscope.agent._duplicates import ArgText, DuplicatesCollector
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.events import DuplicateGroup, Duplicates, Event, LoopStarted, Notice, decode

SRC = str(Path(__file__).resolve().parents[2] / "src")
TIMEOUT = 10.0


def text(value: Any) -> str:
    return ArgText().of(value)


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def collector(
    loop: asyncio.AbstractEventLoop, events: list[Event] | None = None, interval: float = 0.5
) -> DuplicatesCollector:
    out: list[Event] = [] if events is None else events
    return DuplicatesCollector(
        LoopContext(loop, id(loop), out.append, Guard(out.append)), interval=interval
    )


def group(event: Duplicates, function: str) -> DuplicateGroup | None:
    found = [g for g in event.groups if g.function.rpartition(".")[2] == function]
    assert len(found) <= 1, found
    return found[0] if found else None


async def finish(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def started(coros: list[Coroutine[Any, Any, Any]]) -> list[asyncio.Task[Any]]:
    return [asyncio.create_task(c) for c in coros]


async def settled(tasks: list[asyncio.Task[Any]]) -> None:
    """Let every task reach its first wait."""
    await until(lambda: all(t._fut_waiter is not None for t in tasks), "the tasks to wait")  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# The argument text


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Query:
    symbol: str
    days: int


class Hostile:
    """An object whose every special method misbehaves."""

    calls = 0

    def __repr__(self) -> str:
        Hostile.calls += 1
        raise RuntimeError("no repr for you")

    def __str__(self) -> str:
        Hostile.calls += 1
        time.sleep(1)
        return "slow"

    def __eq__(self, other: object) -> bool:
        Hostile.calls += 1
        raise RuntimeError("no comparing")

    __hash__ = None  # type: ignore[assignment]


class HostileStr(str):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __len__(self) -> int:
        raise RuntimeError("no len")

    def __hash__(self) -> int:
        raise RuntimeError("no hash")


class HostileList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        raise RuntimeError("no iter")

    def __len__(self) -> int:
        return 10**9


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "None"),
        (True, "True"),
        (42, "42"),
        (1.5, "1.5"),
        ("ACME", "'ACME'"),
        (b"\x00a", "b'\\x00a'"),
        ((1, "a"), "(1, 'a')"),
        ((1,), "(1,)"),
        ([1, 2], "[1, 2]"),
        ({"a": [1]}, "{'a': [1]}"),
        ({3, 1, 2}, "{1, 2, 3}"),
        (Color.RED, "Color.RED"),
        (Query("ACME", 7), "Query(symbol='ACME', days=7)"),
        (int, "<class int>"),
    ],
)
def test_plain_values_are_written_out(value: Any, expected: str) -> None:
    assert text(value) == expected


def test_equal_values_give_equal_text_and_different_objects_different_text() -> None:
    assert text(["x" * 40, {"k": (1, 2)}]) == text(["x" * 40, {"k": (1, 2)}])
    assert text(object()) != text(object())  # (both alive at once: distinct ids)
    a, b = Hostile(), Hostile()
    assert text(a) == text(a) and text(a) != text(b)
    # Long strings: a prefix, the length and a hash, so that they still differ.
    long_a, long_b = "a" * 1000 + "x", "a" * 1000 + "y"
    assert text(long_a) != text(long_b) and len(text(long_a)) < 80
    assert text(2**200) != text(2**200 + 1) and len(text(2**200)) < 40


def test_standard_value_types_are_written_out_once_the_program_imported_them() -> None:
    import datetime
    import decimal
    import fractions
    import pathlib
    import uuid

    values = [
        (decimal.Decimal("1.50"), "Decimal('1.50')"),
        (fractions.Fraction(1, 3), "Fraction(1, 3)"),
        (uuid.UUID(int=7), "UUID('00000000-0000-0000-0000-000000000007')"),
        (pathlib.PurePosixPath("/srv/a"), "PurePosixPath('/srv/a')"),
        (datetime.date(2026, 12, 7), "datetime.date(2026, 12, 7)"),
        (range(3), "range(0, 3)"),
    ]
    for value, expected in values:
        assert text(value) == expected
    # A subclass may have a repr of its own: told by identity.
    class Money(decimal.Decimal):
        pass

    assert text(Money("1.50")) != text(Money("1.50"))


def test_the_agent_imports_no_module_only_to_recognise_values() -> None:
    """A program that never imported pathlib has no path to render: the agent leaves such
    modules (and what they import) out of the program."""
    script = (
        "import sys; import loopscope.agent._core; "
        "print(sorted(set(sys.argv[1:]) & set(sys.modules)))"
    )
    heavy = ["pathlib", "uuid", "decimal", "fractions", "ipaddress", "urllib.parse", "platform"]
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {SRC!r}); {script}", *heavy],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert out.strip() == "[]", out


def test_big_containers_are_told_by_identity_not_by_length() -> None:
    one, two = list(range(100)), list(range(100, 200))
    assert "len 100" in text(one)
    assert text(one) != text(two)  # the same type and length must not look the same
    deep = [[[[1]]]]
    assert f"#{id(deep[0][0]):x}" in text(deep)


def test_hostile_objects_are_never_asked_anything() -> None:
    Hostile.calls = 0
    started_at = time.perf_counter()
    out = text([Hostile(), {"h": Hostile()}, HostileStr("abc"), HostileList([1])])
    assert time.perf_counter() - started_at < 0.05
    assert Hostile.calls == 0
    assert "Hostile #" in out and "'abc'" in out


def test_the_text_is_bounded() -> None:
    writer = ArgText(budget=100)
    parts = [writer.of(["y" * 40] * 8) for _ in range(20)]
    assert sum(map(len, parts)) < 100 + 8 * 60 + 20 * 40
    assert all("#" in part for part in parts[3:])  # past the budget: identities


def test_a_queue_or_stream_argument_marks_a_consumer() -> None:
    writer = ArgText()
    writer.of(asyncio.Queue())
    assert writer.consumer
    plain = ArgText()
    plain.of([1, 2])
    assert not plain.consumer


@pytest.mark.parametrize(
    "value",
    [random.Random(1), iter([1, 2]), (i for i in range(3)), io.StringIO("x")],
    ids=["random", "iterator", "generator", "file"],
)
def test_shared_state_each_call_advances_marks_a_consumer(value: Any) -> None:
    writer = ArgText()
    writer.of(value)
    assert writer.consumer


class DbConnection:
    pass


def test_a_connection_as_the_only_argument_marks_a_consumer() -> None:
    async def handle(conn: DbConnection) -> None:
        await asyncio.sleep(0)

    async def query(conn: DbConnection, sql: str) -> None:
        await asyncio.sleep(0)

    conn = DbConnection()
    only = handle(conn)
    text = ArgText()
    text.arguments(only.cr_frame, ("conn",))
    assert text.consumer
    with_input = query(conn, "select 1")
    text = ArgText()
    text.arguments(with_input.cr_frame, ("conn", "sql"))
    assert not text.consumer
    only.close()
    with_input.close()


# ---------------------------------------------------------------------------------------------
# Passes on a real loop


async def fetch_price(symbol: str, days: int = 7) -> float:
    await asyncio.sleep(60)
    return 1.0


async def handle(request_id: int, symbol: str) -> float:
    return await fetch_price(symbol)


def test_groups_identical_calls_in_flight() -> None:
    async def main() -> None:
        tasks = started([handle(i, "ACME") for i in range(12)])
        tasks += started([handle(100 + i, f"S{i}") for i in range(5)])
        await settled(tasks)
        result = collector(asyncio.get_running_loop()).take()
        found = group(result, "fetch_price")
        assert found is not None
        assert (found.in_flight, found.starts, found.instances) == (12, 12, 12)
        assert found.args == "symbol='ACME', days=7"
        assert found.file == __file__ and found.line == fetch_price.__code__.co_firstlineno
        # The distinct symbols and the distinct requests are no group.
        assert all("S" not in g.args for g in result.groups)
        assert group(result, "handle") is None
        assert found.parent != ""  # called from handle()
        await finish(tasks)

    asyncio.run(main())


def test_calls_sharing_one_future_count_once() -> None:
    async def main() -> None:
        shared = asyncio.ensure_future(fetch_price("ACME"))

        async def cached_price(symbol: str) -> float:
            return await asyncio.shield(shared)

        async def gathered_price(symbol: str) -> list[float]:
            return await asyncio.gather(shared)

        async def awaited_price(symbol: str) -> float:
            return await shared

        async def timed_price(symbol: str) -> float:
            return await asyncio.wait_for(asyncio.shield(shared), 60)

        tasks = started([cached_price("ACME") for _ in range(6)])
        tasks += started([timed_price("ACME") for _ in range(6)])
        tasks += started([gathered_price("ACME") for _ in range(6)])
        tasks += started([awaited_price("ACME") for _ in range(6)])
        await settled(tasks)
        result = collector(asyncio.get_running_loop()).take()
        for name in ("cached_price", "gathered_price", "awaited_price", "timed_price"):
            found = group(result, name)
            assert found is None or found.in_flight == 1, found
        await finish([*tasks, shared])  # type: ignore[list-item]

    asyncio.run(main())


def test_consumers_of_a_queue_are_not_fingerprinted() -> None:
    async def worker(jobs: asyncio.Queue[int]) -> None:
        while True:
            await jobs.get()

    async def main() -> None:
        jobs: asyncio.Queue[int] = asyncio.Queue()
        tasks = started([worker(jobs) for _ in range(8)])
        await settled(tasks)
        result = collector(asyncio.get_running_loop()).take()
        assert group(result, "worker") is None
        await finish(tasks)

    asyncio.run(main())


def test_calls_waiting_for_a_signal_in_their_own_frame_are_not_work() -> None:
    async def main() -> None:
        ready = asyncio.Event()

        async def wait_until_ready(service: str) -> None:
            await ready.wait()

        tasks = started([wait_until_ready("db") for _ in range(8)])
        await settled(tasks)
        census = collector(asyncio.get_running_loop())
        assert group(census.take(), "wait_until_ready") is None
        await finish(tasks)

    asyncio.run(main())


async def build_report(period: str) -> str:
    await asyncio.sleep(0.001)
    return period


def test_recurring_calls_from_several_tasks() -> None:
    async def main() -> None:
        census = collector(asyncio.get_running_loop())
        seen: list[Duplicates] = []
        for _ in range(6):  # one call at a time, each in a new task
            task = asyncio.create_task(build_report("daily"))
            await settled([task])
            seen.append(census.take())
            await task
        last = census.take()
        found = group(seen[-1], "build_report")
        assert found is not None
        assert (found.in_flight, found.starts, found.instances, found.tasks) == (1, 1, 6, 6)
        assert found.ended == 5
        ended = group(last, "build_report")
        assert ended is not None and (ended.in_flight, ended.ended) == (0, 6)
        assert group(seen[0], "build_report") is None  # one call is no group

    asyncio.run(main())


def test_calls_repeated_by_one_task_count_one_task() -> None:
    async def main() -> None:
        census = collector(asyncio.get_running_loop())
        calls: list[Duplicates] = []

        async def poller() -> None:
            for _ in range(5):
                await build_report("daily")  # a millisecond each: passes see it in flight

        async def watch() -> None:
            while not polling.done():
                calls.append(census.take())
                await asyncio.sleep(0)

        polling = asyncio.create_task(poller())
        await watch()
        found = [g for e in calls if (g := group(e, "build_report")) is not None]
        assert found and found[-1].instances >= 2
        assert all(g.tasks == 1 for g in found)

    asyncio.run(main())


class Request:
    pass


async def serve(request: Request) -> None:
    await asyncio.sleep(0.001)


def test_an_identity_means_the_same_object_only_while_it_lives() -> None:
    async def main() -> None:
        census = collector(asyncio.get_running_loop())
        for _ in range(6):
            # A new request each time; CPython often gives it the id of the last one.
            task = asyncio.create_task(serve(Request()))
            await settled([task])
            result = census.take()
            assert group(result, "serve") is None, result.groups
            await task
            census.take()

    asyncio.run(main())


def test_a_call_seen_over_several_passes_has_a_duration() -> None:
    async def slow(period: str) -> None:
        await asyncio.sleep(0.12)

    async def main() -> None:
        events: list[Event] = []
        census = collector(asyncio.get_running_loop(), events, interval=0.02)
        census.start()
        for _ in range(3):
            await asyncio.gather(slow("x"), slow("x"))
        await until(lambda: _duration(events) is not None, "a duration")
        census.stop()
        duration = _duration(events)
        assert duration is not None and 0.08 <= duration <= 1.0

    asyncio.run(main())


def _duration(events: list[Event]) -> float | None:
    for event in reversed(events):
        if isinstance(event, Duplicates) and (found := group(event, "slow")) is not None:
            return found.duration
    return None


def test_samples_many_tasks_within_budget_and_scales() -> None:
    async def main() -> None:
        tasks = started([handle(i, "ACME") for i in range(3000)])
        await settled(tasks)
        census = collector(asyncio.get_running_loop())
        census._random = random.Random(1)
        census._sample = 500
        result = census.take()
        assert result.inspected <= 500
        assert abs(result.total - 3001) <= 300
        found = group(result, "fetch_price")
        assert found is not None and abs(found.in_flight - 3000) <= 300
        # The sample adapts to the pass's cost.
        for _ in range(3):
            census.take()
        assert census._sample >= _duplicates.MIN_SAMPLE
        await finish(tasks)

    asyncio.run(main())


def test_stops_and_leaves_no_timer_behind() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        events: list[Event] = []
        census = collector(loop, events, interval=0.01)
        census.start()
        await until(lambda: len(events) >= 3, "three passes")
        census.stop()
        census.stop()  # idempotent
        seen = len(events)
        await asyncio.sleep(0.05)
        assert len(events) == seen
        scheduled = loop._scheduled  # type: ignore[attr-defined]
        assert not [h for h in scheduled if not h.cancelled() and h._callback is census._tick]
        assert census._instances == {} and len(census._prints) == 0

    asyncio.run(main())


def test_a_failing_pass_is_disabled_and_the_program_runs_on() -> None:
    class BrokenTask(asyncio.Task):  # type: ignore[type-arg]
        def get_coro(self) -> Any:
            raise RuntimeError("no coroutine for you")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(lambda loop, coro, **kw: BrokenTask(coro, loop=loop, **kw))
        events: list[Event] = []
        census = collector(loop, events, interval=0.01)
        census.start()
        broken = asyncio.create_task(asyncio.sleep(0.05, result=42))
        await until(lambda: any(isinstance(e, Notice) for e in events), "the guard's notice")
        notices = [e for e in events if isinstance(e, Notice)]
        assert len(notices) == 1 and "duplicates" in notices[0].message
        census.stop()
        return await broken

    assert asyncio.run(main()) == 42


def test_cost_per_pass_at_1k_and_10k_tasks() -> None:
    """Prints the loop time of a pass (run with -s to see it); bounded loosely here, the budget
    is checked by benchmarks/duplicates.py."""

    async def main() -> None:
        for n in (1000, 10_000):
            tasks = started([handle(i, f"S{i % 50}") for i in range(n)])
            await settled(tasks)
            census = collector(asyncio.get_running_loop())
            costs = [census.take().cost for _ in range(8)]
            steady = sorted(costs[3:])[len(costs[3:]) // 2]
            print(
                f"duplicates pass at {n} tasks: median {steady * 1e3:.3f} ms, first "
                f"{costs[0] * 1e3:.3f} ms, sample {census._sample}"
            )
            assert steady < 0.02  # generous: a loaded machine
            await finish(tasks)

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# Every supported interpreter

TARGET = """
import asyncio, importlib, sys, types

package = types.ModuleType("_ls_agent")
package.__path__ = [sys.argv[1]]
sys.modules["_ls_agent"] = package
module = importlib.import_module("_ls_agent._duplicates")
events = importlib.import_module("_ls_agent.events")
Guard = importlib.import_module("_ls_agent._guard").Guard
LoopContext = importlib.import_module("_ls_agent._periodic").LoopContext


async def fetch_price(symbol, *rest, days=7, **options):
    await asyncio.sleep(60)


class Service:
    async def quote(self, symbol):
        return await fetch_price(symbol, 1, days=3, currency="EUR")


async def worker(jobs):
    while True:
        await jobs.get()


async def single_flight(shared, symbol):
    return await asyncio.wait_for(asyncio.shield(shared), 60)


async def main():
    service = Service()
    jobs = asyncio.Queue()
    shared = asyncio.ensure_future(asyncio.sleep(60))
    tasks = [asyncio.create_task(service.quote("ACME")) for _ in range(5)]
    tasks += [asyncio.create_task(worker(jobs)) for _ in range(3)]
    tasks += [asyncio.create_task(single_flight(shared, "ACME")) for _ in range(4)]
    for _ in range(1000):
        await asyncio.sleep(0.001)
        if all(t._fut_waiter is not None for t in tasks):
            break
    out = []
    collector = module.DuplicatesCollector(
        LoopContext(loop := asyncio.get_running_loop(), id(loop), out.append, Guard(out.append))
    )
    print(events.encode(collector.take()), flush=True)
    for t in tasks + [shared]:
        t.cancel()
    await asyncio.gather(*tasks, shared, return_exceptions=True)

asyncio.run(main())
"""


def test_fingerprints_on_every_interpreter(target_python: str, tmp_path: Path) -> None:
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    agent_dir = os.path.join(SRC, "loopscope", "agent")
    done = subprocess.run(
        [target_python, str(script), agent_dir],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr
    result = decode(done.stdout.strip().splitlines()[-1])
    assert isinstance(result, Duplicates)
    by_function = {g.function.rpartition(".")[2]: g for g in result.groups}
    fetch = by_function["fetch_price"]
    assert fetch.in_flight == 5 and fetch.file == str(script)
    assert fetch.args == "symbol='ACME', days=3, rest=(1,), options={'currency': 'EUR'}"
    quote = by_function["quote"]  # the same service object: the same call
    assert quote.in_flight == 5 and quote.args.startswith("self=<Service #")
    assert fetch.parent == quote.id
    assert "worker" not in by_function
    shared = by_function.get("single_flight")  # one computation, awaited four times
    assert shared is None or shared.in_flight == 1, shared


def test_runs_in_the_agent_and_detach_leaves_nothing(target_python: str, tmp_path: Path) -> None:
    target = Target(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        started_event = client.wait_for(lambda e: isinstance(e, LoopStarted))
        assert isinstance(started_event, LoopStarted)
        assert "duplicates" in started_event.features
        target.send("ping")
        assert target.read() == {"pong": True}
        passes = client.wait_for(lambda e: isinstance(e, Duplicates), what="a duplicates pass")
        assert isinstance(passes, Duplicates) and passes.cost < 0.05
        client.send({"op": "detach"})
        client.read_until_eof()
        state = wait_until(lambda: (s := target.state())["threads"] == ["MainThread"] and s)
        assert state["set_running_loop"] and state["selector"]
        target.send("ping")
        assert target.read() == {"pong": True}
    finally:
        client.close()
        assert target.finish() == 0
