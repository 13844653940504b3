from __future__ import annotations

import dataclasses

import pytest

from builders import APP, LOOP_FRAMES, app, block, frame, hello, site, stdlib
from loopscope.codemap import CodeMap
from loopscope.events import Block, Event, Frame, Stack
from loopscope.model import MACHINE_FUNCTION, RECENT_SECONDS, UNSAMPLED_FUNCTION, Model
from loopscope.model._blocks import cpu_share

SOURCE = {
    (f"{APP}/handlers.py", 42): "    data = render_report(rows)\n",
    (f"{APP}/handlers.py", 57): "        time.sleep(0.05)  # pretend to wait for the printer\n",
    (f"{APP}/handlers.py", 63): "    resp = fetch(url)\n",
    (f"{APP}/handlers.py", 70): "    text = open(path).read()\n",
    (f"{APP}/handlers.py", 71): "    select_one(fd)\n",
    (f"{APP}/handlers.py", 19): "        await asyncio.sleep(0.005)\n",
    (f"{APP}/handlers.py", 23): "        await trio.sleep(delay)  # time.sleep( in a comment\n",
}


def source_line(file: str, line: int) -> str:
    return SOURCE.get((file, line), "")


def fed(*events: Event) -> Model:
    model = Model(source_line=source_line)
    model.apply(hello())
    for e in events:
        model.apply(e)
    return model


def only_block(b: Block) -> tuple[Frame | None, str]:
    record = fed(b).snapshot().blocks.recent[0]
    return record.location, record.cause


AGENT_FRAME = frame("/srv/venv/lib/python3.11/site-packages/loopscope/agent/_core.py", 9, "x")
PRIVATE_AGENT_FRAME = frame("<loopscope-agent>/_blocks.py", 31, "sample")


def test_location_is_the_innermost_application_frame() -> None:
    frames = [
        PRIVATE_AGENT_FRAME,
        AGENT_FRAME,
        frame("<frozen importlib._bootstrap>", 1, "_call_with_frames_removed"),
        stdlib("json/encoder.py", 258, "JSONEncoder.iterencode"),
        site("jinja2/environment.py", 1300, "Template.render"),
        app(42, "render_report"),
        app(90, "handle"),
    ]
    location, _ = only_block(block(10.0, 0.06, frames))
    assert location == app(42, "render_report")


def library_block(frames: list[Frame]) -> Block:
    """A block whose stack has no application frame at all."""
    return Block(
        t=1.0,
        loop=1,
        duration=0.05,
        task=None,
        cpu=0.05,
        samples=5,
        stacks=(Stack(count=5, frames=tuple(frames)),),
    )


def test_without_application_frames_the_innermost_package_frame_is_the_location() -> None:
    frames = [stdlib("json/encoder.py", 258, "iterencode"), site("orjson/x.py", 3, "dumps")]
    assert only_block(library_block(frames))[0] == site("orjson/x.py", 3, "dumps")
    assert only_block(library_block(list(LOOP_FRAMES[:3])))[0] == LOOP_FRAMES[0]


def test_site_packages_inside_the_stdlib_directory_are_packages() -> None:
    code = CodeMap(["/usr/lib/python3.11"], ["/usr/lib/python3.11/site-packages"])
    assert code.kind("/usr/lib/python3.11/site-packages/requests/api.py") == "library"
    assert code.kind("/usr/lib/python3.11/socket.py") == "stdlib"
    assert code.kind("/usr/lib/python3.11-app/main.py") == "app"
    assert code.module("/usr/lib/python3.11/http/client.py") == "http"
    assert code.module("/usr/lib/python3.11/site-packages/urllib3/connection.py") == "urllib3"


def test_without_hello_the_usual_layouts_are_recognised() -> None:
    code = CodeMap()
    assert code.kind("/opt/py/lib/python3.12/ssl.py") == "stdlib"
    assert code.kind("/home/u/.venv/lib/python3.12/site-packages/httpx/_client.py") == "library"
    assert code.kind("/home/u/app/main.py") == "app"
    assert code.module("/opt/py/lib/python3.12/ssl.py") == "ssl"
    assert code.module("/home/u/app/main.py") is None


