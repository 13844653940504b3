"""The task list in the model: the latest list of each loop merged, ended tasks kept in a ring."""

from __future__ import annotations

from loopscope.events import FinishedTask, LoopStarted, LoopStopped, TaskInfo, TaskList
from loopscope.model import Model
from loopscope.model._tasklist import MAX_FINISHED


def info(task_id: int, waited: float, state: str = "waiting") -> TaskInfo:
    return TaskInfo(
        id=task_id,
        name=f"Task-{task_id}",
        coro="handle",
        state=state,
        kind="sleep" if state == "waiting" else "",
        waited=waited,
        file="/srv/app/handlers.py",
        line=3,
        function="handle",
    )


def ended(task_id: int, t: float) -> FinishedTask:
    return FinishedTask(
        id=task_id, name=f"Task-{task_id}", coro="handle", result="ok", error="", lived=1.0, ended=t
    )


def listing(t: float, loop: int, tasks: list[TaskInfo], finished: list[FinishedTask]) -> TaskList:
    return TaskList(
        t=t,
        loop=loop,
        total=100 * len(tasks),
        sampled=True,
        tasks=tuple(tasks),
        finished=tuple(finished),
        cost=0.001,
    )


def started(loop: int) -> LoopStarted:
    return LoopStarted(
        t=0.0, loop=loop, thread_id=loop, thread_name=f"T{loop}", loop_class="L", features=()
    )


def test_no_list_yet() -> None:
    view = Model().snapshot().task_list
    assert view.t is None and view.tasks == () and view.total == 0


def test_lists_of_loops_merge_longest_waits_first_and_ended_tasks_newest_first() -> None:
    model = Model()
    for loop in (1, 2):
        model.apply(started(loop))
    model.apply(listing(1.0, 1, [info(1, 5.0), info(2, 1.0, "ready")], [ended(9, 0.9)]))
    model.apply(listing(1.1, 2, [info(3, 7.0)], []))
    model.apply(listing(3.0, 1, [info(1, 7.5), info(4, 0.0)], [ended(2, 2.8), ended(8, 2.5)]))
    model.apply(listing(2.0, 1, [info(99, 99.0)], [ended(99, 1.9)]))  # older: ignored
    view = model.snapshot().task_list
    assert view.t == 3.0 and view.total == 300 and view.sampled
    assert [t.id for t in view.tasks] == [1, 3, 4]
    assert [f.id for f in view.finished] == [2, 8, 9]

    model.apply(LoopStopped(t=4.0, loop=2))
    assert [t.id for t in model.snapshot().task_list.tasks] == [1, 4]


def test_ended_tasks_are_bounded() -> None:
    model = Model()
    for i in range(MAX_FINISHED + 20):
        model.apply(listing(float(i), 1, [], [ended(i, float(i))]))
    finished = model.snapshot().task_list.finished
    assert len(finished) == MAX_FINISHED
    assert finished[0].id == MAX_FINISHED + 19
