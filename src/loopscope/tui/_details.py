"""What the drill-down screens say (tasks, a task, blocks, await sites and resources), as pure
functions of snapshot parts: Rich renderables and table rows, no app."""

from __future__ import annotations

import linecache
import os
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from loopscope.codemap import APP, CodeMap
from loopscope.events import FinishedTask, Frame, TaskInfo
from loopscope.model.snapshot import AwaitSiteView, BlockRecord, ResourceView, TaskListView
from loopscope.tui._format import DASH, count, duration, location, percent
from loopscope.tui._panels import CAUSE_LABEL, Row

STATE_STYLE = {"waiting": "", "ready": "cyan", "running": "bold green"}
RESULT_STYLE = {"ok": "green", "exception": "bold red", "cancelled": "yellow"}
SOURCE_CONTEXT = 3  # lines shown above and below a blocking line

# ---------------------------------------------------------------------------------------------
# Tasks

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
                _waited(t),
                Text(location(t.file, t.line, cwd) if t.file else DASH),
            ),
        )
        for t in tasks
    ]


def _waited(task: TaskInfo) -> Text:
    if task.state != "waiting":
        return Text(DASH, style="dim", justify="right")
    if task.waited <= 0:
        # The agent ages a wait from when it first listed it: a new one has no age yet.
        return Text("new", style="dim", justify="right")
    return Text(duration(task.waited), justify="right")


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
        library = _is_library(frame.file)
        line = Text("  " * min(depth, 8) + ("└ " if depth else ""))
        line.append(frame.function, style="dim" if library else "bold")
        line.append(f"  {location(frame.file, frame.line, cwd)}", style="dim")
        args = Text(", ".join(frame.args), style="cyan") if frame.args else Text()
        grid.add_row(line, args)
    return grid


def _is_library(path: str) -> bool:
    # The code map without the target's paths recognises the usual layouts of an installed
    # Python: enough to dim the frames that are not the application's in a chain or a stack.
    return _CODE.kind(path) != APP


_CODE = CodeMap()


# ---------------------------------------------------------------------------------------------
# Blocks


def block_key(block: BlockRecord) -> str:
    return f"{block.loop}:{block.t!r}"


def block_rows(blocks: Sequence[BlockRecord], started: float | None, cwd: str) -> list[Row]:
    base = started if started is not None else 0.0
    return [
        (
            block_key(b),
            (
                Text(duration(max(0.0, b.t - base)), justify="right"),
                Text(duration(b.duration), justify="right", style=_duration_style(b.duration)),
                Text(CAUSE_LABEL.get(b.cause, b.cause)),
                Text(b.task or DASH, style="" if b.task else "dim"),
                Text(
                    f"{b.location.function} {location(b.location.file, b.location.line, cwd)}"
                    if b.location is not None
                    else "(no stack sampled)",
                    style="" if b.location is not None else "dim",
                ),
            ),
        )
        for b in blocks
    ]


def _duration_style(seconds: float) -> str:
    return "bold red" if seconds >= 0.1 else "yellow" if seconds >= 0.05 else ""


def block_detail(
    block: BlockRecord | None,
    *,
    started: float | None,
    cwd: str,
    source_line: Callable[[str, int], str] = linecache.getline,
) -> RenderableType:
    """A block in full: when, how long, why; its sampled stacks merged into a call tree with
    each branch's share of the samples; the source around the blocking line."""
    if block is None:
        return Text("No blocks yet. The loop has not stalled past the threshold.", style="dim")
    head = Text()
    head.append(duration(block.duration), style="bold " + _duration_style(block.duration))
    head.append(" blocked", style="bold")
    if started is not None:
        head.append(f" at {duration(max(0.0, block.t - started))} into the session", style="dim")
    head.append(" · cause ")
    head.append(CAUSE_LABEL.get(block.cause, block.cause), style="bold")
    if block.cpu is not None:
        head.append(f" (cpu {duration(block.cpu)})", style="dim")
    if block.task:
        head.append(f" · task {block.task}")
    parts: list[RenderableType] = [head]
    if block.location is not None:
        loc = block.location
        where = Text("in ", style="dim")
        where.append(loc.function, style="bold")
        where.append(f"  {location(loc.file, loc.line, cwd)}", style="dim")
        parts.append(where)
        parts.append(source_preview(loc.file, loc.line, source_line=source_line))
    parts.append(Text(f"\nSampled stacks ({count(block.samples)} samples)", style="bold underline"))
    parts.append(call_tree(block.stacks, cwd))
    return Group(*parts)


def call_tree(stacks: Sequence[tuple[int, tuple[Frame, ...]]], cwd: str) -> RenderableType:
    """Stacks (count, frames innermost first) merged from the outermost frame down, each node
    with its share of the samples; branches under 2% are left out."""
    total = sum(n for n, _ in stacks)
    if not total:
        return Text("no stack could be sampled (a C call holding the GIL?)", style="dim")
    root: dict[Frame, Any] = {}
    for n, frames in stacks:
        level = root
        for frame in reversed(frames):
            node = level.setdefault(frame, [0, {}])
            node[0] += n
            level = node[1]
    tree = Tree(Text(f"{count(total)} samples", style="dim"), guide_style="dim")

    def add(branch: Tree, level: dict[Frame, Any]) -> None:
        for frame, (n, below) in sorted(level.items(), key=lambda kv: -kv[1][0]):
            if n / total < 0.02:
                continue
            label = Text(f"{percent(n / total):>4} ", style="bold")
            library = _is_library(frame.file)
            label.append(frame.function, style="dim" if library else "")
            label.append(f"  {location(frame.file, frame.line, cwd)}", style="dim")
            add(branch.add(label), below)

    add(tree, root)
    return tree


def source_preview(
    file: str,
    line: int,
    *,
    context: int = SOURCE_CONTEXT,
    source_line: Callable[[str, int], str] = linecache.getline,
) -> RenderableType:
    """The lines around ``line`` of ``file``, highlighted, the line itself marked."""
    first = max(1, line - context)
    lines = [source_line(file, n) for n in range(first, line + context + 1)]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or not lines[min(line - first, len(lines) - 1)].strip():
        return Text(f"(source of {os.path.basename(file)} not readable here)", style="dim")
    code = "".join(text if text.endswith("\n") else text + "\n" for text in lines)
    return Syntax(
        code,
        "python",
        line_numbers=True,
        start_line=first,
        highlight_lines={line},
        theme="ansi_dark",
        background_color="default",
        word_wrap=False,
    )


# ---------------------------------------------------------------------------------------------
# Await sites and resources


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
        grid.add_row(task.name, task.coro, _waited(task))
    return grid
