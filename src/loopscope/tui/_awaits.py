"""What the awaits screen shows (await sites, resources, the tasks waiting there), as pure
functions of snapshot parts: Rich renderables and table rows, no app."""

from __future__ import annotations

import linecache
from collections.abc import Callable, Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from loopscope.events import TaskInfo
from loopscope.model.snapshot import AwaitSiteView, ResourceView
from loopscope.tui._details import (
    source_preview,
    waited,
)
from loopscope.tui._format import count, duration, location
from loopscope.tui._panels import Row


def resource_rows(resources: Sequence[ResourceView]) -> list[Row]:
    return [
        (
            str(r.id),
            (
                Text(r.type),
                Text(r.label),
                Text(count(r.waiters), justify="right"),
                Text(duration(r.oldest) if r.oldest > 0 else "new", justify="right"),
            ),
        )
        for r in resources
    ]


def tasks_at(site: AwaitSiteView | None, tasks: Sequence[TaskInfo]) -> list[TaskInfo]:
    """The listed tasks waiting at ``site``."""
    if site is None:
        return []
    return [t for t in tasks if t.file == site.file and t.line == site.line and t.kind == site.kind]


def site_detail(
    site: AwaitSiteView | None,
    tasks: Sequence[TaskInfo],
    *,
    cwd: str,
    source_line: Callable[[str, int], str] = linecache.getline,
) -> RenderableType:
    """An await site: where, how many wait there, the code, and the listed tasks waiting."""
    if site is None:
        return Text("No task is waiting anywhere yet.", style="dim")
    head = Text()
    head.append(f"{count(site.count)} tasks", style="bold")
    head.append(f" wait on {site.kind} in ")
    head.append(site.function, style="bold")
    head.append(f"  {location(site.file, site.line, cwd)}", style="dim")
    if site.oldest > 0:
        head.append(f" · the oldest for {duration(site.oldest)}")
    if site.route:
        head.append(" · serving ")
        head.append(site.route, style="bold")
    parts: list[RenderableType] = [
        head,
        source_preview(site.file, site.line, source_line=source_line),
    ]
    waiting = tasks_at(site, tasks)
    if waiting:
        parts.append(Text(f"\nListed tasks waiting here ({len(waiting)})", style="bold underline"))
        parts.append(_task_grid(waiting))
    return Group(*parts)


def resource_detail(resource: ResourceView, tasks: Sequence[TaskInfo]) -> RenderableType:
    """A Lock, Queue... in full: its state, how many wait, and the listed tasks waiting on it."""
    head = Text()
    head.append(f"{resource.type}", style="bold")
    head.append(f"  {resource.label}\n", style="dim")
    head.append(f"{count(resource.waiters)} waiters", style="bold")
    if resource.oldest > 0:
        head.append(f" · the oldest for {duration(resource.oldest)}")
    head.append(f"  (id 0x{resource.id:x})", style="dim")
    parts: list[RenderableType] = [head]
    waiting = [t for t in tasks if t.resource == resource.id]
    if waiting:
        parts.append(Text(f"\nListed tasks waiting on it ({len(waiting)})", style="bold underline"))
        parts.append(_task_grid(waiting))
    else:
        parts.append(Text("\nNone of the listed tasks waits on it.", style="dim"))
    return Group(*parts)


def _task_grid(tasks: Sequence[TaskInfo]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    for task in tasks[:20]:
        grid.add_row(task.name, task.coro, waited(task))
    return grid
