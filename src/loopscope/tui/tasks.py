"""The tasks screen: the live tasks the agent listed, sortable and filterable, and the listed
tasks that ended, with how."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import ColumnKey

from loopscope.session import View
from loopscope.tui import _tasks
from loopscope.tui._format import clip
from loopscope.tui._panels import Row, cwd_of
from loopscope.tui._screen import SubScreen
from loopscope.tui.task_detail import TaskDetailScreen
from loopscope.tui.widgets import MAX_ROWS, Column, SnapshotTable


class TaskTable(SnapshotTable):
    """The listed live tasks, in the chosen order, those matching the filter."""

    BORDER_TITLE = "Live tasks"
    COLUMNS = (
        Column("name", "name", 11),
        Column("coro", "coroutine", 16),
        Column("state", "state", 7),
        Column("kind", "waits on", 9),
        Column("waited", "waited", 7, right=True),
        Column("site", "await site", 14),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Detail"),
        Binding("s", "next_sort", "Sort"),
        Binding("o", "reverse", "Reverse", show=False),
    ]

    class Chosen(Message):
        """A task was chosen to be seen in full."""

        def __init__(self, task_id: int) -> None:
            super().__init__()
            self.task_id = task_id

    class Changed(Message):
        """The order or the filter of the rows changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_key = "waited"
        self.descending = True
        self.filter = ""

    def rows_of(self, view: View) -> list[Row]:
        chosen = _tasks.filter_tasks(view.snapshot.task_list.tasks, self.filter)
        ordered = _tasks.sort_tasks(chosen, self.sort_key, descending=self.descending)
        return _tasks.task_rows(ordered[:MAX_ROWS], cwd_of(view.snapshot))

    def set_order(self, key: str, *, descending: bool | None = None) -> None:
        """Sort by column ``key``; the same column again reverses the order."""
        if descending is None:
            descending = not self.descending if key == self.sort_key else key == "waited"
        self.sort_key, self.descending = key, descending
        self._relabel()
        self.resync()

    def resync(self) -> None:
        """Show the rows again after the order or the filter changed."""
        if self.view is not None:
            self.watch_view(self.view)
        self.post_message(self.Changed())

    def action_next_sort(self) -> None:
        keys = [c.key for c in self.COLUMNS]
        following = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.set_order(following, descending=following == "waited")

    def action_reverse(self) -> None:
        self.set_order(self.sort_key, descending=not self.descending)

    def on_mount(self) -> None:
        # (SnapshotTable's own on_mount, which adds the columns, runs after this one.)
        self.call_later(self._relabel)

    def _relabel(self) -> None:
        for column in self.COLUMNS:
            text = column.label
            if column.key == self.sort_key:
                mark = "▼" if self.descending else "▲"
                room = column.width - len(mark)
                text = (text + " " if len(text) < room else clip(text, room)) + mark
            label = Text(text, justify="right" if column.right else "left")
            self.columns[ColumnKey(column.key)].label = label
        self.refresh()

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        if key is not None:
            self.set_order(key)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(int(event.row_key.value)))


class FinishedTable(SnapshotTable):
    """Listed tasks that ended, newest first."""

    BORDER_TITLE = "Ended (of the listed tasks)"
    COLUMNS = (
        Column("name", "name", 11),
        Column("coro", "coroutine", 16),
        Column("result", "result", 9),
        Column("lived", "lived ≥", 7, right=True),
        Column("ago", "ended", 7, right=True),
        Column("error", "error", 14, keep="start"),
    )

    def rows_of(self, view: View) -> list[Row]:
        snapshot = view.snapshot
        return _tasks.finished_rows(snapshot.task_list.finished[:MAX_ROWS], snapshot.t)


class FilterInput(Input):
    """Where ``/`` types the filter; escape clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "clear", "Clear filter")]

    def action_clear(self) -> None:
        self.value = ""
        self.display = False
        self.screen.query_one(TaskTable).focus()


class TasksScreen(SubScreen):
    CSS_PATH = "tasks.tcss"
    HELP_WITH = (TaskTable,)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "filter", "Filter")]

    def compose(self) -> ComposeResult:
        yield self.header()
        yield Static(id="tasks-summary")
        with Horizontal(id="tasks-body"):
            yield TaskTable(id="tasks").data_bind(TasksScreen.view)
            yield FinishedTable(id="finished").data_bind(TasksScreen.view)
        yield FilterInput(placeholder="filter: name, coroutine or await site", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TaskTable).focus()

    def watch_view(self) -> None:
        self._summarise()

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        table = self.query_one(TaskTable)
        table.filter = event.value
        table.resync()
        event.input.display = bool(event.value) or event.input.has_focus

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.input.display = bool(event.value)
        self.query_one(TaskTable).focus()

    @on(TaskTable.Changed)
    def _table_changed(self) -> None:
        self._summarise()

    @on(TaskTable.Chosen)
    def _task_chosen(self, event: TaskTable.Chosen) -> None:
        self.open(TaskDetailScreen(event.task_id, how=self._how, log_path=self._log_path))

    @on(DataTable.RowSelected, "#finished")
    def _ended_chosen(self, event: DataTable.RowSelected) -> None:
        # The row key is "id:ended".
        task_id = (event.row_key.value or "").partition(":")[0]
        if task_id.isdigit():
            self.post_message(TaskTable.Chosen(int(task_id)))

    def _summarise(self) -> None:
        if not self.query(TaskTable):
            return
        table = self.query_one(TaskTable)
        snapshot = self.view.snapshot if self.view is not None else None
        tasks = snapshot.task_list.tasks if snapshot is not None else ()
        text = _tasks.tasks_list_summary(
            snapshot.task_list if snapshot is not None else None,
            shown=len(_tasks.filter_tasks(tasks, table.filter)),
            filter=table.filter,
            sort=table.sort_key,
            descending=table.descending,
        )
        self.query_one("#tasks-summary", Static).update(text)
