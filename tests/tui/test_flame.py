"""The flame screens: the icicle layout, moves and zoom (pure), the screens driven by keys, and
their SVG snapshots at 80x24 and 160x48."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dashboard_scenario import later_blocks
from helpers import dashboard, fed_session, in_loop, shown, until
from rich.console import Console
from screens_scenario import primed_sources, screens_live_events
from textual.pilot import Pilot

from builders import app, block, site, stdlib
from loopscope.events import Event, Frame
from loopscope.model.flame import FlameTree, fold
from loopscope.model.snapshot import TaskListView
from loopscope.tui._flame import Icicle, by_count, find, keys_of, layout, move, render_row
from loopscope.tui.awaits import AwaitsScreen
from loopscope.tui.blocks import BlocksScreen
from loopscope.tui.flame import FlameScreen, FlameView

SIZES = [(80, 24), (160, 48)]

LOOP = [
    stdlib("asyncio/events.py", 80, "Handle._run"),
    stdlib("asyncio/base_events.py", 1900, "_run_once"),
]
VIEW = site("aiohttp/web_protocol.py", 450, "RequestHandler._handle_request")


def _tree() -> FlameTree:
    """render (3 s) and hash (1 s) under one handler, under aiohttp and asyncio."""
    tree = FlameTree(root="all blocks")
    handler = app(20, "handle")
    tree.add(3.0, [app(5, "render"), handler, VIEW, *LOOP], count=30)
    tree.add(1.0, [stdlib("hashlib.py", 9, "pbkdf2"), app(9, "hash"), handler, VIEW, *LOOP])
    return tree


def test_fold_keeps_the_applications_frames_and_folds_runs_of_the_others() -> None:
    folded = fold([app(5, "render"), app(20, "handle"), VIEW, *LOOP], _tree().code)
    assert [(label, kind) for label, kind, _ in folded] == [
        ("asyncio, aiohttp", "folded"),
        ("handle", "app"),
        ("render", "app"),
    ]


def test_layout_gives_each_node_its_share_of_the_width() -> None:
    rows = layout(_tree().root, 40, 10)
    assert [[(c.node.label, c.x0, c.x1) for c in row] for row in rows] == [
        [("all blocks", 0, 40)],
        [("asyncio, aiohttp", 0, 40)],
        [("handle", 0, 40)],
        [("render", 0, 30), ("hash", 30, 40)],
        [("hashlib", 30, 40)],
    ]
    assert len(layout(_tree().root, 40, 3)) == 3  # no deeper than asked
    # Too narrow for a node: it is left out, and what is under it.
    assert [c.node.label for c in layout(_tree().root, 4, 10)[3]] == ["render", "hash"]
    assert [c.node.label for c in layout(_tree().root, 1, 10)[3]] == ["render"]


def test_moves() -> None:
    rows = layout(_tree().root, 40, 10)
    at = rows[0][0]
    down = move(rows, at, "down")
    assert down.node.label == "asyncio, aiohttp"
    handle = move(rows, down, "down")
    render = move(rows, handle, "down")  # the widest child
    assert render.node.label == "render"
    hash_ = move(rows, render, "right")
    assert hash_.node.label == "hash"
    assert move(rows, hash_, "right") is hash_  # the end of the row
    assert move(rows, hash_, "left") is render
    assert move(rows, hash_, "up") is handle
    assert move(rows, at, "up") is at
    assert move(rows, render, "down") is render  # a leaf
    # A selection is found again by its keys in a tree rebuilt from newer data.
    again = layout(_tree().root, 40, 10)
    assert find(again, keys_of(hash_.path)).node.label == "hash"  # type: ignore[union-attr]
    gone = (*keys_of(hash_.path)[:-1], ("app", "vanished", "handlers.py"))
    assert find(again, gone).node.label == "handle"  # type: ignore[union-attr]


def test_rows_are_exactly_as_wide_as_the_terminal() -> None:
    rows = layout(_tree().root, 37, 10)
    for row in rows:
        assert render_row(row, 37, None).cell_len == 37
    console = Console(width=37, height=10, record=True, color_system=None)
    console.print(Icicle(_tree().root, selected=keys_of(rows[3][1].path)))
    text = console.export_text()
    assert "render" in text and "hash" in text and "all blocks" in text


def test_an_await_tree_counts_tasks_and_sums_their_waits() -> None:
    from screens_scenario import task_list

    from loopscope.model.flame import await_tree

    event = task_list(100.0)
    tree = await_tree(TaskListView(t=100.0, total=len(event.tasks), tasks=event.tasks)).root
    waiting = [t for t in event.tasks if t.state == "waiting"]
    assert tree.count == len(waiting)
    assert tree.weight == pytest.approx(sum(t.waited for t in waiting))
    leaves = {
        c.node.label: c.node.count
        for row in layout(tree, 200, 20, by_count)
        for c in row
        if c.node.kind == "marker"
    }
    assert leaves.get("<lock>", 0) >= 3 and "<queue_get>" in leaves


def test_a_block_without_samples_is_one_marker() -> None:
    from loopscope.model.flame import block_tree
    from loopscope.model.snapshot import BlockRecord

    record = BlockRecord(
        t=1.0,
        loop=1,
        duration=0.5,
        task=None,
        cause="gil",
        cpu=None,
        samples=0,
        location=None,
        stacks=(),
    )
    root = block_tree([record]).root
    (only,) = root.children.values()
    assert only.kind == "marker" and only.weight == 0.5


# -- the screens ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _sources() -> Iterator[None]:
    with primed_sources():
        yield


def _flame(keys: tuple[str, ...], then: tuple[str, ...] = ()) -> Callable[[Pilot[Any]], Any]:
    async def before(pilot: Pilot[Any]) -> None:
        await shown(pilot)
        await pilot.press(*keys)
        await until(pilot, lambda: isinstance(pilot.app.screen, FlameScreen))
        flame = pilot.app.screen.query_one(FlameView)
        await until(pilot, lambda: flame.flame_root is not None and flame.flame_root.weight > 0)
        await pilot.press(*then)
        await pilot.pause()

    return before


def _with_more_blocks() -> list[Event]:
    """The screens' scenario, plus blocks in export_csv and in a hash under a login handler."""
    t = later_blocks()[-1].t + 0.5
    login = [stdlib("hashlib.py", 9, "pbkdf2_hmac"), app(30, "hash_password"), app(50, "login")]
    return sorted(
        [*screens_live_events(), *later_blocks(), block(t, 0.3, login, task="Task-91")],
        key=lambda e: e.t,
    )


