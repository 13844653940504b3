"""The dashboard's process list, driven with Pilot over a real program and its real workers (as
`loopscope run` follows them): one row per process, a finding of both workers as one row (x2),
enter shows a worker on the dashboard, and n steps through them to all of them together."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from loopscope.fleet.follow import Children
from loopscope.fleet.rows import ALL, MergedView
from loopscope.fleet.views import FleetViews
from loopscope.runner import Program, ProgramSpec
from loopscope.session import Session
from loopscope.sources.run import RunSource
from loopscope.tui._format import DASH
from loopscope.tui.app import LoopscopeApp
from loopscope.tui.processes import ProcessesScreen
from loopscope.tui.widgets import HeaderBar

pytestmark = pytest.mark.timeout(90)

PROGRAM = r"""
import asyncio, multiprocessing as mp, sys, time


def busy_in_child():
    end = time.thread_time() + 0.05  # CPU, not wall time: a loaded machine stretches it
    while time.thread_time() < end:
        pass


async def serve():
    while True:
        await asyncio.sleep(0.02)
        busy_in_child()


def worker():
    asyncio.run(serve())


if __name__ == "__main__":
    workers = [mp.get_context("spawn").Process(target=worker) for _ in range(2)]
    for w in workers:
        w.start()
    while all(w.is_alive() for w in workers):
        time.sleep(0.1)
"""


def _wait(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetViews]:
    where = tmp_path_factory.mktemp("processes")
    (where / "workers.py").write_text(PROGRAM)
    spec = ProgramSpec(python=sys.executable, script=str(where / "workers.py"), args=())
    program = Program.start(spec, log_path=where / "workers.log")
    session = Session(RunSource(program), clock=time.time)
    session.start()
    children = Children(program.pid, log=lambda message: None)
    children.start()
    views = FleetViews(session, program.pid, "workers", children)
    try:
        _wait(
            "both workers' blocking finding",
            lambda: any(len(s.pids) == 2 and s.finding.code == "LS101" for s in views.findings()),
        )
        yield views
    finally:
        program.stop()
        children.close()
        session.close()


def _rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def _until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met before the deadline")
        await pilot.pause(0.02)


@pytest.mark.serial  # each worker's lag must reach the screen within a deadline
def test_the_process_list_and_switching_the_dashboard(followed: FleetViews) -> None:
    asyncio.run(_drive(followed))


async def _drive(followed: FleetViews) -> None:
    app = LoopscopeApp(followed, refresh=0.1)
    workers = [
        m.pid
        for m in followed.children.fleet.members()
        if m.session is not None and m.session.view().snapshot.loops
    ]
    assert len(workers) == 2
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.dashboard.view is not None)
        await pilot.press("p")
        await _until(pilot, lambda: isinstance(app.screen, ProcessesScreen))
        screen = app.screen
        table = screen.query_one("#processes", DataTable)
        await _until(pilot, lambda: table.row_count >= 3)
        rows = _rows(table)
        assert rows[0][:2] == ["  all", f"{len(rows) - 1} processes"]  # every process together
        rows = rows[1:]
        pids = [int(r[0].strip("▶ ")) for r in rows]
        assert pids[0] == followed.pid and rows[0][0].startswith("▶")  # shown now
        assert set(workers) <= set(pids)
        for row in rows:
            if int(row[0].strip("▶ ")) in workers:
                assert row[1] == "workers" and row[2] == "live"
                assert row[3] != DASH and int(row[6]) > 0 and int(row[7]) >= 1  # lag, blocks
        tracker = [r for r in rows if r[1] == "resource_tracker"]
        assert [r[2] for r in tracker] in ([], ["no loop"])

        shared = _rows(screen.query_one("#shared", DataTable))
        # (On a loaded machine a block may also go unsampled: another LS101, of its own.)
        blocking = [r for r in shared if r[1] == "LS101" and "busy_in_child" in r[2]]
        assert len(blocking) == 1, shared  # one row for both workers
        assert blocking[0][3] == "\u00d72"
        assert sorted(int(p) for p in blocking[0][4].split(", ")) == sorted(workers)

        worker = workers[1]
        table.move_cursor(row=1 + pids.index(worker))
        await pilot.press("enter")
        await _until(pilot, lambda: app.screen is app.dashboard)
        await _until(
            pilot,
            lambda: (
                app.dashboard.view is not None
                and app.dashboard.view.snapshot.target is not None
                and app.dashboard.view.snapshot.target.pid == worker
            ),
        )
        assert followed.selected == worker

        await pilot.press("p")  # and back to the program itself
        await _until(pilot, lambda: isinstance(app.screen, ProcessesScreen))
        table = app.screen.query_one("#processes", DataTable)
        table.move_cursor(row=1)
        await pilot.press("enter")
        await _until(pilot, lambda: followed.selected == followed.pid)

        # n steps through the processes to all of them together: one finding for both
        # workers' blocks, marked x2 with their pids; their tasks summed; the worst lag, named.
        for _ in range(len(pids)):
            await pilot.press("n")
        await _until(pilot, lambda: followed.selected == ALL)
        await _until(pilot, lambda: isinstance(app.dashboard.view, MergedView))
        view = app.dashboard.view
        assert isinstance(view, MergedView) and set(workers) <= set(view.pids)
        both = [f for f in view.findings if f.code == "LS101" and "busy_in_child" in f.title]
        assert len(both) == 1 and both[0].title.startswith("\u00d72 ")
        assert sorted(int(p) for p in both[0].evidence["pids"].split(", ")) == sorted(workers)
        assert view.snapshot.tasks.total >= 2  # a task at least in each worker
        assert view.lag_pid in view.pids
        await pilot.pause()
        header = str(app.dashboard.query_one(HeaderBar).render())
        assert header.startswith(f"all {len(view.pids)} processes"), header
        await pilot.press("n")  # and round to the program again
        await _until(pilot, lambda: followed.selected == followed.pid)


def test_one_process_has_no_list() -> None:
    asyncio.run(_single())


async def _single() -> None:
    from loopscope.sources.base import ListSource

    session = Session(ListSource([]))
    session.feed_all()
    app = LoopscopeApp(session)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("p")
        await pilot.pause()
        assert app.screen is app.dashboard
