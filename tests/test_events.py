from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopscope import events
from loopscope.agent.events import LAG_BUCKETS
from loopscope.events import (
    EVENT_TYPES,
    AwaitFrame,
    AwaitSite,
    Block,
    Census,
    DecodeError,
    DuplicateGroup,
    Duplicates,
    Event,
    ExecutorSample,
    ExternalSamples,
    ExternalTasks,
    FinishedTask,
    Frame,
    GcPause,
    GcWindow,
    Hello,
    Lag,
    Lifecycle,
    LoopStarted,
    LoopStopped,
    LostUpdate,
    NeverAwaited,
    Notice,
    RaceSpan,
    RaceWindow,
    RaceWindows,
    Resource,
    RouteLoad,
    SourceState,
    Stack,
    Submitter,
    TargetExited,
    TaskError,
    TaskErrors,
    TaskGroup,
    TaskInfo,
    TaskList,
    decode,
    encode,
    lag_bucket,
    lag_bucket_upper,
)

FRAME = Frame(file="/srv/app/handlers.py", line=42, function="Reports.render")

ONE_OF_EACH: list[Event] = [
    Hello(
        t=1700000000.25,
        protocol=1,
        agent_version="0.1.0",
        pid=4242,
        python="3.11.7",
        implementation="cpython",
        executable="/usr/bin/python3",
        argv=("app.py", "--név", ""),
        cwd="/srv/app",
        stdlib_paths=("/usr/lib/python3.11",),
        site_paths=("/usr/lib/python3.11/site-packages", "/home/u/.local/lib"),
        monotonic=12345.678,
    ),
    LoopStarted(
        t=1.0,
        loop=140234,
        thread_id=1,
        thread_name="MainThread",
        loop_class="uvloop.Loop",
        features=("lag", "census"),
        unavailable=("utilisation: loop has no Python selector",),
    ),
    LoopStopped(t=2.0, loop=140234),
    Lag(
        t=3.0,
        loop=1,
        window=0.25,
        interval=0.01,
        count=24,
        buckets=(20, 0, 3, 1),
        max=0.0004,
        total=0.002,
        busy=0.75,
        ready=3,
    ),
    Lag(t=3.0, loop=1, window=0.25, interval=0.01, count=0, buckets=(), max=0.0, total=0.0),
    Block(
        t=4.0,
        loop=1,
        duration=0.052,
        task="Task-7",
        cpu=0.051,
        samples=13,
        stacks=(Stack(count=12, frames=(FRAME, FRAME), seconds=0.046), Stack(count=1, frames=())),
        runq=0.0005,
        route="POST /reports/{kind}",
    ),
    Block(t=4.0, loop=1, duration=0.3, task=None, cpu=None, samples=0, stacks=(), precise=False),
    Census(
        t=5.0,
        loop=1,
        total=100,
        inspected=50,
        by_state={"waiting": 98, "ready": 1, "running": 1},
        by_kind={"lock": 90, "sleep": 8},
        sites=(AwaitSite("/a.py", 3, "f", "lock", 90, 1.5),),
        resources=(Resource(id=7, type="Lock", label="Lock locked", waiters=90, oldest=1.5),),
        cost=0.0003,
    ),
    Lifecycle(
        t=6.0,
        loop=1,
        window=1.0,
        created=10,
        finished=9,
        failed=1,
        cancelled=0,
        created_by={"handle": 10},
        sampled=0.25,
    ),
    Notice(t=7.0, level="warning", message="census sampled 1000 of 20000 tasks"),
    SourceState(t=8.0, source="agent", state="lost", detail="connection reset"),
    TargetExited(t=9.0, exit_code=None, reason="killed by SIGKILL"),
    TargetExited(t=9.0, exit_code=3),
    Census(
        t=10.0,
        loop=1,
        total=12,
        inspected=12,
        by_state={"waiting": 11, "running": 1},
        by_kind={"lock": 10, "queue_put": 1},
        sites=(AwaitSite("/a.py", 3, "f", "lock", 10, 0.5, route="GET /invoices/{cid}"),),
        resources=(
            Resource(7, "Lock", "Lock locked", 10, 0.5, site=Frame("/a.py", 3, "f"), kind="lock"),
        ),
        cost=0.0001,
        routes=(
            RouteLoad(
                "GET /invoices/{cid}", 10, Frame("/a.py", 3, "f"), "lock", 0.5, ("view", "f")
            ),
        ),
    ),
    TaskErrors(
        t=11.0,
        loop=1,
        errors=(
            TaskError(
                coroutine="send_metric",
                error="ConnectionError",
                message="refused",
                count=3,
                stack=(FRAME,),
                created=(FRAME,),
            ),
            TaskError(coroutine="poll", error="KeyError", message="'x'", count=1),
        ),
        dropped=2,
    ),
    NeverAwaited(t=12.0, coroutine="Client.send", frame=FRAME, dropped=1),
    NeverAwaited(t=12.5, coroutine="send", frame=None),
    TaskList(
        t=10.0,
        loop=1,
        total=1234,
        sampled=True,
        tasks=(
            TaskInfo(
                id=140001,
                name="Task-7",
                coro="fetch_user",
                state="waiting",
                kind="lock",
                waited=2.5,
                file="/srv/app/handlers.py",
                line=42,
                function="fetch_user",
                chain=(
                    AwaitFrame(
                        file="/usr/lib/python3.11/asyncio/locks.py",
                        line=114,
                        function="Lock.acquire",
                    ),
                    AwaitFrame(
                        file="/srv/app/handlers.py",
                        line=42,
                        function="fetch_user",
                        args=("user_id=7",),
                    ),
                ),
                created=FRAME,
                resource=7,
            ),
            TaskInfo(
                id=140002,
                name="Task-8",
                coro="poll",
                state="ready",
                kind="",
                waited=0.0,
                file="/srv/app/poller.py",
                line=9,
                function="poll",
            ),
        ),
        finished=(
            FinishedTask(
                id=140003,
                name="Task-3",
                coro="handle",
                result="exception",
                error="ValueError: bad id",
                lived=0.75,
                ended=9.5,
            ),
        ),
        cost=0.0004,
    ),
    RaceWindows(
        t=10.0,
        windows=(
            RaceSpan("/srv/app/bank.py", "Account.withdraw", 11, "self.balance", 12, (13,), 14),
            RaceSpan("/srv/app/db.py", "connect", 3, "POOL", 5, (6, 7), 8, "condition", True),
        ),
        files=3,
        functions=12,
        cost=0.004,
        skipped=1,
    ),
    RaceWindow(
        t=11.0,
        loop=1,
        window=RaceSpan("/srv/app/bank.py", "Account.withdraw", 11, "self.balance", 12, (13,), 14),
        tasks=("Task-3", "Task-4"),
        count=2,
        lines=(13, 13),
        inspected=40,
    ),
    LostUpdate(
        t=12.0,
        target="Account.balance",
        task="Task-3",
        read=Frame("/srv/app/bank.py", 12, "Account.withdraw"),
        version_read=4,
        other_task="Task-4",
        other_write=Frame("/srv/app/bank.py", 14, "Account.withdraw"),
        write=Frame("/srv/app/bank.py", 14, "Account.withdraw"),
        version_now=5,
        repeats=2,
    ),
    Duplicates(
        t=10.0,
        loop=1,
        window=0.5,
        total=40,
        inspected=40,
        groups=(
            DuplicateGroup(
                id="0a1b2c3d4e5f",
                parent="",
                file="/srv/app/prices.py",
                line=12,
                function="PriceService.fetch_price",
                args="self=<PriceService #7f00>, symbol='ACME'",
                in_flight=20,
                starts=18,
                instances=120,
                ended=100,
                tasks=120,
                duration=0.31,
            ),
            DuplicateGroup(
                id="ffeeddccbbaa",
                parent="0a1b2c3d4e5f",
                file="/srv/app/prices.py",
                line=30,
                function="_query",
                args="symbol='ACME'",
                in_flight=1,
                starts=0,
                instances=2,
                ended=1,
                tasks=2,
                duration=None,
            ),
        ),
        tracked=57,
        cost=0.0004,
    ),
    ExternalSamples(
        t=10.0,
        source="py-spy",
        thread_id=140675002538880,
        native_id=7369,
        window=0.25,
        stacks=(Stack(2, (FRAME,)),),
        offsets_ms=(10, 30, 50),
        which=(0, -1, 0),
        states="cic",
    ),
    ExternalTasks(
        t=11.0,
        source="aiomonitor",
        endpoint="127.0.0.1:20102",
        total=3,
        live=(TaskGroup("handle", 2, 1.5, "app.py:12", ("Task-3", "Task-4")),),
        terminated_total=1,
        terminated=(TaskGroup("fetch", 1, 0.0),),
    ),
    GcWindow(
        t=10.0,
        window=1.0,
        collections=(120, 11, 1),
        pause=0.094,
        max=0.081,
        collected=5000,
        uncollectable=0,
        pauses=(
            GcPause(t=9.5, duration=0.081, generation=2, collected=4000, stack=(FRAME,), cpu=0.079),
        ),
        threshold=(700, 10, 10),
        frozen=12,
    ),
    ExecutorSample(
        t=11.0,
        loop=1,
        window=0.5,
        max_workers=6,
        workers=6,
        busy=6,
        queued=40,
        oldest=0.35,
        submitted=50,
        started=12,
        wait_buckets=(0, 0, 3, 9),
        wait_max=0.4,
        run=0.6,
        submitters=(Submitter("/srv/app/db.py", 7, "lookup", 50, "slow_query"),),
    ),
    ExecutorSample(
        t=11.0,
        loop=1,
        window=0.5,
        max_workers=6,
        workers=0,
        busy=0,
        queued=0,
        oldest=None,
        submitted=0,
        started=0,
        wait_buckets=(),
        wait_max=0.0,
        run=0.0,
    ),
    Block(
        t=12.0,
        loop=1,
        duration=0.09,
        task=None,
        cpu=0.002,
        samples=0,
        stacks=(),
        runq=0.0,
        gc=0.085,
    ),
]