FLAMES = {
    "blocks": (_with_more_blocks, _flame(("3", "f"))),
    "blocks-zoomed": (
        _with_more_blocks,
        _flame(("3", "f"), ("down", "down", "down", "right", "enter")),
    ),
    "awaits": (screens_live_events, _flame(("4", "f"), ("down", "down"))),
    "awaits-by-time": (screens_live_events, _flame(("4", "f"), ("w",))),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(FLAMES))
def test_flame_screen(snap_compare: Callable[..., bool], name: str, size: tuple[int, int]) -> None:
    events, before = FLAMES[name]
    app_ = dashboard(fed_session(events()))
    assert snap_compare(app_, terminal_size=size, run_before=before)


@in_loop
async def test_keys_zoom_in_and_escape_zooms_out_then_goes_back() -> None:
    app_ = dashboard(fed_session(screens_live_events()))
    async with app_.run_test(size=(80, 24)) as pilot:
        await _flame(("3", "f"))(pilot)
        flame = pilot.app.screen.query_one(FlameView)
        root = flame.shown_root()
        assert root is not None and root.label == "all blocks"
        await pilot.press("down", "down", "down")
        node = flame.selected_node()
        assert node is not None and node.label == "handle_request"
        await pilot.press("enter")
        assert flame.shown_root() is node and flame.zoom
        detail = str(pilot.app.screen.query_one("#flame-detail").render())
        assert "handle_request  server.py:120" in detail and "escape zooms out" in detail
        depth = len(flame.zoom)
        await pilot.press("escape")  # one level out at a time
        assert len(flame.zoom) == depth - 1
        await pilot.press(*["escape"] * (depth - 1))
        assert not flame.zoom and isinstance(pilot.app.screen, FlameScreen)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, BlocksScreen))
        await pilot.press("escape", "4", "f")
        await until(pilot, lambda: isinstance(pilot.app.screen, FlameScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, AwaitsScreen))


def test_frames_named_like_markers_only_without_a_file() -> None:
    (entry,) = fold([Frame("/srv/app/x.py", 1, "<lambda>")], FlameTree().code)
    assert entry[1] == "app"
