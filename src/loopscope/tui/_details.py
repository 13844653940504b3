"""What several drill-down screens show alike (styles, a task's wait, a source preview), as
pure functions: Rich renderables, no app."""

from __future__ import annotations

import linecache
import os
from collections.abc import Callable

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text

from loopscope.events import TaskInfo
from loopscope.tui._format import DASH, duration

STATE_STYLE = {"waiting": "", "ready": "cyan", "running": "bold green"}
RESULT_STYLE = {"ok": "green", "exception": "bold red", "cancelled": "yellow"}
SOURCE_CONTEXT = 3  # lines shown above and below a blocking line


def waited(task: TaskInfo) -> Text:
    if task.state != "waiting":
        return Text(DASH, style="dim", justify="right")
    if task.waited <= 0:
        # The agent ages a wait from when it first listed it: a new one has no age yet.
        return Text("new", style="dim", justify="right")
    return Text(duration(task.waited), justify="right")


def is_library(path: str) -> bool:
    # Enough to dim asyncio's own frames in a chain; the model's CodeMap decides for findings.
    return f"{os.sep}asyncio{os.sep}" in path or "site-packages" in path


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
