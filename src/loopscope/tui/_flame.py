"""An icicle graph of a flame tree, in terminal cells: pure layout, navigation and rendering.

The root is on the top row; each row below holds the children of the row above, each as wide as
its share of the weight. Application frames are orange, folded library and stdlib frames grey,
markers (what a task waits on, a block with no stack) red; the selected node is reversed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from loopscope.model.flame import FlameNode

Path = tuple[FlameNode, ...]  # from the zoomed root down to a node
Measure = Callable[[FlameNode], float]

_STYLES = {
    "root": Style(color="black", bgcolor="grey62"),
    "app": Style(color="black", bgcolor="dark_orange"),
    "folded": Style(color="black", bgcolor="grey42"),
    "marker": Style(color="white", bgcolor="red3"),
}
_SELECTED = Style(reverse=True, bold=True)


def by_weight(node: FlameNode) -> float:
    return node.weight


def by_count(node: FlameNode) -> float:
    return node.count


@dataclass(frozen=True, slots=True)
class Cell:
    """A node laid out on a row: columns [x0, x1)."""

    path: Path
    x0: int
    x1: int

    @property
    def node(self) -> FlameNode:
        return self.path[-1]


def layout(
    root: FlameNode, width: int, depth: int, measure: Measure = by_weight
) -> list[list[Cell]]:
    """The rows of the icicle under ``root``: at most ``depth`` rows, nodes narrower than one
    cell left out (with everything under them)."""
    rows: list[list[Cell]] = []
    total = measure(root)
    if width <= 0 or depth <= 0 or total <= 0:
        return rows
    level = [Cell((root,), 0, width)]
    while level and len(rows) < depth:
        rows.append(level)
        below: list[Cell] = []
        for cell in level:
            node = cell.node
            span = measure(node)
            if span <= 0:
                continue
            seen = 0.0
            for child in _children(node, measure):
                x0 = cell.x0 + round(seen / span * (cell.x1 - cell.x0))
                seen += measure(child)
                x1 = cell.x0 + round(seen / span * (cell.x1 - cell.x0))
                if x1 > x0:
                    below.append(Cell((*cell.path, child), x0, x1))
        level = below
    return rows


def _children(node: FlameNode, measure: Measure) -> list[FlameNode]:
    return sorted(
        (c for c in node.children.values() if measure(c) > 0),
        key=lambda c: (-measure(c), c.label),
    )


def find(rows: Sequence[Sequence[Cell]], keys: Sequence[tuple[str, str, str]]) -> Cell | None:
    """The cell whose path from the root has ``keys`` (see `key`), or the deepest one found on
    the way: a selection survives a tree rebuilt from newer data."""
    best: Cell | None = rows[0][0] if rows else None
    for depth, key in enumerate(keys, start=1):
        if depth >= len(rows):
            break
        match = (
            next(
                (c for c in rows[depth] if key_of(c.node) == key and c.path[:-1] == best.path),
                None,
            )
            if best is not None
            else None
        )
        if match is None:
            break
        best = match
    return best


def key_of(node: FlameNode) -> tuple[str, str, str]:
    """A node's identity among its siblings, stable across rebuilds."""
    return (node.kind, node.label, "" if node.kind == "folded" else node.file)


def keys_of(path: Path) -> tuple[tuple[str, str, str], ...]:
    """The keys below the root of ``path``."""
    return tuple(key_of(n) for n in path[1:])


def move(rows: Sequence[Sequence[Cell]], at: Cell, direction: str) -> Cell:
    """The cell a key moves the selection to: "up" the parent, "down" the widest child, "left"
    and "right" the neighbours on the same row."""
    depth = len(at.path) - 1
    if direction == "up":
        if depth == 0:
            return at
        return next(c for c in rows[depth - 1] if c.path == at.path[:-1])
    if direction == "down":
        if depth + 1 >= len(rows):
            return at
        children = [c for c in rows[depth + 1] if c.path[:-1] == at.path]
        return max(children, key=lambda c: c.x1 - c.x0) if children else at
    row = list(rows[depth])
    i = next(i for i, c in enumerate(row) if c.path == at.path)
    j = i - 1 if direction == "left" else i + 1
    return row[j] if 0 <= j < len(row) else at


class Icicle:
    """A rich renderable: the laid-out rows, one line each, the selected cell reversed."""

    def __init__(
        self,
        root: FlameNode,
        *,
        selected: Sequence[tuple[str, str, str]] = (),
        measure: Measure = by_weight,
        depth: int = 40,
    ) -> None:
        self.root = root
        self.selected = tuple(selected)
        self.measure = measure
        self.depth = depth

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height if options.height is not None else self.depth
        rows = layout(self.root, width, min(self.depth, height), self.measure)
        chosen = find(rows, self.selected)
        for row in rows:
            yield render_row(row, width, chosen)


def render_row(row: Sequence[Cell], width: int, selected: Cell | None) -> Text:
    line = Text(no_wrap=True, overflow="crop", end="\n")
    x = 0
    for cell in row:
        if cell.x0 > x:
            line.append(" " * (cell.x0 - x))
        span = cell.x1 - cell.x0
        node = cell.node
        label = node.label if span > 1 else ""
        if len(label) > span - 1:
            label = label[: max(0, span - 2)] + "…" if span > 2 else label[: span - 1]
        style = _STYLES.get(node.kind, _STYLES["folded"])
        if selected is not None and cell.path == selected.path:
            style = style + _SELECTED
        if span > 1:  # a one-column gap on the right keeps neighbours apart
            line.append(label.ljust(span - 1), style=style)
            line.append(" ")
        else:
            line.append(" ", style=style)
        x = cell.x1
    if x < width:
        line.append(" " * (width - x))
    return line
