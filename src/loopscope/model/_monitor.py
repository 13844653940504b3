"""A task monitor's task list (aiomonitor), as last read."""

from __future__ import annotations

from loopscope.events import ExternalTasks, TaskGroup
from loopscope.model.snapshot import MonitorView, TaskGroupView


def _group(g: TaskGroup) -> TaskGroupView:
    return TaskGroupView(g.coroutine, g.count, g.oldest, g.created_at, g.names)


class MonitorState:
    def __init__(self) -> None:
        self._latest: ExternalTasks | None = None

    def apply(self, event: ExternalTasks) -> None:
        if self._latest is None or event.t >= self._latest.t:
            self._latest = event

    def view(self) -> MonitorView | None:
        e = self._latest
        if e is None:
            return None
        return MonitorView(
            source=e.source,
            endpoint=e.endpoint,
            t=e.t,
            total=e.total,
            live=tuple(_group(g) for g in e.live),
            terminated_total=e.terminated_total,
            terminated=tuple(_group(g) for g in e.terminated),
        )