def test_one_of_each_covers_every_event_type() -> None:
    assert {type(e) for e in ONE_OF_EACH} == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.kind)
def test_round_trip(event: Event) -> None:
    line = encode(event)
    assert "\n" not in line
    assert json.loads(line)["kind"] == event.kind
    assert decode(line) == event
    assert decode(line.encode()) == event
    assert events.from_dict(events.to_dict(event)) == event


def test_non_finite_floats_travel_as_null() -> None:
    event = Lag(
        t=1.0, loop=1, window=0.25, interval=0.01, count=1, buckets=(1,), max=math.inf, total=1.0
    )
    line = encode(event)
    assert '"max":null' in line
    assert decode(line) == event


def test_fields_added_later_have_defaults_so_old_payloads_decode() -> None:
    old = {"kind": "block", "t": 1, "loop": 1, "duration": 0.1, "task": None, "cpu": None}
    old |= {"samples": 0, "stacks": []}
    assert decode(json.dumps(old)).precise is True  # type: ignore[attr-defined]
    assert decode(json.dumps(old)).runq is None  # type: ignore[attr-defined]
    lifecycle = {"kind": "lifecycle", "t": 1, "loop": 1, "window": 0.5, "created": 1}
    lifecycle |= {"finished": 1, "failed": 0, "cancelled": 0}
    assert decode(json.dumps(lifecycle)).sampled == 1.0  # type: ignore[attr-defined]
    # Unknown fields (from a newer agent) are ignored.
    assert decode(json.dumps({**old, "newer_field": [1, 2]})) == decode(json.dumps(old))


