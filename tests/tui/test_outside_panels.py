"""What the panels say from py-spy's and aiomonitor's events, without an agent."""

from __future__ import annotations

from loopscope.events import ExternalSamples, ExternalTasks, Frame, SourceState, Stack, TaskGroup
from loopscope.model import Model
from loopscope.tui._panels import external_stats, header, tasks_detail

APP = "/srv/app/service.py"
RENDER = (Frame(APP, 5, "Shop.render_report"), Frame(APP, 20, "handler"))


def _model() -> Model:
    model = Model()
    model.apply(SourceState(t=1.0, source="py-spy", state="live", detail="dump every 20 ms"))
    model.apply(SourceState(t=1.0, source="aiomonitor", state="live", detail="on :20102"))
    model.apply(ExternalSamples(
        t=2.0, source="py-spy", thread_id=7, native_id=100, window=0.18,
        stacks=(Stack(4, RENDER),), offsets_ms=tuple(range(0, 200, 20)),
        which=(0, 0, 0, 0, -1, -1, -1, -1, -1, -1), states="cccciliiii",
    ))  # fmt: skip
    model.apply(ExternalTasks(
        t=2.0, source="aiomonitor", endpoint="127.0.0.1:20102", total=5,
        live=(TaskGroup("worker", 3, 12.0), TaskGroup("main", 1, 0.0)),
        terminated_total=40, terminated=(TaskGroup("job", 40, 0.05),),
    ))  # fmt: skip
    return model


def test_the_header_says_aiomonitor_on_its_port() -> None:
    text = header(_model().snapshot(), paused=False, how="", log_path=None).plain
    assert "py-spy live (dump every 20 ms)" in text
    assert "aiomonitor on :20102" in text


def test_the_busy_share_and_hot_frames_stand_in_for_the_lag() -> None:
    external = _model().snapshot().external
    assert external is not None
    text = external_stats(external, "/srv/app").plain
    # the loop busy in 5 samples of 10, on CPU in a callback in 4 of them
    assert "busy 50%" in text and "on CPU 40%" in text
    assert "hot: render_report service.py:5 80%" in text


def test_the_tasks_panel_lists_aiomonitors_coroutines() -> None:
    snapshot = _model().snapshot()
    text = tasks_detail(snapshot.tasks, snapshot.monitor).plain
    assert "running: worker 3 · main 1" in text
    assert "terminated (40): job 40" in text