def test_cpu_block() -> None:
    location, cause = only_block(block(10.0, 0.06, [app(42, "render_report")], cpu_share=0.95))
    assert (location, cause) == (app(42, "render_report"), "cpu")


def test_sleep_block_is_recognised_from_the_source_line() -> None:
    b = block(10.0, 0.05, [app(57, "print_label")], cpu_share=0.01)
    assert only_block(b) == (app(57, "print_label"), "sleep")


def test_off_cpu_in_a_socket_module_is_io() -> None:
    frames = [stdlib("socket.py", 705, "SocketIO.readinto"), app(63, "lookup")]
    assert only_block(block(10.0, 0.2, frames, cpu_share=0.02))[1] == "io"
    frames = [site("requests/sessions.py", 589, "Session.request"), app(57, "print_label")]
    # Even on a line that mentions sleep(, a frame in requests says I/O.
    assert only_block(block(10.0, 0.2, frames, cpu_share=0.0)) == (app(57, "print_label"), "io")


def test_off_cpu_without_a_hint_is_io() -> None:
    assert only_block(block(10.0, 0.2, [app(63, "lookup")], cpu_share=0.1))[1] == "io"


@pytest.mark.parametrize(
    ("share", "cause"),
    [(0.7, "cpu"), (0.69, "cpu"), (0.5, "cpu"), (0.49, "io"), (0.31, "io"), (0.3, "io")],
)
def test_cpu_share_between_the_bounds(share: float, cause: str) -> None:
    # Line 57 sleeps: only a share at or below 0.3 looks at it.
    b = block(10.0, 0.1, [app(42, "render_report")], cpu_share=share)
    assert only_block(b)[1] == cause


def test_off_cpu_bound_reads_the_source() -> None:
    assert only_block(block(10.0, 0.1, [app(57, "p")], cpu_share=0.3))[1] == "sleep"
    assert only_block(block(10.0, 0.1, [app(57, "p")], cpu_share=0.31))[1] == "io"


def test_the_share_is_of_the_time_the_thread_could_run() -> None:
    # A burn on a machine whose cores are taken: on a core half the time, waiting for one the
    # other half.
    burn = block(10.0, 0.05, [app(42, "render_report")], cpu=0.024, runq=0.025)
    assert cpu_share(burn) == pytest.approx(0.96)
    assert only_block(burn)[1] == "cpu"
    unmeasured = block(10.0, 0.05, [app(42, "render_report")], cpu=0.024)
    assert cpu_share(unmeasured) == pytest.approx(0.48)
    assert only_block(unmeasured)[1] == "io"
    # A sleep waits in no run queue, busy machine or not.
    sleep = block(10.0, 0.05, [app(57, "print_label")], cpu=0.0004, runq=0.0002)
    assert only_block(sleep)[1] == "sleep"


def test_a_thread_that_never_got_a_core_needed_one() -> None:
    b = block(10.0, 0.05, [app(42, "render_report")], cpu=0.0, runq=0.05)
    assert cpu_share(b) == 1.0
    assert cpu_share(block(10.0, 0.05, [app(42, "r")], cpu=0.06, runq=0.0)) == 1.0


def test_a_block_the_thread_spent_waiting_for_a_core_is_the_machines() -> None:
    # Less its wait for a core, shorter than the block threshold: the code did not stall the
    # loop, the machine did. Such blocks are gathered apart, wherever they were.
    never = block(10.0, 0.05, [app(42, "render_report")], cpu=0.0, runq=0.05)
    assert only_block(never)[1] == "machine"
    mostly = block(10.0, 0.05, [app(42, "render_report")], cpu=0.019, runq=0.031)
    assert only_block(mostly)[1] == "machine"
    enough = block(10.0, 0.05, [app(42, "render_report")], cpu=0.021, runq=0.029)
    assert only_block(enough)[1] == "cpu"
    # The wait for a core is estimated; the CPU the thread used is measured, and says more.
    worked = block(10.0, 0.05, [app(42, "render_report")], cpu=0.03, runq=0.04)
    assert only_block(worked)[1] == "cpu"
    model = fed(never, mostly, block(12.0, 0.05, [app(9, "tiny")], cpu=0.0, runq=0.049))
    (hot,) = model.snapshot().blocks.hot
    assert (hot.file, hot.function, hot.blocks, hot.app) == ("", MACHINE_FUNCTION, 3, False)
    assert model.snapshot().blocks.recent[0].location == app(9, "tiny")


