"""Duplicate work: the `Duplicates` passes of the agent folded into one record per fingerprint."""

from __future__ import annotations

from dataclasses import dataclass

from loopscope.events import DuplicateGroup, Duplicates
from loopscope.model.snapshot import DuplicatesView, DuplicateView

MAX_TRACKED = 500  # fingerprints kept; the one with the least time in flight goes beyond this
MAX_GROUPS = 50  # fingerprints in a snapshot


@dataclass(slots=True)
class _Fold:
    group: DuplicateGroup  # the latest sighting
    peak: int = 0
    concurrent_passes: int = 0
    passes: int = 0
    busy: float = 0.0
    instances: int = 0
    ended: int = 0
    tasks: int = 0
    first_t: float = 0.0
    last_t: float = 0.0
    duration: float | None = None


def _grown(total: int, before: int, now: int) -> int:
    """A session total from the agent's running count, which restarts (from a smaller value)
    when a fingerprint starts a new life."""
    return total + (now - before if now >= before else now)


class DuplicateState:
    def __init__(self) -> None:
        self._folds: dict[str, _Fold] = {}
        self._observed: dict[int, float] = {}  # loop -> seconds observed
        self._passes = 0
        self._cost_max = 0.0
        self._cost_sum = 0.0

    def apply(self, event: Duplicates) -> None:
        self._passes += 1
        self._cost_sum += event.cost
        self._cost_max = max(self._cost_max, event.cost)
        window = max(0.0, event.window)
        self._observed[event.loop] = self._observed.get(event.loop, 0.0) + window
        folds = self._folds
        for group in event.groups:
            fold = folds.get(group.id)
            if fold is None:
                before = _Fold(group, first_t=event.t)
                fold = folds[group.id] = before
                previous = None
            else:
                previous = fold.group
            fold.instances = _grown(
                fold.instances, previous.instances if previous else 0, group.instances
            )
            fold.ended = _grown(fold.ended, previous.ended if previous else 0, group.ended)
            fold.tasks = _grown(fold.tasks, previous.tasks if previous else 0, group.tasks)
            fold.group = group
            fold.last_t = event.t
            fold.peak = max(fold.peak, group.in_flight)
            if group.in_flight >= 1:
                fold.passes += 1
            if group.in_flight >= 2:
                fold.concurrent_passes += 1
            fold.busy += group.in_flight * window
            if group.duration is not None:
                fold.duration = group.duration
        if len(folds) > MAX_TRACKED:
            least = min(folds, key=lambda k: folds[k].busy)
            del folds[least]

    def view(self) -> DuplicatesView:
        observed = max(self._observed.values(), default=0.0)
        groups = [_view(f, observed) for f in self._folds.values()]
        groups.sort(key=lambda g: (-g.wasted_s, -g.peak))
        return DuplicatesView(
            groups=tuple(groups[:MAX_GROUPS]),
            observed_s=observed,
            passes=self._passes,
            cost_max=self._cost_max,
            cost_mean=self._cost_sum / self._passes if self._passes else 0.0,
        )


def _view(fold: _Fold, observed: float) -> DuplicateView:
    group = fold.group
    instances = max(1, fold.instances)
    return DuplicateView(
        id=group.id,
        parent=group.parent,
        file=group.file,
        line=group.line,
        function=group.function,
        args=group.args,
        peak=fold.peak,
        concurrent_passes=fold.concurrent_passes,
        passes=fold.passes,
        instances=fold.instances,
        ended=fold.ended,
        tasks=fold.tasks,
        duration=fold.duration,
        busy_s=fold.busy,
        wasted_s=fold.busy * (1.0 - 1.0 / instances),
        starts_per_s=fold.instances / observed if observed > 0 else 0.0,
        in_flight_mean=fold.busy / observed if observed > 0 else 0.0,
        first_t=fold.first_t,
        last_t=fold.last_t,
    )
