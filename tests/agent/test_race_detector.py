"""The race detector's pass, in process: which tasks are inside which window, on which object."""

from __future__ import annotations

import asyncio
import gc
import sys
import types
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopscope.agent import _races
from loopscope.agent._codemap import CodeMap
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.agent._races import RaceCollector, RaceScanner
from loopscope.agent._racescan import scan_source
from loopscope.events import Event, Frame, LostUpdate, RaceWindow

STOCK: dict[str, int] = {"apples": 0, "pears": 0}
COUNTER = 0


class Account:
    def __init__(self) -> None:
        self.balance = 0

    async def withdraw(self, gate: asyncio.Event) -> None:
        balance = self.balance
        await gate.wait()  # account await
        self.balance = balance - 1


class Slotted:
    __slots__ = ("inner",)

    def __init__(self) -> None:
        self.inner = Account()

    async def withdraw(self, gate: asyncio.Event) -> None:
        balance = self.inner.balance
        await gate.wait()
        self.inner.balance = balance - 1


async def reserve(item: str, gate: asyncio.Event) -> None:
    left = STOCK[item]
    await gate.wait()  # stock await
    STOCK[item] = left - 1


async def bump(gate: asyncio.Event) -> None:
    global COUNTER
    n = COUNTER
    await gate.wait()  # counter await
    COUNTER = n + 1


async def caller(account: Account, gate: asyncio.Event) -> None:
    await account.withdraw(gate)  # deeper in the chain


def scanner() -> RaceScanner:
    out: list[Event] = []
    scan = RaceScanner(out.append, Guard(out.append), ())
    for window in scan_source(Path(__file__).read_text(), __file__)[0]:
        key = (window.span.file, window.name)
        scan.index = {**scan.index, key: (*scan.index.get(key, ()), window)}
    return scan


def line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    (line,) = [i for i, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}")]
    return line


async def inside(*coros: Coroutine[Any, Any, None]) -> list[RaceWindow]:
    """The events of one pass over tasks running ``coros``, all suspended."""
    tasks = [asyncio.create_task(c, name=f"t{i}") for i, c in enumerate(coros)]
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    out: list[Event] = []
    collector = RaceCollector(LoopContext(loop, id(loop), out.append, Guard(out.append)), scanner())
    try:
        return collector.take()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def summary(events: list[RaceWindow]) -> list[tuple[str, str, tuple[str, ...], int]]:
    return sorted(
        (e.window.function, e.window.target, tuple(sorted(e.tasks)), e.count) for e in events
    )


def test_same_object_counts_other_objects_do_not() -> None:
    async def main() -> list[RaceWindow]:
        gate = asyncio.Event()
        shared, other = Account(), Account()
        return await inside(
            shared.withdraw(gate),
            caller(shared, gate),
            other.withdraw(gate),
            Account().withdraw(gate),
        )

    (event,) = asyncio.run(main())
    assert (event.window.function, event.count, sorted(event.tasks)) == (
        "Account.withdraw",
        2,
        ["t0", "t1"],
    )
    assert event.lines == (line_of("account await"),) * 2
    assert event.inspected == 4


def test_subscripts_count_by_container_and_key() -> None:
    async def main() -> list[RaceWindow]:
        gate = asyncio.Event()
        return await inside(
            reserve("apples", gate), reserve("apples", gate), reserve("pears", gate)
        )

    assert summary(asyncio.run(main())) == [("reserve", "STOCK[item]", ("t0", "t1"), 2)]


def test_a_global_name() -> None:
    async def main() -> list[RaceWindow]:
        gate = asyncio.Event()
        return await inside(bump(gate), bump(gate), bump(gate))

    assert summary(asyncio.run(main())) == [("bump", "COUNTER", ("t0", "t1", "t2"), 3)]


def test_objects_behind_slots_are_not_told_so_not_counted() -> None:
    async def main() -> list[RaceWindow]:
        gate = asyncio.Event()
        shared = Slotted()
        return await inside(shared.withdraw(gate), shared.withdraw(gate))

    assert asyncio.run(main()) == []


