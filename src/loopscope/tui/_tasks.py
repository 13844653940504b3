"""What the tasks screen shows (the task list, ended tasks, the summary line), as pure functions
of the snapshot's task list: Rich renderables and table rows, no app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text

from loopscope.events import FinishedTask, TaskInfo
from loopscope.model.snapshot import TaskListView
from loopscope.tui._details import (
    RESULT_STYLE,
    STATE_STYLE,
    waited,
)
from loopscope.tui._format import DASH, count, duration, location
from loopscope.tui._panels import Row

# Column key -> how tasks sort by it.
_SORT_KEYS: dict[str, Callable[[TaskInfo], Any]] = {
    "name": lambda t: t.name,
    "coro": lambda t: t.coro,
    "state": lambda t: t.state,
    "kind": lambda t: t.kind,
    "waited": lambda t: t.waited,
    "site": lambda t: (t.file, t.line),
}
SORT_LABELS = {
    "name": "name",
    "coro": "coroutine",
    "state": "state",
    "kind": "what it waits on",
    "waited": "time waited",
    "site": "await site",
}


def filter_tasks(tasks: Sequence[TaskInfo], text: str) -> list[TaskInfo]:
    """The tasks whose name, coroutine or await site (file:line function) contain ``text``,
    ignoring case."""
    needle = text.strip().lower()
    if not needle:
        return list(tasks)
    return [
        t
        for t in tasks
        if needle in t.name.lower()
        or needle in t.coro.lower()
        or needle in f"{t.file}:{t.line} {t.function}".lower()
    ]


def sort_tasks(tasks: Sequence[TaskInfo], key: str, *, descending: bool) -> list[TaskInfo]:
    # Ties keep the agent's order (longest waits first): sorted() is stable.
    return sorted(tasks, key=_SORT_KEYS[key], reverse=descending)


def task_rows(tasks: Sequence[TaskInfo], cwd: str) -> list[Row]:
    return [
        (
            str(t.id),
            (
                Text(t.name),
                Text(t.coro),
                Text(t.state, style=STATE_STYLE.get(t.state, "")),
                Text(t.kind or DASH, style="" if t.kind else "dim"),
                waited(t),
                Text(location(t.file, t.line, cwd) if t.file else DASH),
            ),
        )
        for t in tasks
    ]


def finished_rows(finished: Sequence[FinishedTask], now: float) -> list[Row]:
    return [
        (
            f"{f.id}:{f.ended}",
            (
                Text(f.name),
                Text(f.coro),
                Text(f.result, style=RESULT_STYLE.get(f.result, "")),
                Text(duration(f.lived), justify="right"),
                Text(f"{duration(max(0.0, now - f.ended))}", justify="right", style="dim"),
                Text(f.error or DASH, style="red" if f.error else "dim"),
            ),
        )
        for f in finished
    ]


def tasks_list_summary(
    view: TaskListView | None, *, shown: int, filter: str, sort: str, descending: bool
) -> Text:
    """One line over the task table: how many of how many tasks it shows, and how."""
    if view is None or view.t is None:
        return Text(
            "no task list yet: the agent sends one every 2 s (its tasks collector may be off)",
            style="dim",
        )
    out = Text()
    out.append(f"showing {count(shown)}", style="bold")
    out.append(f" of {count(view.total)} live tasks", style="")
    listed = len(view.tasks)
    if listed < view.total:
        how = "from a sample" if view.sampled else "all seen"
        out.append(f" · the {count(listed)} longest waits ({how})", style="dim")
    if filter.strip():
        out.append(" · filter ", style="dim")
        out.append(f"“{filter.strip()}”", style="bold yellow")
    order = "▼" if descending else "▲"
    out.append(f" · by {SORT_LABELS.get(sort, sort)} {order}", style="dim")
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out
