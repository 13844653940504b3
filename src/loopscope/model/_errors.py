"""Task exceptions never retrieved, and coroutines never awaited, over the session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from loopscope.codemap import CodeMap
from loopscope.events import Frame, NeverAwaited, TaskErrors
from loopscope.model.snapshot import NeverAwaitedView, TaskErrorView

MAX_TRACKED = 200  # distinct errors, distinct never-awaited places; the rarest go first
MAX_VIEWS = 50


class ErrorState:
    def __init__(self) -> None:
        self.code = CodeMap()
        self._errors: dict[tuple[str, str, Frame | None], TaskErrorView] = {}
        self._unawaited: dict[tuple[str, Frame | None], NeverAwaitedView] = {}
        self.dropped_errors = 0
        self.dropped_unawaited = 0

    def task_errors(self, event: TaskErrors) -> None:
        self.dropped_errors += event.dropped
        for e in event.errors:
            location = self.code.locate(e.stack)
            key = (e.coroutine, e.error, location)
            seen = self._errors.get(key)
            self._errors[key] = TaskErrorView(
                coroutine=e.coroutine,
                error=e.error,
                message=e.message,
                count=e.count + (seen.count if seen else 0),
                location=location,
                stack=e.stack,
                created=_app_frame(self.code, e.created),
                first_t=seen.first_t if seen else event.t,
                last_t=event.t,
            )
        _bound(self._errors)

    def never_awaited(self, event: NeverAwaited) -> None:
        self.dropped_unawaited += event.dropped
        key = (event.coroutine, event.frame)
        seen = self._unawaited.get(key)
        frame = event.frame
        self._unawaited[key] = NeverAwaitedView(
            coroutine=event.coroutine,
            # Dropped inside asyncio or a library (a task that ended holding it, ...): the
            # place says nothing about the program's code.
            location=frame if frame is not None and self.code.kind(frame.file) == "app" else None,
            frame=frame,
            count=1 + (seen.count if seen else 0),
            first_t=seen.first_t if seen else event.t,
            last_t=event.t,
        )
        _bound(self._unawaited)

    def errors_view(self) -> tuple[TaskErrorView, ...]:
        ranked = sorted(self._errors.values(), key=lambda e: (-e.count, -e.last_t))
        return tuple(ranked[:MAX_VIEWS])

    def unawaited_view(self) -> tuple[NeverAwaitedView, ...]:
        ranked = sorted(self._unawaited.values(), key=lambda e: (-e.count, -e.last_t))
        return tuple(ranked[:MAX_VIEWS])


def _app_frame(code: CodeMap, frames: Sequence[Frame]) -> Frame | None:
    """The application frame to blame, if any (asyncio's frames of create_task are not)."""
    located = code.locate(frames)
    return located if located is not None and code.is_app(located.file) else None


_K = TypeVar("_K")
_V = TypeVar("_V", TaskErrorView, NeverAwaitedView)


def _bound(table: dict[_K, _V]) -> None:
    if len(table) > MAX_TRACKED:
        rarest = min(table, key=lambda k: (table[k].count, table[k].last_t))
        del table[rarest]
