"""The drill-down screens driven with Pilot: navigation, sorting, filtering, pause, detail."""

from __future__ import annotations

from pathlib import Path

from dashboard_scenario import T0, QueueSource, later_blocks
from helpers import dashboard, fed_session, in_loop, live_session, rows, shown, text_of, until
from screens_scenario import (
    primed_sources,
    screens_exited_events,
    screens_live_events,
    task_list,
)
from textual.widgets import Input

from loopscope.record.reader import Recording
from loopscope.replay import ReplayClock, ReplaySession
from loopscope.tui.awaits import AwaitsScreen, ResourceTable
from loopscope.tui.blocks import BlocksScreen, BlockTable
from loopscope.tui.dashboard import DashboardScreen
from loopscope.tui.finding import FindingScreen
from loopscope.tui.help import HelpScreen
from loopscope.tui.replay import make_replay_app
from loopscope.tui.task_detail import TaskDetailScreen
from loopscope.tui.tasks import FinishedTable, TasksScreen, TaskTable
from loopscope.tui.widgets import AwaitTable, HeaderBar, HotFramesTable
from record.recordings import write


def names(table: TaskTable) -> list[str]:
    return [r[0] for r in rows(table)]


@in_loop
async def test_keys_open_every_screen_and_escape_goes_back() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        for key, screen in (
            ("t", TasksScreen),
            ("3", BlocksScreen),
            ("4", AwaitsScreen),
            ("2", TasksScreen),
            ("a", AwaitsScreen),
        ):
            await pilot.press(key)
            await until(pilot, lambda screen=screen: isinstance(app.screen, screen))
            # one screen over the dashboard at a time
            assert len(app.screen_stack) == 3
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, BlocksScreen))
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


@in_loop
async def test_the_task_table_lists_sorts_and_filters() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen))
        screen = app.screen
        table = screen.query_one(TaskTable)
        await until(pilot, lambda: table.row_count == 10)
        # the longest waits first
        assert names(table)[:3] == ["worker-1", "Task-100", "Task-101"]
        assert rows(table)[0][1:] == [
            "Worker.run",
            "waiting",
            "queue_get",
            "12.0 s",
            "worker.py:17",
        ]
        summary = text_of(screen.query_one("#tasks-summary"))
        assert "showing 10 of 1,234 live tasks" in summary

        await pilot.press("s")  # next column after "waited": the await site
        await until(pilot, lambda: table.sort_key == "site")
        assert names(table)[0] == "Task-100"  # handlers.py sorts first
        assert names(table)[-1] == "worker-1"
        await pilot.press("o")
        await until(pilot, lambda: names(table)[0] == "worker-1")

        # A click on a column header sorts by it; a second click reverses.
        await pilot.click(TaskTable, offset=(3, 1))
        await until(pilot, lambda: table.sort_key == "name")
        assert names(table)[0] == "Task-100"
        await pilot.click(TaskTable, offset=(3, 1))
        await until(pilot, lambda: names(table)[0] == "worker-1")

        await pilot.press("slash")
        box = screen.query_one(Input)
        await until(pilot, lambda: box.has_focus)
        await pilot.press(*"worker")
        await until(pilot, lambda: table.row_count == 1)
        assert names(table) == ["worker-1"]
        assert "showing 1 of 1,234" in text_of(screen.query_one("#tasks-summary"))
        await pilot.press("enter")  # keeps the filter, back to the table
        await until(pilot, lambda: table.has_focus)
        assert table.row_count == 1
        await pilot.press("slash", "escape")  # clears it
        await until(pilot, lambda: table.row_count == 10)

        finished = screen.query_one(FinishedTable)
        assert [r[:3] for r in rows(finished)] == [
            ["Task-90", "handle_request", "exception"],
            ["Task-91", "handle_request", "ok"],
            ["Task-92", "fetch_user", "cancelled"],
        ]
        assert rows(finished)[0][5].startswith("KeyError: ")


@in_loop
async def test_a_task_in_full_shows_its_await_chain_and_arguments() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen))
        table = app.screen.query_one(TaskTable)
        await until(pilot, lambda: table.row_count == 10)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, TaskDetailScreen))
        text = text_of(app.screen.query_one("#task-text"))
        assert "Task-100" in text and "waits on    lock" in text
        assert "created at  server.py:77 in Server.accept" in text
        chain = text[text.index("Await chain") :].splitlines()[1:5]
        assert chain[0].startswith("handle_request  server.py:120")
        assert "request=<Request>, retries=3" in chain[0]
        assert "fetch_user  handlers.py:42" in chain[1] and "user_id=0" in chain[1]
        assert "Lock.acquire" in chain[2]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen))


@in_loop
async def test_blocks_show_the_call_tree_and_the_blocking_source() -> None:
    with primed_sources():
        app = dashboard(fed_session(screens_live_events()))
        async with app.run_test(size=(160, 48)) as pilot:
            await shown(pilot)
            await pilot.press("3")
            await until(pilot, lambda: isinstance(app.screen, BlocksScreen))
            table = app.screen.query_one(BlockTable)
            await until(pilot, lambda: table.row_count == 4)
            assert rows(table)[0][:4] == ["19.0 s", "250 ms", "cpu", "Task-43"]
            text = text_of(app.screen.query_one("#block-text"))
            assert "250 ms blocked" in text
            assert "❱ 88             out.append(format_row(row))" in text
            assert "100% ReportView.render_report  report.py:88" in text
            await pilot.press("down")
            await until(
                pilot, lambda: "180 ms blocked" in text_of(app.screen.query_one("#block-text"))
            )


