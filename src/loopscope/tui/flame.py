"""The flame screens: the blocking stacks (from the blocks screen, key ``f``) and where tasks
wait (from the awaits screen, key ``f``) as icicle graphs. Arrows move, enter zooms into the
selected frame, escape zooms out and then goes back."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer, Static

from loopscope.model.flame import FlameNode, await_tree, block_tree
from loopscope.session import View
from loopscope.tui._flame import (
    Icicle,
    Measure,
    by_count,
    by_weight,
    find,
    key_of,
    keys_of,
    layout,
    move,
)
from loopscope.tui._format import duration, short_path
from loopscope.tui._panels import cwd_of
from loopscope.tui._screen import SubScreen

Keys = tuple[tuple[str, str, str], ...]


class FlameView(Widget, can_focus=True):
    """An icicle graph with a selection and a zoom, both kept as keys from the root, so that they
    hold while newer data rebuilds the tree."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move('up')", "Up", show=False),
        Binding("down,j", "move('down')", "Down", show=False),
        Binding("left,h", "move('left')", "Left", show=False),
        Binding("right,l", "move('right')", "Right", show=False),
        Binding("enter", "zoom", "Zoom"),
    ]

    class Changed(Message):
        """The selection, the zoom or the tree changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.flame_root: FlameNode | None = None
        self.measure: Measure = by_weight
        self.zoom: Keys = ()
        self.selected: Keys = ()

    def set_tree(self, tree: FlameNode, measure: Measure) -> None:
        self.flame_root, self.measure = tree, measure
        self.refresh()
        self.post_message(self.Changed())

    def shown_root(self) -> FlameNode | None:
        """The node the graph is zoomed into (as far down ``zoom`` as the tree still goes)."""
        node = self.flame_root
        if node is None:
            return None
        for key in self.zoom:
            child = node.children.get(key)
            if child is None or self.measure(child) <= 0:
                break
            node = child
        return node

    def _relative(self) -> Keys:
        if self.selected[: len(self.zoom)] != self.zoom:
            return ()
        return self.selected[len(self.zoom) :]

    def selected_node(self) -> FlameNode | None:
        root = self.shown_root()
        if root is None:
            return None
        rows = layout(root, max(1, self.size.width), max(1, self.size.height), self.measure)
        cell = find(rows, self._relative())
        return cell.node if cell is not None else root

    def render(self) -> Icicle | Text:
        root = self.shown_root()
        if root is None or self.measure(root) <= 0:
            return Text("Nothing to show yet.", style="dim")
        return Icicle(root, selected=self._relative(), measure=self.measure, depth=self.size.height)

    def action_move(self, direction: str) -> None:
        root = self.shown_root()
        if root is None:
            return
        rows = layout(root, self.size.width, self.size.height, self.measure)
        at = find(rows, self._relative())
        if at is None:
            return
        self.selected = self._zoom_keys(root) + keys_of(move(rows, at, direction).path)
        self.refresh()
        self.post_message(self.Changed())

    def _zoom_keys(self, root: FlameNode) -> Keys:
        """The keys of the shown root (``zoom``, less what the tree no longer has)."""
        out: list[tuple[str, str, str]] = []
        node = self.flame_root
        for key in self.zoom:
            if node is None or node is root:
                break
            node = node.children.get(key)
            out.append(key)
        return tuple(out)

    def action_zoom(self) -> None:
        node = self.selected_node()
        root = self.shown_root()
        if node is None or root is None or node is root:
            return
        self.zoom = self._zoom_keys(root) + self._relative()[: self._depth_of(node)]
        self.refresh()
        self.post_message(self.Changed())

    def _depth_of(self, node: FlameNode) -> int:
        root = self.shown_root()
        rows = layout(root, self.size.width, self.size.height, self.measure) if root else []
        cell = find(rows, self._relative())
        return len(cell.path) - 1 if cell is not None and cell.node is node else 0

    def zoom_out(self) -> bool:
        """One level out; False when the graph shows the whole tree already."""
        if not self.zoom:
            return False
        self.zoom = self.zoom[:-1]
        self.refresh()
        self.post_message(self.Changed())
        return True


class FlameScreen(SubScreen):
    """``kind`` "blocks": the blocks' stacks by time blocked; "awaits": the listed tasks' await
    chains, by tasks (``w``: by time waited)."""

    CSS_PATH = "flame.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back / zoom out"),
        Binding("w", "weight", "Weight"),
    ]

    def __init__(self, kind: str, *, how: str = "", log_path: str | None = None) -> None:
        super().__init__(how=how, log_path=log_path)
        self.kind = kind
        self.by_tasks = True  # awaits: width by tasks, else by time waited

    def compose(self) -> ComposeResult:
        yield self.header()
        flame = FlameView(id="flame")
        flame.border_title = self._title()
        yield flame
        yield Static(id="flame-detail")
        yield Footer()

    def _title(self) -> str:
        if self.kind == "blocks":
            return "Blocking stacks (the listed blocks, by time blocked)"
        return (
            f"Where tasks wait (the listed tasks, by {'tasks' if self.by_tasks else 'time waited'})"
        )

    def on_mount(self) -> None:
        self.query_one(FlameView).focus()

    def watch_view(self) -> None:
        view = self.view
        if view is None or not self.ready("#flame"):
            return
        self.query_one(FlameView).set_tree(*self._tree(view))

    def _tree(self, view: View) -> tuple[FlameNode, Measure]:
        snapshot = view.snapshot
        if self.kind == "blocks":
            return block_tree(snapshot.blocks.recent).root, by_weight
        return await_tree(snapshot.task_list).root, by_count if self.by_tasks else by_weight

    def on_flame_view_changed(self) -> None:
        flame = self.query_one(FlameView)
        node = flame.selected_node()
        root = flame.flame_root
        cwd = cwd_of(self.view.snapshot) if self.view is not None else ""
        self.put_text("#flame-detail", _describe(node, root, self.kind, cwd, bool(flame.zoom)))

    def action_back(self) -> None:
        if not self.query_one(FlameView).zoom_out():
            self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``w`` only where there are two weights to choose from (the awaits)."""
        return action != "weight" or self.kind == "awaits"

    def action_weight(self) -> None:
        if self.kind != "awaits":
            return
        self.by_tasks = not self.by_tasks
        flame = self.query_one(FlameView)
        flame.border_title = self._title()
        if self.view is not None:
            flame.set_tree(*self._tree(self.view))


def _describe(
    node: FlameNode | None, root: FlameNode | None, kind: str, cwd: str, zoomed: bool
) -> Text:
    """Two lines on the selected node: what and where; its weight and share."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if node is None or root is None:
        return text
    text.append(node.label, style="bold")
    if node.kind == "app" and node.file:
        text.append(f"  {short_path(node.file, cwd)}:{node.line}", style="dim")
    elif node.kind == "folded":
        text.append("  library and standard library frames, folded", style="dim")
    text.append("\n")
    if kind == "blocks":
        share = node.weight / root.weight * 100 if root.weight else 0.0
        text.append(f"{duration(node.weight)} blocked ({share:.0f}%), {node.count:.0f} samples")
    else:
        share = node.count / root.count * 100 if root.count else 0.0
        text.append(f"{node.count:.0f} tasks ({share:.0f}%), {duration(node.weight)} waited")
    if zoomed:
        text.append("   (zoomed in: escape zooms out)", style="dim")
    return text


__all__ = ["FlameScreen", "FlameView", "key_of"]