def test_a_block_waiting_for_a_thread_to_start_is_the_machines() -> None:
    # An executor adding a worker (`to_thread`, `run_in_executor`) waits in `Thread.start` until
    # the new thread runs: under a millisecond with a core free. Measured in the fixed blocking
    # demo on a loaded machine, 20 ms and more: the machine's, not the handler's I/O.
    starting = [
        stdlib("threading.py", 324, "Condition.wait"),
        stdlib("threading.py", 622, "Event.wait"),
        stdlib("threading.py", 964, "Thread.start"),
        stdlib("concurrent/futures/thread.py", 199, "ThreadPoolExecutor._adjust_thread_count"),
        stdlib("asyncio/threads.py", 25, "to_thread"),
        app(131, "config_"),
    ]
    waited = block(10.0, 0.04, starting, cpu=0.001)
    assert only_block(waited)[1] == "machine"
    # As a part of a stall located elsewhere, it is gathered with the machine's blocks too.
    hashing = app(47, "hash_password", "auth.py")
    stall = dataclasses.replace(
        block(10.0, 0.09, stacks=[(10, [hashing]), (4, starting)], cpu=0.06),
        stacks=(
            Stack(count=10, frames=(hashing, *LOOP_FRAMES), seconds=0.06),
            Stack(count=4, frames=(*starting, *LOOP_FRAMES), seconds=0.03),
        ),
    )
    hot = {h.function: h for h in fed(stall).snapshot().blocks.hot}
    assert set(hot) == {"hash_password", MACHINE_FUNCTION}
    assert hot[MACHINE_FUNCTION].total == pytest.approx(0.03)
    # Starting a thread of one's own is not mistaken for it: only the stdlib's `Thread.start`.
    own = block(10.0, 0.04, [app(70, "Worker.start")], cpu=0.04)
    assert only_block(own)[1] == "cpu"


def test_a_block_off_cpu_in_asyncios_own_code_is_the_machines() -> None:
    # Seen on a loaded test machine: 120 ms at `TimerHandle.__init__` under `await
    # asyncio.sleep(0.005)`, 1 ms of it on CPU, not waiting for a core. asyncio's code between
    # two selects does not wait: the thread waited for the GIL, or the machine stalled it.
    scheduling = [
        stdlib("asyncio/events.py", 107, "TimerHandle.__init__"),
        stdlib("asyncio/base_events.py", 775, "BaseEventLoop.call_at"),
        stdlib("asyncio/base_events.py", 758, "BaseEventLoop.call_later"),
        stdlib("asyncio/tasks.py", 661, "sleep"),
        app(19, "ticker"),
    ]
    stalled = block(10.0, 0.12, scheduling, cpu=0.001)
    assert only_block(stalled)[1] == "machine"
    # On CPU there, it is work the code asked of asyncio (a great many timers, say).
    assert only_block(block(10.0, 0.12, scheduling, cpu=0.1))[1] == "cpu"
    # Under a frame of asyncio that runs other code, that code may wait: a callback in C.
    callback = [stdlib("asyncio/events.py", 84, "Handle._run"), app(10, "<module>", "main.py")]
    assert only_block(block(10.0, 0.12, callback, cpu=0.001))[1] != "machine"
    # asyncio's socket calls do wait: a blocking socket handed to `loop.sock_recv`.
    receiving = [
        stdlib("asyncio/selector_events.py", 403, "BaseSelectorEventLoop.sock_recv"),
        app(19, "ticker"),
    ]
    assert only_block(block(10.0, 0.12, receiving, cpu=0.001))[1] == "io"
    # The application's own frame innermost is judged as before.
    assert only_block(block(10.0, 0.12, [app(57, "print_label")], cpu=0.001))[1] == "sleep"


