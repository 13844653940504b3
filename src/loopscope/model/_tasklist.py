"""The task list: the latest `TaskList` of each loop, merged, and the tasks seen to end."""

from __future__ import annotations

from collections import deque

from loopscope.events import FinishedTask, TaskList
from loopscope.model.snapshot import TaskListView

MAX_FINISHED = 200  # ended tasks kept, newest first


class TaskListState:
    def __init__(self) -> None:
        self._lists: dict[int, TaskList] = {}  # loop -> latest list
        self._finished: deque[FinishedTask] = deque(maxlen=MAX_FINISHED)

    def apply(self, event: TaskList) -> None:
        latest = self._lists.get(event.loop)
        if latest is not None and latest.t > event.t:
            return
        self._lists[event.loop] = event
        # Each list carries its own ended tasks newest first; the ring keeps newest at the left.
        self._finished.extendleft(reversed(event.finished))

    def loop_stopped(self, loop: int) -> None:
        self._lists.pop(loop, None)

    def view(self) -> TaskListView:
        lists = list(self._lists.values())
        if not lists:
            return TaskListView(finished=tuple(self._finished))
        tasks = tuple(
            sorted(
                (task for tl in lists for task in tl.tasks),
                key=lambda task: (_STATE_ORDER.get(task.state, 3), -task.waited),
            )
        )
        return TaskListView(
            t=max(tl.t for tl in lists),
            total=sum(tl.total for tl in lists),
            sampled=any(tl.sampled for tl in lists),
            tasks=tasks,
            finished=tuple(self._finished),
        )


_STATE_ORDER = {"waiting": 0, "ready": 1, "running": 2}