def test_lag_buckets() -> None:
    assert lag_bucket(0.0) == 0
    assert lag_bucket(0.00009) == 0
    assert lag_bucket(1e9) == LAG_BUCKETS - 1
    for x in (0.0001, 0.00042, 0.003, 0.05, 0.25, 3.0):
        i = lag_bucket(x)
        assert lag_bucket_upper(i - 1) <= x * (1 + 1e-9)
        assert x < lag_bucket_upper(i) * (1 + 1e-9)


# ---------------------------------------------------------------------------------------------
# Generated events

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**63)
small = st.integers(min_value=0, max_value=10**6)
frames = st.builds(Frame, file=text, line=small, function=text)
stacks = st.builds(Stack, count=small, frames=st.lists(frames, max_size=4).map(tuple))
names = st.tuples(text).map(tuple) | st.lists(text, max_size=3).map(tuple)
counts = st.dictionaries(text, small, max_size=4)
spans = st.builds(
    RaceSpan,
    file=text,
    function=text,
    first_line=small,
    target=text,
    read_line=small,
    await_lines=st.lists(small, max_size=3).map(tuple),
    write_line=small,
    via=text,
    guarded=st.booleans(),
)

strategies: dict[type[Event], st.SearchStrategy[Any]] = {
    Hello: st.builds(
        Hello,
        t=finite,
        protocol=ints,
        agent_version=text,
        pid=ints,
        python=text,
        implementation=text,
        executable=text,
        argv=names,
        cwd=text,
        stdlib_paths=names,
        site_paths=names,
        monotonic=finite,
    ),
    LoopStarted: st.builds(
        LoopStarted,
        t=finite,
        loop=ints,
        thread_id=ints,
        thread_name=text,
        loop_class=text,
        features=names,
        unavailable=names,
    ),
    LoopStopped: st.builds(LoopStopped, t=finite, loop=ints),
    Lag: st.builds(
        Lag,
        t=finite,
        loop=ints,
        window=finite,
        interval=finite,
        count=small,
        buckets=st.lists(small, max_size=80).map(tuple),
        max=finite,
        total=finite,
        busy=st.none() | finite,
        ready=st.none() | small,
    ),
    Block: st.builds(
        Block,
        t=finite,
        loop=ints,
        duration=finite,
        task=st.none() | text,
        cpu=st.none() | finite,
        samples=small,
        stacks=st.lists(stacks, max_size=3).map(tuple),
        precise=st.booleans(),
        runq=st.none() | finite,
        gc=finite,
    ),
    Census: st.builds(
        Census,
        t=finite,
        loop=ints,
        total=small,
        inspected=small,
        by_state=counts,
        by_kind=counts,
        sites=st.lists(
            st.builds(
                AwaitSite,
                file=text,
                line=small,
                function=text,
                kind=text,
                count=small,
                oldest=finite,
            ),
            max_size=3,
        ).map(tuple),
        resources=st.lists(
            st.builds(
                Resource,
                id=ints,
                type=text,
                label=text,
                waiters=small,
                oldest=finite,
                site=st.none() | frames,
                kind=text,
            ),
            max_size=3,
        ).map(tuple),
        cost=finite,
    ),
    Lifecycle: st.builds(
        Lifecycle,
        t=finite,
        loop=ints,
        window=finite,
        created=small,
        finished=small,
        failed=small,
        cancelled=small,
        created_by=counts,
        sampled=finite,
    ),
    TaskErrors: st.builds(
        TaskErrors,
        t=finite,
        loop=ints,
        errors=st.lists(
            st.builds(
                TaskError,
                coroutine=text,
                error=text,
                message=text,
                count=small,
                stack=st.lists(frames, max_size=3).map(tuple),
                created=st.lists(frames, max_size=3).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
        dropped=small,
    ),
    NeverAwaited: st.builds(
        NeverAwaited, t=finite, coroutine=text, frame=st.none() | frames, dropped=small
    ),
    Notice: st.builds(Notice, t=finite, level=text, message=st.text()),
    SourceState: st.builds(SourceState, t=finite, source=text, state=text, detail=text),
    TargetExited: st.builds(TargetExited, t=finite, exit_code=st.none() | ints, reason=text),
    TaskList: st.builds(
        TaskList,
        t=finite,
        loop=ints,
        total=small,
        sampled=st.booleans(),
        tasks=st.lists(
            st.builds(
                TaskInfo,
                id=ints,
                name=text,
                coro=text,
                state=text,
                kind=text,
                waited=finite,
                file=text,
                line=small,
                function=text,
                chain=st.lists(
                    st.builds(AwaitFrame, file=text, line=small, function=text, args=names),
                    max_size=3,
                ).map(tuple),
                created=st.none() | frames,
                resource=ints,
            ),
            max_size=3,
        ).map(tuple),
        finished=st.lists(
            st.builds(
                FinishedTask,
                id=ints,
                name=text,
                coro=text,
                result=text,
                error=text,
                lived=finite,
                ended=finite,
            ),
            max_size=3,
        ).map(tuple),
        cost=finite,
    ),
    RaceWindows: st.builds(
        RaceWindows,
        t=finite,
        windows=st.lists(spans, max_size=3).map(tuple),
        files=small,
        functions=small,
        cost=finite,
        skipped=small,
    ),
    RaceWindow: st.builds(
        RaceWindow,
        t=finite,
        loop=ints,
        window=spans,
        tasks=names,
        count=small,
        lines=st.lists(small, max_size=3).map(tuple),
        inspected=small,
    ),
    LostUpdate: st.builds(
        LostUpdate,
        t=finite,
        target=text,
        task=text,
        read=frames,
        version_read=small,
        other_task=text,
        other_write=frames,
        write=frames,
        version_now=small,
        repeats=small,
    ),
    Duplicates: st.builds(
        Duplicates,
        t=finite,
        loop=ints,
        window=finite,
        total=small,
        inspected=small,
        groups=st.lists(
            st.builds(
                DuplicateGroup,
                id=text,
                parent=text,
                file=text,
                line=small,
                function=text,
                args=text,
                in_flight=small,
                starts=small,
                instances=small,
                ended=small,
                tasks=small,
                duration=st.none() | finite,
            ),
            max_size=3,
        ).map(tuple),
        tracked=small,
        cost=finite,
    ),
    ExternalSamples: st.builds(
        ExternalSamples,
        t=finite,
        source=text,
        thread_id=ints,
        native_id=ints,
        window=finite,
        stacks=st.lists(stacks, max_size=3).map(tuple),
        offsets_ms=st.lists(small, max_size=5).map(tuple),
        which=st.lists(small, max_size=5).map(tuple),
        states=text,
        native=st.booleans(),
    ),
    ExternalTasks: st.builds(
        ExternalTasks,
        t=finite,
        source=text,
        endpoint=text,
        total=small,
        live=st.lists(
            st.builds(
                TaskGroup, coroutine=text, count=small, oldest=finite, created_at=text, names=names
            ),
            max_size=3,
        ).map(tuple),
        terminated_total=small,
        terminated=st.lists(
            st.builds(TaskGroup, coroutine=text, count=small, oldest=finite), max_size=3
        ).map(tuple),
    ),
    GcWindow: st.builds(
        GcWindow,
        t=finite,
        window=finite,
        collections=st.lists(small, max_size=3).map(tuple),
        pause=finite,
        max=finite,
        collected=small,
        uncollectable=small,
        pauses=st.lists(
            st.builds(
                GcPause,
                t=finite,
                duration=finite,
                generation=small,
                collected=small,
                stack=st.lists(frames, max_size=3).map(tuple),
                cpu=st.none() | finite,
            ),
            max_size=3,
        ).map(tuple),
        threshold=st.lists(small, max_size=3).map(tuple),
        frozen=small,
    ),
    ExecutorSample: st.builds(
        ExecutorSample,
        t=finite,
        loop=ints,
        window=finite,
        max_workers=small,
        workers=small,
        busy=small,
        queued=small,
        oldest=st.none() | finite,
        submitted=small,
        started=small,
        wait_buckets=st.lists(small, max_size=80).map(tuple),
        wait_max=finite,
        run=finite,
        submitters=st.lists(
            st.builds(Submitter, file=text, line=small, function=text, count=small, work=text),
            max_size=3,
        ).map(tuple),
    ),
}
any_event = st.one_of(*strategies.values())


def test_every_event_type_has_a_strategy() -> None:
    assert set(strategies) == set(EVENT_TYPES.values())


@settings(max_examples=300, deadline=None)
@given(any_event)
def test_generated_events_round_trip(event: Event) -> None:
    assert decode(encode(event)) == event


# ---------------------------------------------------------------------------------------------
# Bad input: DecodeError, never another exception

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def decodes_or_refuses(line: str | bytes) -> None:
    try:
        event = decode(line)
    except DecodeError:
        return
    assert isinstance(event, Event)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json",
        "{",
        "[]",
        "null",
        "42",
        '"hello"',
        "{}",
        '{"kind": 1}',
        '{"kind": "no_such_kind", "t": 1}',
        '{"kind": ["lag"]}',
        '{"kind": "loop_stopped"}',  # missing fields
        '{"kind": "loop_stopped", "t": "1", "loop": 1}',
        '{"kind": "loop_stopped", "t": 1, "loop": 1.5}',
        '{"kind": "loop_stopped", "t": 1, "loop": true}',
        '{"kind": "loop_stopped", "t": true, "loop": 1}',
        '{"kind": "loop_stopped", "t": null, "loop": null}',
        '{"kind": "notice", "t": 1, "level": "info", "message": null}',
        '{"kind": "lag", "t": 1, "loop": 1, "window": 1, "interval": 1, "count": 1,'
        ' "buckets": {"0": 1}, "max": 1, "total": 1}',
        '{"kind": "lag", "t": 1, "loop": 1, "window": 1, "interval": 1, "count": 1,'
        ' "buckets": [1, "2"], "max": 1, "total": 1}',
        '{"kind": "census", "t": 1, "loop": 1, "total": 1, "inspected": 1, "by_state": [],'
        ' "by_kind": {}, "sites": [], "resources": [], "cost": 0}',
        '{"kind": "block", "t": 1, "loop": 1, "duration": 1, "task": null, "cpu": null,'
        ' "samples": 1, "stacks": [{"count": 1, "frames": [{"file": "a"}]}]}',
        '{"kind": "block", "t": 1, "loop": 1, "duration": 1, "task": null, "cpu": null,'
        ' "samples": 1, "stacks": [7]}',
        '{"kind": "block", "t": 1, "loop": 1, "duration": 1, "task": null, "cpu": null,'
        ' "samples": 1, "stacks": [], "precise": 1}',
        '{"kind": "notice", "t": 1' + "0" * 400 + ', "level": "info", "message": "m"}',
        "[" * 100_000,
        b"\xff\xfe not utf-8",
    ],
)
def test_bad_input_raises_decode_error(line: str | bytes) -> None:
    with pytest.raises(DecodeError):
        decode(line)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.binary(max_size=60))
