"""Flame trees: stacks merged into one tree, weighted (by seconds, or by tasks), with the frames
that are not the application's folded into one node per run.

Pure: the HTML report draws the blocking stacks of a recording with it, and the TUI the blocks
and the await chains of a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from loopscope.codemap import CodeMap
from loopscope.events import Frame
from loopscope.model.snapshot import BlockRecord, TaskListView

MAX_NODES = 5_000  # a tree stops growing new nodes beyond this; weights still add up


@dataclass
class FlameNode:
    """One frame (or a folded run of frames) of the merged stacks. ``weight`` includes the
    children's; ``own`` is what ends here (the innermost frames)."""

    label: str
    # "root", "app", "folded" (library or stdlib frames), "marker" (no frame: what a task waits
    # on, a block without samples)
    kind: str
    file: str = ""
    line: int = 0
    weight: float = 0.0
    own: float = 0.0
    count: float = 0.0  # a second weight: tasks, samples... (0 when unused)
    children: dict[tuple[str, str, str], FlameNode] = field(default_factory=dict)

    def sorted_children(self) -> list[FlameNode]:
        """The children, heaviest first."""
        return sorted(self.children.values(), key=lambda n: (-n.weight, n.label))

    @property
    def depth(self) -> int:
        """Levels below this node."""
        return 1 + max((c.depth for c in self.children.values()), default=0)


class FlameTree:
    """Stacks added one by one into a tree rooted at ``root``."""

    def __init__(self, code: CodeMap | None = None, root: str = "all") -> None:
        """``code`` tells the application's frames from the others (without one, the usual
        layouts of an installed Python are recognised)."""
        self.code = code or _GUESS
        self.root = FlameNode(root, "root")
        self._nodes = 1

    def add(self, weight: float, frames: Sequence[Frame], count: float = 0.0) -> None:
        """One stack, innermost frame first, standing for ``weight`` (and ``count``)."""
        node = self.root
        node.weight += weight
        node.count += count
        for label, kind, frame in fold(frames, self.code):
            key = (kind, label, "" if kind == "folded" else frame.file)
            child = node.children.get(key)
            if child is None:
                if self._nodes >= MAX_NODES:
                    break
                child = FlameNode(label, kind, frame.file, frame.line)
                node.children[key] = child
                self._nodes += 1
            child.weight += weight
            child.count += count
            node = child
        node.own += weight


def fold(frames: Sequence[Frame], code: CodeMap) -> list[tuple[str, str, Frame]]:
    """(label, kind, frame) outermost first: each application frame by its function; each run of
    other frames (stdlib, installed packages, loopscope) as one "folded" entry naming the modules
    in it, e.g. "asyncio, aiohttp"."""
    out: list[tuple[str, str, Frame]] = []
    run: list[Frame] = []

    def flush() -> None:
        if not run:
            return
        modules: list[str] = []
        for f in run:
            name = _module(f.file, code)
            if name not in modules:
                modules.append(name)
        label = ", ".join(modules[:3]) + (", ..." if len(modules) > 3 else "")
        out.append((label, "folded", run[0]))
        run.clear()

    for frame in reversed(frames):
        if frame.file == "" and frame.function.startswith("<"):
            flush()
            out.append((frame.function, "marker", frame))
        elif code.kind(frame.file) == "app":
            flush()
            out.append((frame.function, "app", frame))
        else:
            run.append(frame)
    flush()
    return out


def _module(file: str, code: CodeMap) -> str:
    path = file.replace("\\", "/")
    module = code.module(path)
    if module:
        return module
    if "/loopscope/" in path:
        return "loopscope"
    parts = [p for p in path.split("/") if p]
    name = parts[-1] if parts else path
    return name[:-3] if name.endswith(".py") else name


_GUESS = CodeMap()
_UNSAMPLED = Frame("", 0, "<no stack sampled: C code holding the GIL?>")


def block_tree(blocks: Iterable[BlockRecord], code: CodeMap | None = None) -> FlameTree:
    """The blocks' stacks, weighted by seconds blocked (each stack its share of its block's
    samples) and counted in samples."""
    tree = FlameTree(code, root="all blocks")
    for block in blocks:
        add_block(tree, block.duration, [(n, frames) for n, frames in block.stacks])
    return tree


def add_block(
    tree: FlameTree,
    duration: float,
    stacks: Sequence[tuple[float, Sequence[Frame]]],
    seconds: Sequence[float] | None = None,
) -> None:
    """One block of ``duration``: ``stacks`` as (samples, frames); ``seconds`` the time each
    stack stood for where the agent measured it (else each its share of the samples)."""
    total = sum(n for n, _ in stacks)
    if total <= 0:
        tree.add(duration, [_UNSAMPLED])
        return
    measured = seconds is not None and sum(seconds) > 0
    for i, (n, frames) in enumerate(stacks):
        weight = seconds[i] if measured and seconds is not None else duration * n / total
        tree.add(weight, frames, count=n)


def await_tree(tasks: TaskListView, code: CodeMap | None = None) -> FlameTree:
    """Where the listed tasks wait: their await chains merged, outermost coroutine first, ending
    in what they wait on; weighted by seconds waited, counted in tasks."""
    tree = FlameTree(code, root="all listed tasks")
    for task in tasks.tasks:
        if task.state != "waiting":
            continue
        if task.chain:
            frames = [Frame(a.file, a.line, a.function) for a in task.chain]
        else:
            frames = [Frame(task.file, task.line, task.function)]
        leaf = Frame("", 0, f"<{task.kind or 'waiting'}>")
        tree.add(task.waited, [leaf, *frames], count=1)
    return tree