def test_an_awaited_sleep_is_no_blocking_sleep() -> None:
    # `await asyncio.sleep(...)` lets the loop run; only a sleep that is not awaited blocks it.
    for line in (19, 23):
        location, cause = only_block(block(10.0, 0.05, [app(line, "ticker")], cpu=0.001))
        assert (location, cause) == (app(line, "ticker"), "io")
    assert only_block(block(10.0, 0.05, [app(57, "print_label")], cpu=0.001))[1] == "sleep"


def test_the_hot_frame_cpu_share_leaves_out_the_run_queue_wait() -> None:
    model = fed(
        block(10.0, 0.05, [app(42, "r")], cpu=0.03, runq=0.02),
        block(11.0, 0.05, [app(42, "r")], cpu=0.05),
    )
    (hot,) = model.snapshot().blocks.hot
    assert hot.cpu_share == pytest.approx(0.08 / 0.08)
    assert model.snapshot().blocks.recent[0].runq is None
    assert model.snapshot().blocks.recent[1].runq == 0.02


BURN = app(44, "crunch")
SLEEP = app(57, "print_label")  # its line calls time.sleep


@pytest.mark.parametrize(
    ("burn", "sleep", "cause"),
    [
        # One busy period: a CPU burn, then a time.sleep; the longer one names the block.
        (30, 50, "sleep"),
        (20, 60, "sleep"),
        (50, 30, "cpu"),
        (60, 20, "cpu"),
    ],
)
def test_a_block_of_two_locations_takes_the_cause_of_the_dominant_one(
    burn: int, sleep: int, cause: str
) -> None:
    b = block(
        10.0,
        (burn + sleep) / 1000,
        stacks=[(burn, [BURN]), (sleep, [SLEEP])],
        cpu=burn / 1000,
    )
    record = fed(b).snapshot().blocks.recent[0]
    assert record.location == (BURN if burn > sleep else SLEEP)
    assert record.cause == cause


def test_the_time_the_samples_stand_for_outweighs_their_number() -> None:
    # A 60 ms burn hands the sampler the GIL rarely (6 samples); a 30 ms sleep lets it sample
    # every 2 ms (15 samples). The burn took most of the block, and so names it.
    b = dataclasses.replace(
        block(10.0, 0.09, stacks=[(6, [BURN]), (15, [SLEEP])], cpu=0.06),
        stacks=(
            Stack(count=6, frames=(BURN,), seconds=0.06),
            Stack(count=15, frames=(SLEEP,), seconds=0.03),
        ),
    )
    assert only_block(b) == (BURN, "cpu")
    # Without the time (an older agent, an outside sampler), the number of samples decides.
    untimed = dataclasses.replace(
        b, stacks=tuple(dataclasses.replace(st, seconds=0.0) for st in b.stacks)
    )
    assert only_block(untimed)[0] == SLEEP


def test_a_minority_location_does_not_decide_the_cause() -> None:
    # A location that shows no sign of waiting, with a little CPU time: the minority's
    # samples are of unknown nature, so they do not make it CPU work...
    other = app(12, "helper", "util.py")
    b = block(10.0, 0.1, stacks=[(60, [BURN]), (40, [other])], cpu=0.04)
    assert only_block(b) == (BURN, "io")
    # ...but a minority that sleeps used none of the CPU time: the rest is the burn's.
    b = block(10.0, 0.1, stacks=[(60, [BURN]), (40, [SLEEP])], cpu=0.04)
    assert only_block(b) == (BURN, "cpu")
    # A sleeping location whose minority cannot account for the CPU time did not sleep.
    b = block(10.0, 0.1, stacks=[(80, [SLEEP]), (20, [BURN])], cpu=0.09)
    assert only_block(b) == (SLEEP, "cpu")
    # A socket read in the minority does not make a burn I/O.
    frames = [stdlib("socket.py", 705, "SocketIO.readinto"), app(63, "lookup")]
    b = block(10.0, 0.1, stacks=[(70, [BURN]), (30, frames)], cpu=0.07)
    assert only_block(b) == (BURN, "cpu")