@in_loop
async def test_awaits_list_sites_resources_and_the_tasks_waiting_there() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, AwaitsScreen))
        sites = app.screen.query_one(AwaitTable)
        await until(pilot, lambda: sites.row_count == 3)
        assert rows(app.screen.query_one(ResourceTable)) == [["Lock", "Lock", "800", "2.50 s"]]
        box = app.screen.query_one("#site-text")
        await until(pilot, lambda: "Listed tasks waiting here (8)" in text_of(box))
        text = text_of(box)
        assert "800 tasks wait on lock in fetch_user" in text and "Task-100" in text


@in_loop
async def test_pause_freezes_every_screen_and_shows_it() -> None:
    source = QueueSource()
    session = live_session(source)
    try:
        source.put(screens_live_events())
        app = dashboard(session)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await until(pilot, lambda: isinstance(app.screen, BlocksScreen))
            table = app.screen.query_one(BlockTable)
            await until(pilot, lambda: table.row_count == 4)
            await pilot.press("space")
            header = app.screen.query_one(HeaderBar)
            await until(pilot, lambda: "PAUSED" in text_of(header))

            source.put(later_blocks())
            await until(
                pilot,
                lambda: app.latest is not None and app.latest.snapshot.blocks.count == 7,
            )
            await pilot.pause()
            assert table.row_count == 4
            # the dashboard, shown now, is paused too and shows the same frozen view
            await pilot.press("1")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            assert "PAUSED" in text_of(app.screen.query_one(HeaderBar))
            assert [r[0] for r in rows(app.screen.query_one(HotFramesTable))] == [
                "…tView.render_report"
            ]
            await pilot.press("space")
            await until(pilot, lambda: app.screen.query_one(HotFramesTable).row_count == 2)
            assert "PAUSED" not in text_of(app.screen.query_one(HeaderBar))
    finally:
        session.close()


@in_loop
async def test_a_finding_goes_to_its_blocks() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FindingScreen))
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, BlocksScreen))
        table = app.screen.query_one(BlockTable)
        await until(pilot, lambda: table.row_count == 4)
        assert "report.py:88" in rows(table)[table.cursor_row][4]


@in_loop
async def test_the_task_table_follows_new_lists_by_key() -> None:
    source = QueueSource()
    session = live_session(source)
    try:
        source.put(screens_live_events())
        app = dashboard(session)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TasksScreen))
            table = app.screen.query_one(TaskTable)
            await until(pilot, lambda: table.row_count == 10)
            await pilot.press("down", "down")
            later = task_list(T0 + 19.5)
            newer = later.tasks[1:]  # the longest wait ended
            source.put([type(later)(**{**vars_of(later), "tasks": newer, "finished": ()})])
            await until(pilot, lambda: table.row_count == 9)
            # the cursor stays on the task it was on
            assert names(table)[table.cursor_row] == "Task-101"
    finally:
        session.close()


def vars_of(event: object) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}  # type: ignore[arg-type]


@in_loop
async def test_help_lists_the_screen_keys() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = dict(app.key_help())
        for key in ("2", "3", "4", "/", "s", "o", "g", "escape", "space"):
            assert any(key in listed.split() or key in listed for listed in keys), key


@in_loop
async def test_a_replay_shows_the_task_lists_it_recorded(tmp_path: Path) -> None:
    path = tmp_path / "session.lsrec"
    write(path, screens_exited_events())
    with Recording.open(path) as recording:
        info = recording.info
        clock = ReplayClock(info.start, info.end, playing=False)
        clock.seek(info.end)
        app = make_replay_app(ReplaySession(recording, clock), refresh=0.02)
        async with app.run_test(size=(120, 36)) as pilot:
            await shown(pilot)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TasksScreen))
            table = app.screen.query_one(TaskTable)
            await until(pilot, lambda: table.row_count == 10)
            assert names(table)[0] == "worker-1"
            # space plays and pauses the recording on every screen
            await pilot.press("space")
            assert clock.playing
            await pilot.press("space")
            assert not clock.playing


@in_loop
async def test_enter_on_a_dashboard_row_opens_its_screen_at_that_row() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        awaits = app.dashboard.query_one(AwaitTable)
        awaits.focus()
        await pilot.press("down", "enter")  # Worker.run, the second site
        await until(pilot, lambda: isinstance(app.screen, AwaitsScreen))
        sites = app.screen.query_one(AwaitTable)
        await until(pilot, lambda: sites.row_count == 3 and sites.cursor_row == 1)
        box = app.screen.query_one("#site-text")
        await until(pilot, lambda: "300 tasks wait on queue_get in Worker.run" in text_of(box))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        app.dashboard.query_one(HotFramesTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BlocksScreen))


@in_loop
async def test_an_ended_task_in_full_says_how_it_ended() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen))
        finished = app.screen.query_one(FinishedTable)
        await until(pilot, lambda: finished.row_count == 3)
        finished.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TaskDetailScreen))
        text = text_of(app.screen.query_one("#task-text"))
        assert "ended exception: KeyError: 'user'" in text
        assert "lived at least 1.25 s" in text


@in_loop
async def test_a_resource_in_full_lists_the_tasks_waiting_on_it() -> None:
    app = dashboard(fed_session(screens_live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, AwaitsScreen))
        resources = app.screen.query_one(ResourceTable)
        await until(pilot, lambda: resources.row_count == 1)
        resources.focus()
        box = app.screen.query_one("#site-text")
        await until(pilot, lambda: "waiters" in text_of(box))
        text = text_of(box)
        assert "800 waiters" in text and "Listed tasks waiting on it (8)" in text