def test_garbage_never_raises_anything_but_decode_error(line: str | bytes) -> None:
    decodes_or_refuses(line)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(EVENT_TYPES)),
    any_event,
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
)
def test_damaged_events_never_raise_anything_but_decode_error(
    kind: str, event: Event, damage: dict[str, Any]
) -> None:
    # A valid event of another kind, with fields replaced by arbitrary JSON values.
    data = {**events.to_dict(event), **damage, "kind": kind}
    decodes_or_refuses(json.dumps(data))


GOLDEN = Path(__file__).parent / "data" / "wire-v1.jsonl"


def test_the_wire_format_of_protocol_1_does_not_change() -> None:
    # Recordings and agents of protocol 1 are read back exactly as written.
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert [decode(line) for line in lines] == ONE_OF_EACH
    assert [encode(e) for e in ONE_OF_EACH] == lines


def test_a_stack_written_before_stacks_carried_their_time_reads_as_untimed() -> None:
    line = (
        '{"kind":"block","t":1.0,"loop":5,"duration":0.05,"task":null,"cpu":0.05,"samples":3,'
        '"stacks":[{"count":3,"frames":[{"file":"a.py","line":3,"function":"f"}]}]}'
    )
    (stack,) = decode(line).stacks  # type: ignore[attr-defined]
    assert (stack.count, stack.seconds) == (3, 0.0)