def test_unknown_cpu_time() -> None:
    b = block(10.0, 0.1, [app(42, "render_report")], cpu_share=None)
    assert only_block(b) == (app(42, "render_report"), "unknown")


def test_a_block_without_samples_holds_the_gil_and_has_no_location() -> None:
    b = block(10.0, 0.3, None, cpu_share=1.0)
    assert b.samples == 0
    assert only_block(b) == (None, "gil")
    hot = fed(b).snapshot().blocks.hot
    assert [(h.file, h.line, h.function, h.cause) for h in hot] == [
        ("", 0, UNSAMPLED_FUNCTION, "gil")
    ]


def test_a_block_whose_watchdog_waited_for_the_gil_is_c_code_holding_it() -> None:
    # One sample, taken when the C call returned, at its line; CPU throughout; the watchdog
    # waited for the GIL most of the block (not for a core): cause gil, located at the call.
    # Its CPU share alone, or a socket module on the stack, would not tell.
    frames = [app(21, "check_coupon")]
    waited = dataclasses.replace(
        block(10.0, 0.1, stacks=[(1, frames)], cpu_share=0.95, samples=1), held=0.09
    )
    assert only_block(waited) == (app(21, "check_coupon"), "gil")
    unheld = block(10.0, 0.1, stacks=[(1, frames)], cpu_share=0.95, samples=1)
    assert only_block(unheld)[1] == "cpu"


def test_a_burn_denied_the_gil_by_a_thread_waiting_for_a_core_is_cpu() -> None:
    # Measured on a machine whose cores were all busy: a 63 ms burn that got 5.6 ms of CPU
    # and waited 1 ms for a core, while the watchdog, on a core, waited 52 ms for the GIL.
    frames = [app(45, "cpu_burn")]
    denied = dataclasses.replace(
        block(10.0, 0.063, stacks=[(3, frames)], cpu=0.0056, runq=0.001), held=0.052
    )
    assert only_block(denied) == (app(45, "cpu_burn"), "cpu")
    # The same CPU share with the GIL free is a wait (for I/O the code does not show).
    assert only_block(block(10.0, 0.063, stacks=[(3, frames)], cpu=0.0056))[1] == "io"
    # A sleep stays a sleep whatever the watchdog waited.
    sleeping = dataclasses.replace(
        block(10.0, 0.063, stacks=[(3, [SLEEP])], cpu=0.0002, runq=0.001), held=0.01
    )
    assert only_block(sleeping) == (SLEEP, "sleep")


def test_a_block_without_samples_that_waited_for_a_core_has_an_unknown_cause() -> None:
    # 147 ms, 7 ms of CPU, 140 ms waiting for a core: the GIL held by a thread that did not
    # run, not C code holding it. With 7 ms left to run, the machine's block; with more, the
    # cause is not known.
    b = block(10.0, 0.147, None, cpu=0.0074, runq=0.140)
    assert only_block(b) == (None, "machine")
    b = block(10.0, 0.167, None, cpu=0.0074, runq=0.140)
    assert only_block(b) == (None, "unknown")


def test_a_block_without_samples_is_the_gils_only_if_the_watchdog_waited_for_it_there() -> None:
    # Seen on a pure-Python burn of 25 ms, once a second: the watchdog, calm, looked every
    # 40 ms and no look fell in half the blocks. Nothing was sampled and nothing held.
    assert only_block(block(10.0, 0.025, None, cpu=None, held=0.0)) == (None, "unknown")
    # The watchdog was due 10 ms in and waited for the GIL to the end: C code held it.
    assert only_block(block(10.0, 0.06, None, cpu=None, held=0.045)) == (None, "gil")
    # ...unless the loop thread waited as long for a core, holding the GIL and not running.
    assert only_block(block(10.0, 0.06, None, cpu=None, held=0.02, runq=0.018)) == (
        None,
        "unknown",
    )


def test_a_block_without_samples_is_c_code_holding_the_gil_only_if_it_used_the_cpu() -> None:
    assert only_block(block(10.0, 0.06, None, cpu=0.055, runq=0.001)) == (None, "gil")
    # 60 ms, 5 ms of CPU, no wait for a core, no sample: what it was is not known.
    assert only_block(block(10.0, 0.06, None, cpu=0.005, runq=0.001)) == (None, "unknown")


