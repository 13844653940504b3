"""One task in full: what it waits on, its await chain with arguments, where it was created;
or, once it ended, how."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from loopscope.events import TaskInfo
from loopscope.tui import _task_detail
from loopscope.tui._panels import cwd_of
from loopscope.tui._screen import SubScreen


class TaskDetailScreen(SubScreen):
    CSS_PATH = "task_detail.tcss"

    def __init__(self, task_id: int, *, how: str = "", log_path: str | None = None) -> None:
        super().__init__(how=how, log_path=log_path)
        self.task_id = task_id
        self._last_seen: TaskInfo | None = None
        self._shown: object = None

    def compose(self) -> ComposeResult:
        yield self.header()
        with VerticalScroll(id="task-box") as box:
            box.border_title = "Task"
            yield Static(id="task-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#task-box").focus()
        self._render_task()

    def watch_view(self) -> None:
        self._render_task()

    def _render_task(self) -> None:
        if self.view is None or not self.ready("#task-text"):
            return
        snapshot = self.view.snapshot
        task = _task_detail.find_task(snapshot.task_list, self.task_id)
        if isinstance(task, TaskInfo):
            self._last_seen = task
        # Updating the text costs a layout pass: only when what it says changed.
        shown = (task, self._last_seen, snapshot.t if task is not None else None)
        if shown == self._shown:
            return
        self._shown = shown
        text = _task_detail.task_detail(task, self._last_seen, cwd=cwd_of(snapshot), now=snapshot.t)
        box = self.query_one("#task-box", VerticalScroll)
        name = task.name if task is not None else self._last_seen.name if self._last_seen else ""
        box.border_title = f"Task {name}"
        self.put_text("#task-text", text)
