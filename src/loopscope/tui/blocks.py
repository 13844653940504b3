"""The blocks screen: every recent block of the loop, and the one highlighted in full: its
stacks merged into a call tree with sample shares, and the blocking line's source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from loopscope.model.location import Location
from loopscope.model.snapshot import BlockRecord
from loopscope.session import View
from loopscope.tui import _blocks
from loopscope.tui._drill import DrillScreen
from loopscope.tui._panels import Row, cwd_of
from loopscope.tui.widgets import MAX_ROWS, Column, SnapshotTable


class BlockTable(SnapshotTable):
    """The recent blocks, newest first."""

    BORDER_TITLE = "Blocks (newest first)"
    COLUMNS = (
        Column("at", "at", 7, right=True),
        Column("duration", "blocked", 7, right=True),
        Column("cause", "cause", 5),
        Column("task", "task", 10),
        Column("where", "where", 31),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Detail", show=False)
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.blocks: dict[str, BlockRecord] = {}

    def rows_of(self, view: View) -> list[Row]:
        snapshot = view.snapshot
        recent = snapshot.blocks.recent[:MAX_ROWS]
        self.blocks = {_blocks.block_key(b): b for b in recent}
        return _blocks.block_rows(recent, snapshot.started, cwd_of(snapshot))

    @property
    def highlighted(self) -> BlockRecord | None:
        key = self._cursor_key()
        return None if key is None or key.value is None else self.blocks.get(key.value)


class BlocksScreen(DrillScreen):
    CSS_PATH = "blocks.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f", "flame", "Flame")]
    TABLE = BlockTable
    FLAME = "blocks"

    def compose(self) -> ComposeResult:
        yield self.header()
        with Horizontal(id="blocks-body"):
            yield BlockTable(id="blocks").data_bind(BlocksScreen.view)
            with VerticalScroll(id="block-box") as box:
                box.border_title = "Block"
                yield Static(id="block-text")
        yield Footer()

    def _row_keys(self, view: View) -> Iterator[tuple[str, ...]]:
        for key, block in self.query_one(BlockTable).blocks.items():
            loc = block.location
            yield key, Location.of(loc).key if loc is not None else ""

    @on(DataTable.RowHighlighted, "#blocks")
    def _highlighted(self) -> None:
        self._detail()

    def _detail(self) -> None:
        if self.view is None or not self.ready("#block-text"):
            return
        block = self.query_one(BlockTable).highlighted
        snapshot = self.view.snapshot
        shown = (block, cwd_of(snapshot))
        if shown == self._shown:
            return
        self._shown = shown
        text = _blocks.block_detail(block, started=snapshot.started, cwd=cwd_of(snapshot))
        self.put_text("#block-text", text)