def test_a_source_line_that_cannot_be_read_gives_no_hint() -> None:
    def broken(file: str, line: int) -> str:
        raise OSError("gone")

    model = Model(source_line=broken)
    model.apply(hello())
    model.apply(block(10.0, 0.1, [app(57, "p")], cpu_share=0.0))
    assert model.snapshot().blocks.recent[0].cause == "io"


def test_the_location_is_the_function_most_samples_are_in() -> None:
    # A CPU loop spreads its samples over lines of one function; a helper took a few.
    b = block(
        10.0,
        0.1,
        stacks=[
            (30, [app(44, "crunch")]),
            (40, [app(45, "crunch")]),
            (35, [app(12, "helper", "util.py")]),
        ],
    )
    record = fed(b).snapshot().blocks.recent[0]
    assert record.location == app(45, "crunch")
    assert record.stacks[0][0] == 40


def test_hot_frames_aggregate_blocks_by_function() -> None:
    model = fed(
        block(
            10.0,
            0.060,
            stacks=[(40, [app(44, "crunch")]), (20, [app(45, "crunch")])],
            task="Task-1",
            cpu_share=1.0,
        ),
        block(
            12.0,
            0.150,
            stacks=[(100, [app(45, "crunch")]), (50, [app(44, "crunch")])],
            task="Task-2",
            cpu_share=0.8,
        ),
        block(13.0, 0.040, [app(57, "print_label")], cpu_share=0.0, task="Task-1"),
        block(14.0, 0.050, stacks=[(50, [app(44, "crunch")])], task="Task-1", cpu_share=0.9),
    )
    blocks = model.snapshot().blocks
    assert blocks.count == 4
    assert blocks.total == pytest.approx(0.300)
    assert blocks.max == 0.150
    crunch, label = blocks.hot
    assert (crunch.function, crunch.blocks, crunch.samples) == ("crunch", 3, 260)
    assert crunch.line == 44  # 140 samples against 120
    assert crunch.total == pytest.approx(0.260)
    assert crunch.max == 0.150
    assert crunch.cause == "cpu"
    assert crunch.cpu_share == pytest.approx((0.06 + 0.12 + 0.045) / 0.26)
    assert (crunch.first_t, crunch.last_t) == (10.0, 14.0)
    assert crunch.tasks == ("Task-1", "Task-2")
    assert crunch.stack[0] == app(45, "crunch")  # from its longest block
    assert crunch.stack[1:] == LOOP_FRAMES
    assert (label.function, label.cause, label.line) == ("print_label", "sleep", 57)


def test_functions_that_block_within_one_stall_each_count_their_part() -> None:
    # Under load a 30 ms hash runs right after a 100 ms sleep: one 130 ms stall, located at the
    # sleep. The hash blocked the loop too, and is counted in its own hot frame, for its part.
    hashing = app(47, "hash_password", "auth.py")
    stall = dataclasses.replace(
        block(10.0, 0.13, stacks=[(6, [hashing]), (50, [SLEEP])], cpu=0.03, runq=0.013),
        stacks=(
            Stack(count=50, frames=(SLEEP, *LOOP_FRAMES), seconds=0.1),
            Stack(count=6, frames=(hashing, *LOOP_FRAMES), seconds=0.03),
        ),
    )
    model = fed(stall)
    blocks = model.snapshot().blocks
    assert (blocks.count, blocks.total) == (1, 0.13)
    assert blocks.recent[0].location == SLEEP  # the stall itself keeps one location
    hot = {h.function: h for h in blocks.hot}
    sleep, hashed = hot[SLEEP.function], hot["hash_password"]
    assert (sleep.cause, sleep.blocks) == ("sleep", 1)
    assert sleep.total == pytest.approx(0.1) and sleep.max == pytest.approx(0.1)
    assert sleep.cpu_share == pytest.approx(0.0)
    assert (hashed.cause, hashed.blocks, hashed.samples, hashed.line) == ("cpu", 1, 6, 47)
    assert hashed.total == pytest.approx(0.03)
    assert hashed.cpu_share == 1.0
    assert hashed.stack[0] == hashing
    # A function with less than 20 ms of the stall is not counted: it only ran in it.
    brief = dataclasses.replace(
        stall,
        stacks=(
            Stack(count=50, frames=(SLEEP, *LOOP_FRAMES), seconds=0.12),
            Stack(count=2, frames=(hashing, *LOOP_FRAMES), seconds=0.01),
        ),
    )
    assert [h.function for h in fed(brief).snapshot().blocks.hot] == [SLEEP.function]
    # Library code in the stall is not a part: the application function that called it is.
    library = site("requests/sessions.py", 500, "Session.send")
    foreign = dataclasses.replace(
        stall,
        stacks=(
            Stack(count=50, frames=(SLEEP, *LOOP_FRAMES), seconds=0.1),
            Stack(count=6, frames=(library, *LOOP_FRAMES), seconds=0.03),
        ),
    )
    assert [h.function for h in fed(foreign).snapshot().blocks.hot] == [SLEEP.function]


