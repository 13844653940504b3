"""What the blocks screen shows (each block, its stacks as a call tree), as pure functions of
the snapshot's blocks: Rich renderables and table rows, no app."""

from __future__ import annotations

import linecache
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from loopscope.events import Frame
from loopscope.model.snapshot import BlockRecord
from loopscope.tui._details import (
    is_library,
    source_preview,
)
from loopscope.tui._format import DASH, count, duration, location, percent
from loopscope.tui._panels import CAUSE_LABEL, Row


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
            library = is_library(frame.file)
            label.append(frame.function, style="dim" if library else "")
            label.append(f"  {location(frame.file, frame.line, cwd)}", style="dim")
            add(branch.add(label), below)

    add(tree, root)
    return tree
