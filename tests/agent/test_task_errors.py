"""Unretrieved task exceptions and coroutines never awaited, reported from real targets."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from pathlib import Path

from agent_harness import TARGET, Client, Target, wait_until

from loopscope.agent._guard import Guard
from loopscope.agent._lifecycle import MAX_ERRORS, LifecycleCollector
from loopscope.agent._periodic import LoopContext
from loopscope.agent._unawaited import RATE, UnawaitedHook
from loopscope.events import Event, Lifecycle, LoopStarted, NeverAwaited, Notice, TaskErrors


def _line(marker: str) -> int:
    (line,) = [i for i, text in enumerate(TARGET.splitlines(), 1) if text.endswith(marker)]
    return line


def test_an_unretrieved_task_exception_is_reported_with_where_it_was_raised(
    target_python: str, tmp_path: Path
) -> None:
    target = Target(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        # The program sets its exception handler after the agent started: the collector chains
        # to it at its first window's end.
        client.wait_for(lambda e: isinstance(e, Lifecycle))
        target.send("fail")
        assert target.read() == {"failing": True}

        # The failed task is freed (and reported) by the garbage collector: its traceback holds
        # the task's own frame.
        def reported() -> TaskErrors | None:
            target.send("collect")
            assert target.read() == {"collected": True}
            try:
                event = client.wait_for(lambda e: isinstance(e, TaskErrors), timeout=0.2)
            except AssertionError:
                return None
            assert isinstance(event, TaskErrors)
            return event

        event = wait_until(reported, what="task errors")
        (error,) = event.errors
        assert (error.coroutine, error.error, error.count) == ("failing", "ValueError", 1)
        assert error.message == "harness failure"
        raised = error.stack[0]
        assert raised.file == str(tmp_path / "target.py")
        assert (raised.line, raised.function) == (_line("# harness: raised"), "explode")
        assert [f.function for f in error.stack[:2]] == ["explode", "failing"]
        assert event.dropped == 0
        # The program's own handler still got it (it prints asyncio's report).
        target.send("ping")
        assert target.read() == {"pong": True}
    finally:
        client.close()
        assert target.finish() == 0


def test_a_coroutine_never_awaited_is_reported_and_the_warning_still_shown(
    target_python: str, tmp_path: Path
) -> None:
    target = Target(target_python, tmp_path)
    client = Client(target.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        target.send("drop")
        assert target.read() == {"dropped": True}
        event = client.wait_for(lambda e: isinstance(e, NeverAwaited), what="never awaited")
        assert isinstance(event, NeverAwaited)
        assert event.coroutine == "forgotten"
        assert event.frame is not None
        assert event.frame.file == str(tmp_path / "target.py")
        assert event.frame.line == _line("# harness: dropped")
        assert event.frame.function == "drop_a_coroutine"
        client.send({"op": "detach"})
        client.read_until_eof()
        state = wait_until(lambda: (s := target.state())["threads"] == ["MainThread"] and s)
        assert state["showwarning"]
    finally:
        client.close()
        assert target.finish() == 0


def test_the_hook_chains_restores_and_rate_limits() -> None:
    events: list[Event] = []
    shown: list[str] = []
    before = warnings.showwarning

    def program_showwarning(*args: object) -> None:
        shown.append(str(args[0]))

    warnings.showwarning = program_showwarning
    hook = UnawaitedHook(events.append, Guard(events.append))
    try:
        hook.install()
        assert warnings.showwarning is not program_showwarning
        for i in range(RATE + 5):
            warnings.showwarning(
                RuntimeWarning(f"coroutine 'job{i}' was never awaited"),
                RuntimeWarning,
                __file__,
                i + 1,
            )
        warnings.showwarning(UserWarning("unrelated"), UserWarning, __file__, 1)
        # Every warning reached the program's function, unchanged.
        assert len(shown) == RATE + 6
        reported = [e for e in events if isinstance(e, NeverAwaited)]
        assert [e.coroutine for e in reported] == [f"job{i}" for i in range(RATE)]
        assert not [e for e in events if isinstance(e, Notice)]
        # A second later the next one is sent, and says how many were not.
        hook._second -= 1.0
        warnings.showwarning(
            RuntimeWarning("coroutine 'later' was never awaited"), RuntimeWarning, __file__, 1
        )
        last = events[-1]
        assert isinstance(last, NeverAwaited)
        assert (last.coroutine, last.dropped) == ("later", 5)
        hook.remove()
        assert warnings.showwarning is program_showwarning
    finally:
        warnings.showwarning = before


async def job() -> None:
    pass


def drop_a_coroutine() -> None:
    job()  # type: ignore[unused-coroutine]  # in-process: dropped


def test_a_coroutine_dropped_again_at_a_line_whose_warning_was_shown_is_reported() -> None:
    # Under the default filter a line's warning is shown once: a program attached to after it
    # was shown drops coroutines there unseen by showwarning. Each is still reported, once.
    events: list[Event] = []
    shown: list[str] = []
    before = warnings.showwarning, warnings._warn_unawaited_coroutine  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda *args: shown.append(str(args[0]))
        drop_a_coroutine()
        gc.collect()
        assert len(shown) == 1
        hook = UnawaitedHook(events.append, Guard(events.append))
        hook.install()
        try:
            drop_a_coroutine()
            drop_a_coroutine()
            gc.collect()
        finally:
            hook.remove()
        assert len(shown) == 1  # the filter still decides what is shown
        reported = [e for e in events if isinstance(e, NeverAwaited)]
        assert [e.coroutine for e in reported] == ["job", "job"]
        frame = reported[0].frame
        assert frame is not None
        assert (frame.file, frame.line) == (__file__, _line_here("# in-process: dropped"))
        assert frame.function == "drop_a_coroutine"
        assert (warnings.showwarning, warnings._warn_unawaited_coroutine) != before  # type: ignore[attr-defined]
    assert (warnings.showwarning, warnings._warn_unawaited_coroutine) == before  # type: ignore[attr-defined]


def test_a_never_awaited_warning_is_noted_once_and_shown_as_cpython_shows_it() -> None:
    events: list[Event] = []
    shown: list[tuple[str, str, int]] = []
    before = warnings.showwarning
    depth = sys.get_coroutine_origin_tracking_depth()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, c, f, n, *rest: shown.append((str(m), f, n))
        sys.set_coroutine_origin_tracking_depth(2)  # the text then says where it was made
        hook = UnawaitedHook(events.append, Guard(events.append))
        try:
            for installed in (False, True):  # one call site: the same text is expected
                if installed:
                    hook.install()
                drop_a_coroutine()
                gc.collect()
        finally:
            hook.remove()
            sys.set_coroutine_origin_tracking_depth(depth)
    assert warnings.showwarning is before
    assert [e.coroutine for e in events if isinstance(e, NeverAwaited)] == ["job"]
    # The same text, at the same place: the program's line, not the agent's.
    assert len(shown) == 2 and shown[0] == shown[1], shown
    assert shown[0][1:] == (__file__, _line_here("# in-process: dropped"))
    assert "Coroutine created at" in shown[0][0]


def test_a_showwarning_set_over_the_hook_stays_and_the_hook_passes_through() -> None:
    events: list[Event] = []
    before = warnings.showwarning
    hook = UnawaitedHook(events.append, Guard(events.append))
    try:
        hook.install()
        ours = warnings.showwarning
        theirs: list[str] = []

        def later(*args: object) -> None:
            theirs.append(str(args[0]))
            ours(*args)

        warnings.showwarning = later
        hook.remove()
        assert warnings.showwarning is later
        shown: list[str] = []
        hook._original = lambda *args: shown.append(str(args[0]))
        warnings.showwarning(
            RuntimeWarning("coroutine 'x' was never awaited"), RuntimeWarning, __file__, 1
        )
        assert theirs == shown == ["coroutine 'x' was never awaited"]
        assert events == []  # inactive once removed
    finally:
        warnings.showwarning = before


async def fail_with(error: type[Exception]) -> None:
    await asyncio.sleep(0)
    raise error("lost")  # in-process: raised


def test_errors_are_grouped_bounded_and_know_their_creation_site_in_debug_mode() -> None:
    events: list[Event] = []
    distinct = [type(f"Error{i}", (Exception,), {}) for i in range(MAX_ERRORS + 2)]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the program's: quiet
        lifecycle = LifecycleCollector(
            LoopContext(loop, id(loop), events.append, Guard(events.append)), window=60.0
        )
        lifecycle.start()
        for batch in (ValueError,) * 3, distinct:  # the alike ones first: they are kept
            tasks = [loop.create_task(fail_with(error)) for error in batch]  # in-process: made
            await asyncio.wait(tasks)
            lifecycle._sweep(final=True)  # let go of the tasks it holds
            del tasks
            gc.collect()
        lifecycle._flush_errors()
        lifecycle.stop()
        loop.set_exception_handler(None)

    asyncio.run(main(), debug=True)
    (event,) = [e for e in events if isinstance(e, TaskErrors)]
    assert len(event.errors) == MAX_ERRORS
    assert event.dropped == 3  # 1 + 22 groups: the last 3 are not kept
    first = event.errors[0]
    assert (first.coroutine, first.error, first.count, first.message) == (
        "fail_with",
        "ValueError",
        3,
        "lost",
    )
    assert first.stack[0].line == _line_here("# in-process: raised")
    assert first.stack[0].function == "fail_with"
    made = [f for f in first.created if f.file == __file__]
    assert made and made[0].line == _line_here("# in-process: made")


def _line_here(marker: str) -> int:
    with open(__file__) as f:
        (line,) = [i for i, text in enumerate(f, 1) if text.rstrip().endswith(marker)]
    return line
