"""The dashboard's widgets. Each renders the view it is given (``view``) and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from loopscope.fleet.rows import MergedView
from loopscope.model import LAG_SERIES_SECONDS, RECENT_SECONDS
from loopscope.rules.finding import Finding
from loopscope.session import View
from loopscope.tui import _panels
from loopscope.tui._charts import busy_chart, lag_chart, trend
from loopscope.tui._format import clip
from loopscope.tui._panels import Row
from loopscope.tui._panels import cwd_of as _cwd

# Tables show the head of their list: enough to scroll through, few enough that updating them
# every tick stays cheap however large the target is.
MAX_ROWS = 50


class HeaderBar(Widget):
    """The target, how it is observed, where its output goes, and whether it has exited."""

    view: reactive[View | None] = reactive(None)
    paused: reactive[bool] = reactive(False)

    def __init__(self, *, how: str, log_path: str | None, id: str | None = None) -> None:
        super().__init__(id=id)
        self._how = how
        self._log_path = log_path
        self._lines = 0

    def watch_view(self) -> None:
        # Its height follows its lines (an exit banner, a notice appear). A layout pass redraws
        # the whole screen, so it is asked for only when that number changes.
        lines = len(self.render().plain.splitlines())
        if lines != self._lines:
            self._lines = lines
            self.refresh(layout=True)

    def render(self) -> Text:
        snapshot = self.view.snapshot if self.view is not None else None
        return _panels.header(
            snapshot,
            paused=self.paused,
            how=self._how,
            log_path=self._log_path,
            processes=self.view.pids if isinstance(self.view, MergedView) else (),
        )


class LagPanel(Widget):
    """Lag over the last minute as a chart, with its recent percentiles below."""

    BORDER_TITLE = "Loop lag"
    BORDER_SUBTITLE = f"chart {LAG_SERIES_SECONDS:.0f} s · p50/p99/max {RECENT_SECONDS:.0f} s"

    view: reactive[View | None] = reactive(None)

    def watch_view(self, view: View | None) -> None:
        # Of several processes together, the worst one's lag is shown: which one it is.
        several = isinstance(view, MergedView) and len(view.pids) > 1
        worst = f" · worst: pid {view.lag_pid}" if isinstance(view, MergedView) and several else ""
        self.border_title = self.BORDER_TITLE + worst

    def render(self) -> RenderableType:
        if self.view is None:
            return Text("waiting for data…", style="dim")
        snapshot = self.view.snapshot
        external = snapshot.external
        if snapshot.lag.heartbeats == 0 and external is not None and external.series:
            # No agent: the busy share py-spy sees stands in for the lag.
            stats = _panels.external_stats(external, _cwd(snapshot))
            return Group(
                busy_chart(
                    list(external.series),
                    end=snapshot.t,
                    span=LAG_SERIES_SECONDS,
                    height=max(1, self.content_size.height - len(stats.plain.splitlines())),
                ),
                stats,
            )
        stats = _panels.lag_stats(snapshot.lag)
        chart = lag_chart(
            _panels.lag_points(snapshot.lag),
            end=snapshot.t,
            span=LAG_SERIES_SECONDS,
            height=max(1, self.content_size.height - len(stats.plain.splitlines())),
        )
        return Group(chart, stats)


class TasksPanel(Widget):
    """Live tasks with their trend, by state and by what they wait on, and the churn rates."""

    BORDER_TITLE = "Tasks"

    view: reactive[View | None] = reactive(None)

    def render(self) -> RenderableType:
        if self.view is None:
            return Text("waiting for data…", style="dim")
        snapshot = self.view.snapshot
        tasks = snapshot.tasks
        line = trend(_panels.task_points(tasks), end=snapshot.t, span=LAG_SERIES_SECONDS)
        return Group(
            _panels.tasks_summary(tasks, line), _panels.tasks_detail(tasks, snapshot.monitor)
        )


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    keep: str = "end"  # which end of a text too long for the column is kept ("start" | "end")
    right: bool = False


class _Lead(Text):
    """The first cell of a row. It carries the row's place in the snapshot's order, which is
    what the table sorts by (a sort key only ever sees cells, not row keys)."""

    def __init__(self, text: Text, rank: int) -> None:
        super().__init__(
            text.plain,
            style=text.style,
            justify=text.justify,
            overflow=text.overflow,
            no_wrap=text.no_wrap,
            end="",
            spans=list(text.spans),
        )
        self.rank = rank


def _same(a: object, b: Text) -> bool:
    return isinstance(a, Text) and a == b and a.style == b.style


def _fit(text: Text, column: Column) -> Text:
    if text.cell_len <= column.width:
        return text
    return Text(
        clip(text.plain, column.width, keep=column.keep), style=text.style, justify=text.justify
    )


class SnapshotTable(DataTable[Text]):
    """A table of snapshot rows, updated in place by row key and kept in the snapshot's order.

    Rows are never cleared and rebuilt: a tick changes only the cells whose text changed, so a
    large, busy target costs little to follow.
    """

    # Widths are fixed so that a table fits in 80 columns with its border and scrollbar: the
    # width it gets both on an 80-column terminal and beside another table on a wide one.
    COLUMNS: ClassVar[tuple[Column, ...]] = ()

    view: reactive[View | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)

    def on_mount(self) -> None:
        for column in self.COLUMNS:
            label = Text(column.label, justify="right" if column.right else "left")
            self.add_column(label, key=column.key, width=column.width)

    def rows_of(self, view: View) -> list[Row]:
        raise NotImplementedError

    def watch_view(self, view: View | None) -> None:
        if view is not None:
            self.sync(self.rows_of(view)[:MAX_ROWS])

    def sync(self, rows: list[Row]) -> None:
        """Make the table show ``rows`` (key, cells), in this order."""
        wanted = {key for key, _ in rows}
        cursor_key = self._cursor_key()
        keys = [ColumnKey(c.key) for c in self.COLUMNS]
        with self.app.batch_update():
            for stale in [k for k in self.rows if k.value not in wanted]:
                self.remove_row(stale)
            reordered = False
            for rank, (key, cells) in enumerate(rows):
                fitted = [
                    _fit(cell, column) for cell, column in zip(cells, self.COLUMNS, strict=True)
                ]
                values = (_Lead(fitted[0], rank), *fitted[1:])
                if key not in self.rows:
                    self.add_row(*values, key=key)
                    reordered = True
                    continue
                current = self.get_row(key)
                moved = getattr(current[0], "rank", None) != rank
                reordered = reordered or moved
                for i, (column, old, new) in enumerate(zip(keys, current, values, strict=True)):
                    if not _same(old, new) or (i == 0 and moved):
                        self.update_cell(key, column, new)
            if reordered:
                self.sort(keys[0], key=lambda lead: lead.rank)
                if cursor_key is not None and cursor_key in self.rows:
                    self.move_cursor(row=self.get_row_index(cursor_key))
        self.set_class(not rows, "-empty")

    def _cursor_key(self) -> RowKey | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None


class AwaitTable(SnapshotTable):
    """Pending awaits grouped by the code they wait at."""

    BORDER_TITLE = "Pending awaits"
    COLUMNS = (
        Column("function", "function", 20),
        Column("where", "where", 19),
        Column("kind", "waits on", 12),
        Column("count", "tasks", 6, right=True),
        Column("oldest", "oldest", 7, right=True),
    )

    def rows_of(self, view: View) -> list[Row]:
        snapshot = view.snapshot
        return _panels.await_rows(snapshot.await_sites, _cwd(snapshot), MAX_ROWS)


class HotFramesTable(SnapshotTable):
    """The application code that blocked the loop, most blocked time first."""

    BORDER_TITLE = "Hot blocking frames"
    COLUMNS = (
        Column("function", "function", 20),
        Column("where", "where", 19),
        Column("blocks", "blocks", 6, right=True),
        Column("total", "total", 7, right=True),
        Column("max", "max", 7, right=True),
        Column("cause", "cause", 5),
    )

    def rows_of(self, view: View) -> list[Row]:
        snapshot = view.snapshot
        rows = _panels.hot_rows(snapshot.blocks.hot, _cwd(snapshot), MAX_ROWS)
        if isinstance(view, MergedView) and len(view.pids) > 1:
            # Which process each came from, after the function (the end of it is kept).
            for key, cells in rows:
                pids = view.hot_pids.get(key, ())
                cells[0].append(
                    f" \u00d7{len(pids)}" if len(pids) > 1 else f" pid {pids[0]}" if pids else "",
                    style="dim",
                )
        return rows


class RoutesTable(SnapshotTable):
    """A web service's routes: requests pending on each now, where most of them wait, and the
    blocks of the loop while each was served. Shown only when the target serves routes, on a
    terminal tall enough for it beside the other tables."""

    BORDER_TITLE = "Routes"
    COLUMNS = (
        Column("route", "route", 24, keep="start"),
        Column("in_flight", "reqs", 5, right=True),
        Column("site", "waits at", 16),
        Column("kind", "on", 7),
        Column("blocks", "blocks", 6, right=True),
        Column("blocked", "blocked", 7, right=True),
    )

    def rows_of(self, view: View) -> list[Row]:
        return _panels.route_rows(view.snapshot.routes, MAX_ROWS)

    def watch_view(self, view: View | None) -> None:
        super().watch_view(view)
        if view is not None:
            # The screen's style shows the panel where there is room for it.
            self.set_class(bool(view.snapshot.routes), "-routes")


class FindingsTable(SnapshotTable):
    """The findings, most severe first. Highlighting or selecting one says which."""

    BORDER_TITLE = "Findings"
    COLUMNS = (
        Column("severity", "severity", 8),
        Column("code", "code", 6),
        Column("title", "finding", 56, keep="start"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Details")]

    class Highlighted(Message):
        """The finding under the cursor changed (None: there are no findings)."""

        def __init__(self, finding: Finding | None) -> None:
            super().__init__()
            self.finding = finding

    class Selected(Message):
        """A finding was chosen to be seen in full."""

        def __init__(self, finding: Finding) -> None:
            super().__init__()
            self.finding = finding

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._findings: dict[str, Finding] = {}
        self._announced: Finding | None = None

    def rows_of(self, view: View) -> list[Row]:
        self._findings = {_panels.finding_key(f): f for f in view.findings[:MAX_ROWS]}
        return _panels.finding_rows(view.findings, MAX_ROWS)

    def watch_view(self, view: View | None) -> None:
        super().watch_view(view)
        self._announce()

    @property
    def highlighted(self) -> Finding | None:
        key = self._cursor_key()
        return None if key is None or key.value is None else self._findings.get(key.value)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._announce()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        finding = self._findings.get(event.row_key.value or "")
        if finding is not None:
            self.post_message(self.Selected(finding))

    def _announce(self) -> None:
        finding = self.highlighted
        if finding != self._announced:
            self._announced = finding
            self.post_message(self.Highlighted(finding))


class FindingDetail(VerticalScroll):
    """One finding in full: where, the evidence, and the fix."""

    view: reactive[View | None] = reactive(None)
    finding: reactive[Finding | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="finding-text")

    BORDER_TITLE = "Finding"

    def on_mount(self) -> None:
        self._show()

    def watch_view(self) -> None:
        self._show()

    def watch_finding(self) -> None:
        self._show()

    def _show(self) -> None:
        if not self.is_mounted:
            return
        snapshot = self.view.snapshot if self.view is not None else None
        # What the text depends on: updating it costs a layout pass, so only when that changes.
        shown = (self.finding, snapshot.started if snapshot else None, _cwd(snapshot))
        if shown != self._shown:
            self._shown = shown
            text = _panels.finding_detail(self.finding, snapshot)
            self.query_one("#finding-text", Static).update(text)
