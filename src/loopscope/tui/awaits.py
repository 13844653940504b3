"""Where tasks wait: the await sites (how many tasks, how long) and the resources (each Lock,
Queue... with its waiters), and the highlighted site in full with the listed tasks there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from rich.console import RenderableType
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from loopscope.model.location import Location
from loopscope.model.snapshot import AwaitSiteView, ResourceView
from loopscope.session import View
from loopscope.tui import _awaits
from loopscope.tui._drill import DrillScreen
from loopscope.tui._panels import Row, cwd_of
from loopscope.tui.widgets import MAX_ROWS, AwaitTable, Column, SnapshotTable


class ResourceTable(SnapshotTable):
    """Locks, queues, semaphores... that tasks wait on, most waiters first."""

    BORDER_TITLE = "Resources"
    COLUMNS = (
        Column("type", "type", 10),
        Column("label", "state", 35, keep="start"),
        Column("waiters", "waiters", 7, right=True),
        Column("oldest", "oldest", 7, right=True),
    )

    def rows_of(self, view: View) -> list[Row]:
        return _awaits.resource_rows(view.snapshot.resources[:MAX_ROWS])


class AwaitsScreen(DrillScreen):
    CSS_PATH = "awaits.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f", "flame", "Flame")]
    TABLE = AwaitTable
    FLAME = "awaits"

    def compose(self) -> ComposeResult:
        yield self.header()
        with Horizontal(id="awaits-body"):
            with Vertical(id="awaits-tables"):
                yield AwaitTable(id="sites").data_bind(AwaitsScreen.view)
                yield ResourceTable(id="resources").data_bind(AwaitsScreen.view)
            with VerticalScroll(id="site-box") as box:
                box.border_title = "Await site"
                yield Static(id="site-text")
        yield Footer()

    def _row_keys(self, view: View) -> Iterator[tuple[str, ...]]:
        for site in view.snapshot.await_sites[:MAX_ROWS]:
            yield (Location.of(site).key,)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._detail()

    def on_descendant_focus(self) -> None:
        # The detail is of the table in focus: an await site, or a resource.
        self._detail()

    def _resource(self) -> ResourceView | None:
        key = self.query_one(ResourceTable)._cursor_key()
        if self.view is None or key is None:
            return None
        return next((r for r in self.view.snapshot.resources if str(r.id) == key.value), None)

    def _site(self) -> AwaitSiteView | None:
        if self.view is None:
            return None
        table = self.query_one(AwaitTable)
        key = table._cursor_key()
        for site in self.view.snapshot.await_sites[:MAX_ROWS]:
            if key is not None and key.value == f"{Location.of(site).key}:{site.kind}":
                return site
        return None

    def _detail(self) -> None:
        if self.view is None or not self.ready("#site-text"):
            return
        snapshot = self.view.snapshot
        listed = snapshot.task_list.tasks
        showing_resource = self.query_one(ResourceTable).has_focus
        resource = self._resource() if showing_resource else None
        site = self._site() if resource is None else None
        shown: tuple[object, ...] = (
            (resource, listed)
            if resource is not None
            else (site, tuple(_awaits.tasks_at(site, listed)), cwd_of(snapshot))
        )
        if shown == self._shown:
            return
        self._shown = shown
        box = self.query_one("#site-box")
        text: RenderableType
        if resource is not None:
            box.border_title = "Resource"
            text = _awaits.resource_detail(resource, listed)
        else:
            box.border_title = "Await site"
            text = _awaits.site_detail(site, listed, cwd=cwd_of(snapshot))
        self.put_text("#site-text", text)
