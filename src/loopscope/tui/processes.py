"""The processes followed (the program and its workers): one summary row each, and the
findings of all of them, a finding seen in several processes as one row marked xN. Enter on a
process shows it on the dashboard; on the first row, "all", every process together."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer

from loopscope.fleet.rows import ALL, Processes, ProcessRow
from loopscope.tui._format import DASH, duration, percent
from loopscope.tui._screen import SubScreen

_PROCESS_COLUMNS = (
    "pid",
    "process",
    "state",
    "lag p99",
    "busy",
    "tasks",
    "blocks/min",
    "findings",
    "command",
)
_FINDING_COLUMNS = ("severity", "code", "finding", "in", "pids")


def all_cells(rows: list[ProcessRow], findings: int, selected: bool) -> tuple[str, ...]:
    """The first row: every process together (as the dashboard shows them when it is chosen):
    the worst lag, the busiest loop, the sums, and the ``findings`` once each."""
    lags = [r.lag_p99 for r in rows if r.lag_p99 is not None]
    busy = [r.busy for r in rows if r.busy is not None]
    tasks = [r.tasks for r in rows if r.tasks is not None]
    blocks = [r.blocks_per_min for r in rows if r.blocks_per_min is not None]
    return (
        ("▶ " if selected else "  ") + "all",
        f"{len(rows)} processes",
        "",
        duration(max(lags)) if lags else DASH,
        percent(max(busy)) if busy else DASH,
        str(sum(tasks)) if tasks else DASH,
        f"{sum(blocks):.0f}" if blocks else DASH,
        str(findings),
        "",
    )


def process_cells(row: ProcessRow, selected: bool) -> tuple[str, ...]:
    return (
        ("▶ " if selected else "  ") + str(row.pid),
        row.name,
        row.state,
        duration(row.lag_p99),
        percent(row.busy),
        DASH if row.tasks is None else str(row.tasks),
        DASH if row.blocks_per_min is None else f"{row.blocks_per_min:.0f}",
        str(row.findings),
        row.command,
    )


class ProcessesScreen(SubScreen):
    """Every process followed; ``enter`` on one shows it on the dashboard, on "all" every
    process together."""

    CSS_PATH = "processes.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "show_process", "Show on the dashboard", show=True),
    ]

    class ShowProcess(Message):
        """Asks for one process on the dashboard (and every screen)."""

        def __init__(self, pid: int) -> None:
            super().__init__()
            self.pid = pid

    def __init__(self, fleet: Processes, *, how: str = "", log_path: str | None = None) -> None:
        super().__init__(how=how, log_path=log_path)
        self.fleet = fleet

    def compose(self) -> ComposeResult:
        yield self.header()
        processes: DataTable[str] = DataTable(id="processes", cursor_type="row")
        processes.border_title = "Processes"
        yield processes
        shared: DataTable[str] = DataTable(id="shared", cursor_type="row")
        shared.border_title = "Findings in every process"
        yield shared
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#processes", DataTable).add_columns(*_PROCESS_COLUMNS)
        self.query_one("#shared", DataTable).add_columns(*_FINDING_COLUMNS)
        self.query_one("#processes", DataTable).focus()
        self.refill()

    def watch_view(self) -> None:
        if self.is_mounted and self.query("#processes"):
            self.refill()

    def refill(self) -> None:
        """Update the rows by key (a process, a finding), adding and removing as needed."""
        rows = self.fleet.processes()
        shared = self.fleet.findings()
        table: DataTable[str] = self.query_one("#processes", DataTable)
        selected = self.fleet.selected
        _update(
            table,
            {
                str(ALL): all_cells(rows, len(shared), selected == ALL),
                **{str(r.pid): process_cells(r, r.pid == selected) for r in rows},
            },
        )
        findings: DataTable[str] = self.query_one("#shared", DataTable)
        _update(
            findings,
            {
                f"{s.finding.code}:{s.finding.title}": (
                    s.finding.severity,
                    s.finding.code,
                    s.finding.title,
                    f"\u00d7{len(s.pids)}" if len(s.pids) > 1 else "1",  # "times N"
                    ", ".join(map(str, s.pids)),
                )
                for s in shared
            },
        )

    def action_show_process(self) -> None:
        table: DataTable[str] = self.query_one("#processes", DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key is not None:
            self.post_message(self.ShowProcess(int(key)))

    @on(DataTable.RowSelected, "#processes")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(self.ShowProcess(int(event.row_key.value)))


def _update(table: DataTable[str], rows: dict[str, tuple[str, ...]]) -> None:
    existing = {key.value for key in table.rows}
    for key in existing - rows.keys():
        if key is not None:
            table.remove_row(key)
    columns = list(table.columns)
    for key, cells in rows.items():
        if key in existing:
            for column, cell in zip(columns, cells, strict=False):
                table.update_cell(key, column, cell)
        else:
            table.add_row(*cells, key=key)
