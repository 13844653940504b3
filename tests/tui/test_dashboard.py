"""The dashboard driven with Pilot over a real session and model, fed fixed events."""

from __future__ import annotations

from dashboard_scenario import (
    FIXED_T,
    HOW,
    LOG_PATH,
    T0,
    QueueSource,
    exited_events,
    later_blocks,
    live_events,
    web_events,
)
from helpers import dashboard, fed_session, in_loop, live_session, rows, shown, text_of, until

from builders import await_site, census
from loopscope.events import TargetExited
from loopscope.tui._format import DASH
from loopscope.tui.dashboard import DashboardScreen
from loopscope.tui.finding import FindingScreen
from loopscope.tui.help import HelpScreen
from loopscope.tui.widgets import (
    MAX_ROWS,
    AwaitTable,
    FindingDetail,
    FindingsTable,
    HeaderBar,
    HotFramesTable,
    LagPanel,
    RoutesTable,
    TasksPanel,
)


@in_loop
async def test_panels_show_the_session() -> None:
    app = dashboard(fed_session(live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        screen = app.dashboard

        header = text_of(screen.query_one(HeaderBar))
        for expected in (
            "pid 4242",
            "Python 3.11.7",
            "_UnixSelectorEventLoop on MainThread",
            "agent live",
            f"output {LOG_PATH}",
            HOW,
            "hook census.walk disabled after an error",
        ):
            assert expected in header
        assert "PAUSED" not in header and "exited" not in header

        lag = text_of(screen.query_one(LagPanel))
        assert "250 ms" in lag.splitlines()[0]  # the chart's scale follows the 250 ms stall
        assert "max 250 ms" in lag and "session max 250 ms" in lag and "busy 52%" in lag

        tasks = text_of(screen.query_one(TasksPanel))
        for expected in ("live     1,234", "waiting  1,200", "created  52.0/s", "lock 800"):
            assert expected in tasks

        assert rows(screen.query_one(HotFramesTable)) == [
            ["…tView.render_report", "report.py:88", "4", "640 ms", "250 ms", "cpu"]
        ]
        assert rows(screen.query_one(AwaitTable)) == [
            ["fetch_user", "handlers.py:42", "lock", "800", "2.50 s"],
            ["Worker.run", "worker.py:17", "queue_get", "300", "12.0 s"],
            ["poll", "poller.py:9", "sleep", "100", "800 ms"],
        ]
        finding, contended = rows(screen.query_one(FindingsTable))
        assert finding[:2] == ["error", "LS101"]
        assert "render_report" in finding[2] and "report.py:88" in finding[2]
        assert contended[:2] == ["error", "LS601"] and "800 waiters" in contended[2]

        detail = screen.query_one(FindingDetail)
        assert detail.display
        text = text_of(detail.query_one("#finding-text"))
        assert "Evidence" in text and "640 ms" in text and "asyncio.to_thread" in text


@in_loop
async def test_pause_freezes_the_view_while_events_arrive() -> None:
    source = QueueSource()
    session = live_session(source)
    try:
        source.put(live_events())
        app = dashboard(session)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.dashboard
            hot = screen.query_one(HotFramesTable)
            await until(pilot, lambda: hot.row_count == 1)

            await pilot.press("space")
            assert screen.paused
            await until(pilot, lambda: "PAUSED" in text_of(screen.query_one(HeaderBar)))
            frozen = screen.view

            source.put(later_blocks())
            latest = screen
            await until(
                pilot,
                lambda: latest.latest is not None and latest.latest.snapshot.blocks.count == 7,
            )
            await pilot.pause()
            assert screen.view is frozen
            assert [r[0] for r in rows(hot)] == ["…tView.render_report"]

            await pilot.press("space")
            await until(pilot, lambda: hot.row_count == 2)
            assert [r[0] for r in rows(hot)] == ["export_csv", "…tView.render_report"]
            assert "PAUSED" not in text_of(screen.query_one(HeaderBar))
    finally:
        session.close()


@in_loop
async def test_help_lists_every_key_and_escape_closes_it() -> None:
    app = dashboard(fed_session(live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = [key for key, _ in app.key_help()]
        for key in ("q", "?", "space", "⏎", "escape"):
            assert any(key in item for item in listed), key
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


@in_loop
async def test_q_quits() -> None:
    app = dashboard(fed_session(live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0


@in_loop
async def test_selecting_a_finding_shows_its_evidence_and_fix() -> None:
    app = dashboard(fed_session(live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        assert app.focused is app.dashboard.query_one(FindingsTable)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FindingScreen))
        text = text_of(app.screen.query_one("#finding-text"))
        assert "LS101" in text and "at report.py:88 in ReportView.render_report" in text
        assert "total          640 ms" in text
        assert "Move the CPU work off the loop" in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


@in_loop
async def test_an_exited_program_says_so_and_keeps_its_data() -> None:
    app = dashboard(fed_session(exited_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        header = text_of(app.dashboard.query_one(HeaderBar)).splitlines()
        assert header[0].strip().startswith("program exited with code 3")
        assert f"output {LOG_PATH}" in "\n".join(header)
        assert rows(app.dashboard.query_one(HotFramesTable))[0][1] == "report.py:88"


@in_loop
async def test_a_program_stopped_by_loopscope_says_how_once() -> None:
    events = [
        *live_events(),
        TargetExited(t=T0 + 19.9, exit_code=-2, reason="stopped by loopscope with SIGINT"),
    ]
    app = dashboard(fed_session(events))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        first = text_of(app.dashboard.query_one(HeaderBar)).splitlines()[0]
        assert first.strip().startswith("stopped by loopscope (SIGINT), exit code -2 ")
        assert first.rstrip().endswith("the data stays on screen")
        assert first.count("SIGINT") == 1 and "exited" not in first


@in_loop
async def test_a_narrow_terminal_stacks_the_panels_and_fits_them() -> None:
    app = dashboard(fed_session(live_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        screen = app.dashboard
        assert not screen.query_one(FindingDetail).display
        tables = [screen.query_one(t) for t in (HotFramesTable, AwaitTable, FindingsTable)]
        for table in tables:
            assert table.region.width == 80
            assert table.region.height >= 3  # border, header, and at least a row
            assert table.virtual_size.width <= table.content_size.width  # no sideways scroll
        assert [t.region.y for t in tables] == sorted(t.region.y for t in tables)
        assert tables[-1].region.bottom <= 23  # above the footer


@in_loop
async def test_tables_show_a_bounded_number_of_rows() -> None:
    sites = [await_site(i, f"handler_{i}", "sleep", 1000 - i, 1.0) for i in range(MAX_ROWS + 30)]
    events = [*live_events(), census(FIXED_T, total=100_000, sites=sites)]
    app = dashboard(fed_session(events))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        table = app.dashboard.query_one(AwaitTable)
        assert table.row_count == MAX_ROWS
        assert rows(table)[0][:2] == ["handler_0", "handlers.py:0"]


@in_loop
async def test_the_routes_panel_shows_a_web_services_routes_and_only_then() -> None:
    app = dashboard(fed_session(live_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        assert not app.dashboard.query_one(RoutesTable).display  # no routes: no panel

    app = dashboard(fed_session(web_events()))
    async with app.run_test(size=(160, 48)) as pilot:
        await shown(pilot)
        table = app.dashboard.query_one(RoutesTable)
        assert table.display
        # Most requests pending first; where they wait; the blocks while each ran.
        assert rows(table) == [
            ["POST /users/{uid}/login", "640", "fetch_user", "lock", DASH, DASH],
            ["GET /reports/{rid}", "12", "handle_request", "task", "4", "640 ms"],
            ["GET /health", "1", DASH, "", DASH, DASH],
        ]
        assert [key.value for key in table.rows] == [row[0] for row in rows(table)]  # keyed

    # Below 36 rows there is no room for it beside the other tables.
    app = dashboard(fed_session(web_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        table = app.dashboard.query_one(RoutesTable)
        assert len(rows(table)) == 3 and not table.display
