"""Every process together on the dashboard: the merge of the processes' views (a pure function),
and the dashboard showing it, over two fixed sessions (a program and one worker)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from dashboard_scenario import EXPORT, HOW, LOG_PATH, RENDER, T0, live_events, web_events
from helpers import fed_session, in_loop, rows, shown, text_of, until
from textual.pilot import Pilot

from builders import await_site, block, census, hello, lag
from loopscope.events import Block, Census, Event, LoopStarted, RouteLoad, SourceState
from loopscope.fleet.rows import ALL, MergedView, ProcessRow, SharedFinding, merged, shared
from loopscope.session import Session, View
from loopscope.tui.app import LoopscopeApp
from loopscope.tui.processes import ProcessesScreen
from loopscope.tui.widgets import FindingsTable, HeaderBar, HotFramesTable, LagPanel, TasksPanel

PROGRAM, WORKER = 4242, 4243


def worker_events() -> list[Event]:
    """A second process: a healthy loop, 100 tasks, two blocks in the program's `render_report`
    and three of its own in `export_csv`."""
    out: list[Event] = [
        hello(T0, pid=WORKER),
        SourceState(t=T0, source="agent", state="live"),
        LoopStarted(
            t=T0,
            loop=1,
            thread_id=1,
            thread_name="MainThread",
            loop_class="asyncio.unix_events._UnixSelectorEventLoop",
            features=("lag", "blocks", "census", "lifecycle"),
        ),
    ]
    out += [lag(T0 + i * 0.25, [0.0004] * 20, busy=0.2, ready=1) for i in range(1, 81)]
    out += [block(T0 + 17.0 + i, 0.1, RENDER, task="Task-3") for i in range(2)]
    out += [block(T0 + 18.5 + i * 0.1, 0.4, EXPORT, task="Task-9") for i in range(3)]
    out.append(
        census(
            T0 + 19.5,
            total=100,
            by_state={"waiting": 100},
            by_kind={"lock": 100},
            sites=[await_site(42, "fetch_user", "lock", 100, 1.0)],
        )
    )
    out.sort(key=lambda e: e.t)
    return out


class FixedProcesses:
    """`Processes` over fixed sessions: the program and one worker."""

    def __init__(self, sessions: dict[int, Session]) -> None:
        self._sessions = sessions
        self.selected = PROGRAM

    def select(self, pid: int) -> None:
        self.selected = pid

    def _views(self) -> list[tuple[int, View]]:
        return [(pid, s.view()) for pid, s in self._sessions.items()]

    def view(self) -> View:
        if self.selected == ALL:
            return merged(self._views())
        return self._sessions[self.selected].view()

    def processes(self) -> list[ProcessRow]:
        return [
            ProcessRow(
                pid=pid,
                name="app",
                command="app.py",
                state="live",
                lag_p99=v.snapshot.lag.p99,
                busy=v.snapshot.lag.busy,
                tasks=v.snapshot.tasks.total,
                blocks_per_min=float(v.snapshot.blocks.recent_count),
                findings=len(v.findings),
                main=pid == PROGRAM,
            )
            for pid, v in self._views()
        ]

    def findings(self) -> list[SharedFinding]:
        return shared([(pid, "app", "app.py", "live", v) for pid, v in self._views()])


@pytest.fixture(scope="module")
def two() -> dict[int, View]:
    return {
        PROGRAM: fed_session(live_events()).view(),
        WORKER: fed_session(worker_events()).view(),
    }


def test_the_merge_of_two_processes(two: dict[int, View]) -> None:
    program, worker = two[PROGRAM], two[WORKER]
    view = merged(list(two.items()))
    assert isinstance(view, MergedView)
    assert view.pids == (PROGRAM, WORKER)
    # The lag is the worst process's, and says which.
    assert program.snapshot.lag.p99 is not None and worker.snapshot.lag.p99 is not None
    assert program.snapshot.lag.p99 > worker.snapshot.lag.p99
    assert view.lag_pid == PROGRAM and view.snapshot.lag == program.snapshot.lag
    # Tasks summed, by state and kind too; await sites alike added up.
    tasks = view.snapshot.tasks
    assert tasks.total == program.snapshot.tasks.total + worker.snapshot.tasks.total == 1334
    assert tasks.by_kind["lock"] == 900
    assert tasks.series[-1][1] == 1334
    fetch = [a for a in view.snapshot.await_sites if a.function == "fetch_user"]
    assert [a.count for a in fetch] == [900]
    # Blocks of both: render_report once, its numbers summed, hot in both; export_csv in one.
    blocks = view.snapshot.blocks
    assert blocks.count == program.snapshot.blocks.count + worker.snapshot.blocks.count == 9
    assert blocks.max == 0.4
    assert [b.t for b in blocks.recent] == sorted((b.t for b in blocks.recent), reverse=True)
    hot = {h.function: h for h in blocks.hot}
    assert hot["ReportView.render_report"].blocks == 6
    assert hot["export_csv"].blocks == 3
    pids = {h.function: view.hot_pids[f"{h.file}:{h.line}:{h.function}"] for h in blocks.hot}
    assert pids == {"ReportView.render_report": (PROGRAM, WORKER), "export_csv": (WORKER,)}
    # Findings: one per finding, xN with the pids in its evidence.
    render = [f for f in view.findings if f.code == "LS101" and "render_report" in f.title]
    assert len(render) == 1
    assert render[0].title.startswith("\u00d72 ")
    assert render[0].evidence["pids"] == f"{PROGRAM}, {WORKER}"
    export = [f for f in view.findings if "export_csv" in f.title]
    assert export and all(f.evidence["pids"] == str(WORKER) for f in export)
    assert len(view.findings) == len(shared([(p, "", "", "", v) for p, v in two.items()]))
    # Neither process has ended: nor has the whole.
    assert view.snapshot.exited is None


def test_the_routes_of_two_workers_are_summed() -> None:
    # Two workers of one web service: each route once, its requests and blocks added up, the
    # wait of the worker with most of its requests pending.
    first = fed_session(web_events()).view()
    second = fed_session(
        [
            dataclasses.replace(e, route="GET /reports/{rid}")
            if isinstance(e, Block)
            else dataclasses.replace(
                e, routes=(RouteLoad("GET /reports/{rid}", 30, EXPORT[0], "sleep", 2.0),)
            )
            if isinstance(e, Census)
            else e
            for e in worker_events()
        ]
    ).view()
    view = merged([(PROGRAM, first), (WORKER, second)])
    routes = {r.route: r for r in view.snapshot.routes}
    reports = routes["GET /reports/{rid}"]
    assert reports.in_flight == 12 + 30
    assert (reports.site, reports.kind, reports.oldest) == (EXPORT[0], "sleep", 2.0)
    assert reports.blocks == 4 + 5
    assert routes["POST /users/{uid}/login"].in_flight == 640
    assert view.snapshot.routes[0].route == "POST /users/{uid}/login"  # most pending first


def test_one_process_merged_is_itself_with_its_pid(two: dict[int, View]) -> None:
    view = merged([(WORKER, two[WORKER])])
    assert view.snapshot.tasks.total == 100 and view.lag_pid == WORKER
    assert [f.title for f in view.findings] == [f.title for f in two[WORKER].findings]
    with pytest.raises(ValueError):
        merged([])


def _app() -> tuple[LoopscopeApp, FixedProcesses]:
    fleet = FixedProcesses(
        {PROGRAM: fed_session(live_events()), WORKER: fed_session(worker_events())}
    )
    return LoopscopeApp(fleet, log_path=LOG_PATH, how=HOW, refresh=0.05), fleet


@in_loop
async def test_all_processes_on_the_dashboard() -> None:
    app, fleet = _app()
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        # The list's first row is every process together; enter on it shows them.
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ProcessesScreen))
        table = app.screen.query_one("#processes")
        first = rows(table)[0]  # type: ignore[arg-type]
        assert first[0] == "  all" and first[1] == "2 processes" and first[5] == "1334"
        table.move_cursor(row=0)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is app.dashboard)
        await until(pilot, lambda: isinstance(app.dashboard.view, MergedView))
        await pilot.pause()
        dash = app.dashboard
        assert fleet.selected == ALL
        assert text_of(dash.query_one(HeaderBar)).startswith("all 2 processes · pids 4242, 4243")
        assert dash.query_one(LagPanel).border_title == f"Loop lag · worst: pid {PROGRAM}"
        assert text_of(dash.query_one(TasksPanel)).split()[:2] == ["live", "1,334"]
        hot = [r[0] for r in rows(dash.query_one(HotFramesTable))]
        assert any(r.endswith("render_report \u00d72") for r in hot), hot
        assert any(r.endswith(f"export_csv pid {WORKER}") for r in hot), hot
        titles = [r[2] for r in rows(dash.query_one(FindingsTable))]
        assert sum("render_report" in t and t.startswith("\u00d72 ") for t in titles) == 1

        # n: the next process, after the last of them all together, then the first again.
        for expected in (PROGRAM, WORKER, ALL):
            await pilot.press("n")
            await until(pilot, lambda e=expected: fleet.selected == e)
        await pilot.press("n", "n")
        await until(pilot, lambda: _shows(dash.view, WORKER))
        await pilot.pause()
        assert text_of(dash.query_one(HeaderBar)).startswith(f"pid {WORKER}")
        assert dash.query_one(LagPanel).border_title == "Loop lag"
        # And the key is in the help.
        assert any(key == "n" for key, _ in app.key_help())


def _shows(view: View | None, pid: int) -> bool:
    """Whether ``view`` is process ``pid``'s own."""
    return (
        view is not None
        and not isinstance(view, MergedView)
        and view.snapshot.target is not None
        and view.snapshot.target.pid == pid
    )


async def _all(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, LoopscopeApp)
    await until(pilot, lambda: isinstance(app.dashboard.view, MergedView))
    await pilot.pause()


def test_all_processes_snapshot(snap_compare: Callable[..., bool]) -> None:
    # Every process from the first view: a switch would move the tables' cursors to the rows
    # they were on, and the picture would catch them scrolling, or not.
    app, fleet = _app()
    fleet.select(ALL)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_all)


def test_blocks_alike_in_two_processes_are_listed_once(two: dict[int, View]) -> None:
    # Two forked processes can share a loop's id; a block of each at the same instant would
    # have the same row key in the tables: one is kept in the list (both are counted).
    worker = two[WORKER]
    view = merged([(WORKER, worker), (WORKER + 1, worker)])
    recent = view.snapshot.blocks.recent
    assert len({(b.loop, b.t) for b in recent}) == len(recent) == len(worker.snapshot.blocks.recent)
    assert view.snapshot.blocks.count == 2 * worker.snapshot.blocks.count