def test_events_written_before_routes_read_without_them() -> None:
    block = decode(
        '{"kind":"block","t":1.0,"loop":5,"duration":0.05,"task":null,"cpu":0.05,"samples":0,'
        '"stacks":[]}'
    )
    census = decode(
        '{"kind":"census","t":1.0,"loop":5,"total":1,"inspected":1,"by_state":{"waiting":1},'
        '"by_kind":{"sleep":1},"sites":[{"file":"a.py","line":3,"function":"f","kind":"sleep",'
        '"count":1,"oldest":0.5}],"resources":[],"cost":0.0001}'
    )
    assert isinstance(block, Block) and block.route is None
    assert isinstance(census, Census) and census.routes == () and census.sites[0].route is None


def test_the_client_events_are_the_agents_public_names() -> None:
    from loopscope.agent import events as agent_events

    assert events.__all__ == agent_events.__all__
    for name in agent_events.__all__:
        assert getattr(events, name) is getattr(agent_events, name)
    # every event type on the wire is public
    assert {cls.__name__ for cls in EVENT_TYPES.values()} <= set(events.__all__)


def test_importing_the_events_loads_no_collector() -> None:
    import subprocess
    import sys

    code = (
        "import sys, loopscope.events; "
        "print(sorted(m for m in sys.modules if m.startswith('loopscope.agent')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['loopscope.agent', 'loopscope.agent.events']"
    # and the agent's names still come on first use
    code = "import loopscope.agent as a; print(a.install.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "loopscope.agent._core"


def test_an_executor_sample_written_before_pools_were_named_is_the_default_executor() -> None:
    line = (
        '{"kind":"executor","t":1.0,"loop":1,"window":0.5,"max_workers":6,"workers":6,"busy":6,'
        '"queued":4,"oldest":null,"submitted":5,"started":1,"wait_buckets":[0,1],"wait_max":0.1,'
        '"run":0.2,"submitters":[]}'
    )
    sample = decode(line)
    assert (sample.pool, sample.running) == ("default executor", ())  # type: ignore[attr-defined]
