"""Snapshot tables update their rows in place, by key, in the snapshot's order."""

from __future__ import annotations

from typing import Any, ClassVar

from helpers import in_loop, rows
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets.data_table import RowKey

from loopscope.tui.widgets import Column, SnapshotTable


class CountingTable(SnapshotTable):
    """Counts the row operations the table performs, to tell an update from a rebuild."""

    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("name", "name", 8),
        Column("n", "n", 4, right=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self.added = 0
        self.cleared = 0

    def add_row(self, *cells: Any, **kwargs: Any) -> RowKey:
        self.added += 1
        return super().add_row(*cells, **kwargs)

    def clear(self, columns: bool = False) -> CountingTable:
        self.cleared += 1
        super().clear(columns)
        return self


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield CountingTable()


def row(key: str, n: int) -> tuple[str, tuple[Text, ...]]:
    return key, (Text(key), Text(str(n)))


@in_loop
async def test_rows_are_updated_by_key_and_kept_in_order() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(CountingTable)
        table.sync([row("a", 3), row("b", 2), row("c", 1)])
        table.move_cursor(row=1)  # on "b"
        await pilot.pause()

        table.sync([row("b", 9), row("a", 3), row("d", 1)])  # b climbs, c goes, d comes
        assert rows(table) == [["b", "9"], ["a", "3"], ["d", "1"]]
        assert table.added == 4 and table.cleared == 0  # only "d" was added
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "b"

        table.sync([row("b", 9), row("a", 3), row("d", 1)])
        assert table.added == 4

        table.sync([])
        assert table.row_count == 0 and table.has_class("-empty")


@in_loop
async def test_long_text_is_cut_to_its_column() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(CountingTable)
        table.sync([("k", (Text("Handler.render_report"), Text("12345")))])
        await pilot.pause()
        assert rows(table) == [["…_report", "…345"]]
