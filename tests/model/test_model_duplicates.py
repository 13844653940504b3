from __future__ import annotations

import pytest

from builders import duplicate_group, duplicates
from loopscope.events import Event
from loopscope.model import Model
from loopscope.model._duplicates import MAX_TRACKED


def fed(*events: Event) -> Model:
    model = Model()
    for e in events:
        model.apply(e)
    return model


def test_no_passes_no_groups() -> None:
    view = Model().snapshot().duplicates
    assert view.groups == () and view.passes == 0 and view.observed_s == 0.0


def test_folds_a_fingerprint_over_the_session() -> None:
    passes = [
        duplicates(1.0, [duplicate_group(in_flight=4, starts=4, instances=4, ended=0)]),
        duplicates(1.5, [duplicate_group(in_flight=6, starts=5, instances=9, ended=3)]),
        duplicates(2.0, [duplicate_group(in_flight=1, instances=9, ended=8, duration=0.3)]),
        duplicates(2.5, []),
    ]
    view = fed(*passes).snapshot().duplicates
    assert view.passes == 4 and view.observed_s == pytest.approx(2.0)
    (group,) = view.groups
    assert (group.peak, group.passes, group.concurrent_passes) == (6, 3, 2)
    assert (group.instances, group.ended, group.tasks) == (9, 8, 9)
    assert group.duration == pytest.approx(0.3)
    assert group.busy_s == pytest.approx((4 + 6 + 1) * 0.5)
    assert group.wasted_s == pytest.approx(group.busy_s * (1 - 1 / 9))
    assert group.starts_per_s == pytest.approx(9 / 2.0)
    assert group.in_flight_mean == pytest.approx(5.5 / 2.0)
    assert (group.first_t, group.last_t) == (1.0, 2.0)
    assert view.cost_max == pytest.approx(0.0003)


def test_counts_go_on_when_a_fingerprint_starts_a_new_life() -> None:
    # The agent's running counts restart when the objects a fingerprint names are new ones.
    passes = [
        duplicates(1.0, [duplicate_group(instances=5, ended=4)]),
        duplicates(1.5, [duplicate_group(instances=2, ended=1)]),
        duplicates(2.0, [duplicate_group(instances=3, ended=2)]),
    ]
    (group,) = fed(*passes).snapshot().duplicates.groups
    assert (group.instances, group.ended) == (8, 6)


def test_loops_are_observed_side_by_side() -> None:
    passes = [duplicates(1.0 + i * 0.5, loop=loop) for i in range(4) for loop in (1, 2)]
    view = fed(*passes).snapshot().duplicates
    assert view.passes == 8 and view.observed_s == pytest.approx(2.0)


def test_remembers_a_bounded_number_of_fingerprints() -> None:
    passes = [
        duplicates(1.0 + i, [duplicate_group(args=f"n={i}", in_flight=1 + i % 3)])
        for i in range(MAX_TRACKED + 20)
    ]
    model = fed(*passes)
    assert len(model._duplicates._folds) == MAX_TRACKED
    groups = model.snapshot().duplicates.groups
    assert groups == tuple(sorted(groups, key=lambda g: (-g.wasted_s, -g.peak)))