def test_the_dominant_cause_is_the_one_with_most_time() -> None:
    model = fed(
        block(10.0, 0.030, [app(57, "p")], cpu_share=1.0),
        block(11.0, 0.030, [app(57, "p")], cpu_share=1.0),
        block(12.0, 0.100, [app(57, "p")], cpu_share=0.0),
    )
    assert model.snapshot().blocks.hot[0].cause == "sleep"


def test_recent_blocks_are_newest_first_and_counted_over_ten_seconds() -> None:
    events = [block(float(t), 0.05, [app(42, "r")]) for t in range(100)]
    blocks = fed(*events).snapshot().blocks
    assert [r.t for r in blocks.recent[:3]] == [99.0, 98.0, 97.0]
    assert len(blocks.recent) == 100
    # Blocks ending within the last 10 s before the latest one's end.
    assert blocks.recent_count == RECENT_SECONDS
    assert blocks.count == 100


def test_block_memory_is_bounded() -> None:
    model = Model(source_line=source_line)
    for i in range(3000):
        model.apply(block(float(i), 0.03, [app(i, f"f{i}", f"m{i}.py")], cpu_share=1.0))
    blocks = model.snapshot().blocks
    assert blocks.count == 3000
    assert len(blocks.recent) <= 100
    assert len(blocks.hot) <= 50
    assert len(model._blocks._hot) <= 500


@pytest.mark.parametrize(
    ("frames", "io"),
    [
        # The library the application called names the kind, not the socket under it.
        (
            [
                stdlib("socket.py", 705, "SocketIO.readinto"),
                stdlib("http/client.py", 300, "HTTPResponse.begin"),
                site("requests/api.py", 73, "get"),
                app(63, "fetch", "handlers.py"),
            ],
            "http",
        ),
        (
            [stdlib("subprocess.py", 1200, "Popen.communicate"), app(63, "fetch", "handlers.py")],
            "subprocess",
        ),
        (
            [site("psycopg2/extras.py", 140, "execute"), app(63, "fetch", "handlers.py")],
            "database",
        ),
        (
            [
                stdlib("socket.py", 962, "getaddrinfo"),
                stdlib("socket.py", 830, "create_connection"),
                app(63, "fetch", "handlers.py"),
            ],
            "dns",
        ),
        ([stdlib("socket.py", 705, "SocketIO.readinto"), app(63, "fetch")], "socket"),
        # File reads are C calls with no frame: the line shows them.
        ([app(70, "load_config", "handlers.py")], "file"),
        ([app(71, "wait", "handlers.py")], None),
    ],
)
def test_sync_io_is_told_apart_by_kind(frames: list[Frame], io: str | None) -> None:
    b = block(10.0, 0.05, frames, cpu=0.0005, runq=0.0)
    model = fed(b)
    snap = model.snapshot()
    record = snap.blocks.recent[0]
    assert (record.cause, record.io) == ("io", io)
    assert snap.blocks.hot[0].io == io
