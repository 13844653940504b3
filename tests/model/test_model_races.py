"""The model's race state: scans, sightings and lost updates folded into the snapshot."""

from __future__ import annotations

from loopscope.events import Frame, LostUpdate, RaceSpan, RaceWindow, RaceWindows
from loopscope.model import Model, _races

SPAN = RaceSpan("/app/bank.py", "Account.withdraw", 10, "self.balance", 11, (12,), 13)


def sighting(t: float, tasks: tuple[str, ...]) -> RaceWindow:
    return RaceWindow(
        t=t,
        loop=1,
        window=SPAN,
        tasks=tasks,
        count=len(tasks),
        lines=(12,) * len(tasks),
        inspected=9,
    )


def test_scans_add_up_and_sightings_fold_into_their_window() -> None:
    model = Model()
    model.apply(RaceWindows(t=1.0, windows=(SPAN,), files=2, functions=5, cost=0.01))
    model.apply(RaceWindows(t=2.0, windows=(SPAN,), files=1, functions=1, cost=0.01))
    model.apply(sighting(3.0, ("a", "b", "c")))
    model.apply(sighting(4.0, ("d", "a")))
    races = model.snapshot().races
    assert (races.files_scanned, races.functions_scanned) == (3, 6)
    (window,) = races.windows
    assert window.span == SPAN
    assert (window.observations, window.max_tasks) == (2, 3)
    assert window.tasks == ("a", "d", "c", "b")[: _races.MAX_NAMES]
    assert (window.first_t, window.last_t) == (3.0, 4.0)


def test_observed_windows_come_first() -> None:
    other = RaceSpan("/app/a.py", "f", 1, "self.x", 2, (3,), 4)
    model = Model()
    model.apply(RaceWindows(t=1.0, windows=(other, SPAN), files=2, functions=2, cost=0.0))
    model.apply(sighting(2.0, ("a", "b")))
    assert [w.span.function for w in model.snapshot().races.windows] == ["Account.withdraw", "f"]


def test_lost_update_places_are_bounded() -> None:
    model = Model()
    for i in range(_races.MAX_LOST + 10):
        where = Frame("/app/c.py", i, "bump")
        model.apply(
            LostUpdate(
                t=1.0,
                target="C.n",
                task="t1",
                read=where,
                version_read=0,
                other_task="t2",
                other_write=where,
                write=where,
                version_now=1,
            )
        )
    assert len(model.snapshot().races.lost_updates) == _races.MAX_LOST