def test_tasks_found_inside_are_looked_at_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a sample of one task per pass, two tasks in one window are caught over passes."""
    monkeypatch.setattr(_races, "MIN_SAMPLE", 1)
    monkeypatch.setattr(_races, "PASS_BUDGET", 0.0)
    monkeypatch.setattr(_races, "REPORT_INTERVAL", 0.0)

    async def main() -> int:
        gate = asyncio.Event()
        shared = Account()
        tasks = [asyncio.create_task(shared.withdraw(gate)) for _ in range(2)]
        tasks += [asyncio.create_task(gate.wait()) for _ in range(50)]
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        out: list[Event] = []
        collector = RaceCollector(
            LoopContext(loop, id(loop), out.append, Guard(out.append)), scanner()
        )
        collector._sample = 1
        passes = 0
        while not collector.take():
            passes += 1
            assert passes < 10_000, "never caught together"
        gate.set()
        await asyncio.gather(*tasks)
        return passes

    asyncio.run(main())


def test_one_event_per_window_and_interval() -> None:
    async def main() -> tuple[int, int]:
        gate = asyncio.Event()
        shared = Account()
        tasks = [asyncio.create_task(shared.withdraw(gate)) for _ in range(2)]
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        out: list[Event] = []
        collector = RaceCollector(
            LoopContext(loop, id(loop), out.append, Guard(out.append)), scanner()
        )
        first, second = len(collector.take()), len(collector.take())
        gate.set()
        await asyncio.gather(*tasks)
        return first, second

    assert asyncio.run(main()) == (1, 0)


def test_no_windows_no_work() -> None:
    async def main() -> list[RaceWindow]:
        loop = asyncio.get_running_loop()
        out: list[Event] = []
        empty = RaceScanner(out.append, Guard(out.append), ())
        collector = RaceCollector(LoopContext(loop, id(loop), out.append, Guard(out.append)), empty)
        return collector.take()

    assert asyncio.run(main()) == []


def test_the_scanner_skips_library_and_own_files(tmp_path: Path) -> None:
    out: list[Event] = []
    scan = RaceScanner(
        out.append,
        Guard(out.append),
        CodeMap(["/usr/lib/python3.11"], ["/venv/lib/site-packages"], ["/x/loopscope"]),
    )
    assert scan.application("/srv/app/bank.py")
    assert not scan.application("/usr/lib/python3.11/asyncio/tasks.py")
    assert not scan.application("/venv/lib/site-packages/aiohttp/web.py")
    assert not scan.application("/other/env/lib/python3.11/site-packages/x.py")
    assert not scan.application("/x/loopscope/agent/_races.py")
    assert not scan.application("/x/loopscope/_watch.py")
    assert not scan.application(str(Path(_races.__file__).parents[1] / "_watch.py"))


def test_the_watch_hub_hands_buffered_and_new_reports_to_the_agent() -> None:
    hub = _races.watch_hub()
    hub.pending.clear()  # type: ignore[attr-defined]
    where = ("/app/c.py", 3, "bump")
    report = {
        "v": 1,
        "t": 5.0,
        "target": "C.n",
        "task": "a",
        "read": where,
        "version_read": 0,
        "other_task": "b",
        "other_write": where,
        "write": where,
        "version_now": 1,
    }
    hub.pending.extend([report, {"v": 1, "t": "x"}, {"v": 2}])  # type: ignore[attr-defined]
    out: list[Event] = []
    disconnect = _races.connect_watch_hub(out.append, Guard(out.append))
    try:
        assert not hub.pending  # type: ignore[attr-defined]
        hub.sink({**report, "repeats": 3})  # type: ignore[attr-defined]
    finally:
        disconnect()
    assert hub.sink is None  # type: ignore[attr-defined]
    frame = Frame(*where)
    expected = LostUpdate(5.0, "C.n", "a", frame, 0, "b", frame, frame, 1)
    assert out == [expected, LostUpdate(5.0, "C.n", "a", frame, 0, "b", frame, frame, 1, 3)]


class _Importer:
    """Cyclic garbage whose finalizer imports a module and leaves another of itself: with the
    collector run at every allocation, a module is imported at each."""

    left = 0
    names: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        if _Importer.left > 0:
            _Importer.left -= 1
            name = f"loopscope_test_imported_{len(_Importer.names)}"
            _Importer.names.append(name)
            sys.modules[name] = types.ModuleType(name)
            _Importer()


@pytest.fixture
def importing() -> Iterator[None]:
    threshold = gc.get_threshold()
    _Importer.left = 1000
    _Importer()
    gc.set_threshold(1)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        _Importer.left = 0
        gc.collect()
        for name in _Importer.names:
            sys.modules.pop(name, None)


def test_modules_imported_while_the_scanner_reads_the_module_table_do_not_stop_it(
    importing: None,
) -> None:
    """Another thread may import while the scanner reads sys.modules (a serial CI run lost its
    race scan so: "dictionary changed size during iteration")."""
    out: list[Event] = []
    scan = RaceScanner(out.append, Guard(out.append), CodeMap(["/"], [], []))  # none to scan
    assert scan.scan_new() is True
    assert _Importer.names  # modules were imported meanwhile
