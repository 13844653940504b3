"""What the task detail screen shows (a task, its await chain, where it was created), as pure
functions of the snapshot's task list: Rich renderables, no app."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from loopscope.events import FinishedTask, Frame, TaskInfo
from loopscope.model.snapshot import TaskListView
from loopscope.tui._details import (
    RESULT_STYLE,
    STATE_STYLE,
    is_library,
)
from loopscope.tui._format import DASH, duration, location


def find_task(view: TaskListView, task_id: int) -> TaskInfo | FinishedTask | None:
    """The task ``task_id`` as listed now, or as it ended, or None."""
    for task in view.tasks:
        if task.id == task_id:
            return task
    for ended in view.finished:
        if ended.id == task_id:
            return ended
    return None


def task_detail(
    task: TaskInfo | FinishedTask | None,
    last_seen: TaskInfo | None,
    *,
    cwd: str,
    now: float,
) -> RenderableType:
    """A task in full: what it waits on and where, its await chain with arguments, where it
    was created; or how it ended. ``last_seen``: how it was last listed, if it no longer is."""
    if task is None and last_seen is None:
        return Text("This task is not in the agent's latest list.", style="dim")
    parts: list[RenderableType] = []
    if isinstance(task, FinishedTask):
        head = Text()
        head.append(task.name, style="bold")
        head.append(f"  {task.coro}\n")
        head.append("ended ", style="dim")
        head.append(task.result, style=RESULT_STYLE.get(task.result, ""))
        if task.error:
            head.append(f": {task.error}", style="red")
        head.append(f"  {duration(max(0.0, now - task.ended))} ago", style="dim")
        head.append(f" · lived at least {duration(task.lived)}", style="dim")
        parts.append(head)
    info = task if isinstance(task, TaskInfo) else last_seen
    if info is None:
        return Group(*parts)
    if task is None:
        parts.append(
            Text(
                "No longer in the agent's list (it keeps only the longest waits); "
                "as it was last seen:",
                style="yellow",
            )
        )
    elif isinstance(task, FinishedTask):
        parts.append(Text("\nAs it was last seen:", style="dim"))
    parts.append(_task_facts(info, cwd))
    parts.append(Text("\nAwait chain", style="bold underline"))
    parts.append(_chain(info, cwd))
    return Group(*parts)


def _task_facts(task: TaskInfo, cwd: str) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("task", Text(task.name, style="bold"))
    grid.add_row("coroutine", task.coro)
    grid.add_row("state", Text(task.state, style=STATE_STYLE.get(task.state, "")))
    if task.state == "waiting":
        grid.add_row("waits on", task.kind or DASH)
        waited = duration(task.waited) if task.waited > 0 else "new (first seen at this list)"
        grid.add_row("waited", waited)
    if task.file:
        grid.add_row("at", f"{location(task.file, task.line, cwd)} in {task.function}")
    created = task.created
    grid.add_row(
        "created at",
        _frame_text(created, cwd)
        if created is not None
        else Text("unknown (asyncio records it in debug mode)", style="dim"),
    )
    grid.add_row("id", Text(f"0x{task.id:x}", style="dim"))
    return grid


def _frame_text(frame: Frame, cwd: str) -> Text:
    return Text(f"{location(frame.file, frame.line, cwd)} in {frame.function}")


def _chain(task: TaskInfo, cwd: str) -> RenderableType:
    if not task.chain:
        if task.state != "waiting":
            return Text("none: the task is not waiting", style="dim")
        return Text(
            "not sent for this task: the agent sends the chain of the longest waits only",
            style="dim",
        )
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    # The task's own coroutine first, down to the primitive.
    frames = list(reversed(task.chain))
    for depth, frame in enumerate(frames):
        library = is_library(frame.file)
        line = Text("  " * min(depth, 8) + ("└ " if depth else ""))
        line.append(frame.function, style="dim" if library else "bold")
        line.append(f"  {location(frame.file, frame.line, cwd)}", style="dim")
        args = Text(", ".join(frame.args), style="cyan") if frame.args else Text()
        grid.add_row(line, args)
    return grid
