"""Events built by hand for the model, rules, session and report tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loopscope.events import (
    AwaitSite,
    Block,
    Census,
    DuplicateGroup,
    Duplicates,
    Frame,
    Hello,
    Lag,
    Lifecycle,
    Resource,
    Stack,
    lag_bucket,
)

STDLIB = "/usr/lib/python3.11"
SITE = "/srv/venv/lib/python3.11/site-packages"
APP = "/srv/app"


def hello(t: float = 0.0, *, pid: int = 4242) -> Hello:
    return Hello(
        t=t,
        protocol=1,
        agent_version="0.1.0",
        pid=pid,
        python="3.11.7",
        implementation="cpython",
        executable="/srv/venv/bin/python",
        argv=("app.py", "--port", "8080"),
        cwd=APP,
        stdlib_paths=(STDLIB,),
        site_paths=(SITE,),
        monotonic=1000.0,
    )


def lag(
    t: float,
    lags: Sequence[float],
    *,
    loop: int = 1,
    window: float = 0.25,
    busy: float | None = None,
    ready: int | None = None,
) -> Lag:
    """A lag window holding the heartbeat lags ``lags``."""
    buckets = [0] * (max((lag_bucket(x) for x in lags), default=-1) + 1)
    for x in lags:
        buckets[lag_bucket(x)] += 1
    return Lag(
        t=t,
        loop=loop,
        window=window,
        interval=0.01,
        count=len(lags),
        buckets=tuple(buckets),
        max=max(lags, default=0.0),
        total=sum(lags),
        busy=busy,
        ready=ready,
    )


def frame(file: str, line: int, function: str) -> Frame:
    return Frame(file=file, line=line, function=function)


def app(line: int, function: str, file: str = "handlers.py") -> Frame:
    return Frame(f"{APP}/{file}", line, function)


def stdlib(module_file: str, line: int, function: str) -> Frame:
    return Frame(f"{STDLIB}/{module_file}", line, function)


def site(module_file: str, line: int, function: str) -> Frame:
    return Frame(f"{SITE}/{module_file}", line, function)


# The outer frames of any coroutine run by asyncio: innermost first.
LOOP_FRAMES = (
    stdlib("asyncio/events.py", 80, "Handle._run"),
    stdlib("asyncio/base_events.py", 1922, "BaseEventLoop._run_once"),
    stdlib("asyncio/base_events.py", 607, "BaseEventLoop.run_forever"),
    app(10, "<module>", "main.py"),
)


def block(
    t: float,
    duration: float,
    frames: Sequence[Frame] | None = None,
    *,
    cpu: float | None = None,
    cpu_share: float | None = 1.0,
    stacks: Iterable[tuple[int, Sequence[Frame]]] | None = None,
    task: str | None = "Task-7",
    loop: int = 1,
    samples: int | None = None,
    runq: float | None = None,
    held: float | None = None,
) -> Block:
    """A block; ``frames`` (innermost first, the loop's frames appended) is sampled once per
    millisecond unless ``stacks`` are given; CPU time is ``cpu`` or ``cpu_share`` of it. One
    with no sample is C code holding the GIL, its watchdog waiting for it through all but the
    first 10 ms, unless ``held`` says otherwise."""
    if stacks is None:
        stacks = [] if frames is None else [(max(1, int(duration * 1000)), frames)]
    built = tuple(
        Stack(count=n, frames=(*fs, *LOOP_FRAMES)) for n, fs in sorted(stacks, key=lambda s: -s[0])
    )
    if cpu is None and cpu_share is not None:
        cpu = duration * cpu_share
    if held is None:
        held = max(0.0, duration - 0.01) if not built and samples is None else 0.0
    return Block(
        t=t,
        loop=loop,
        duration=duration,
        task=task,
        cpu=cpu,
        samples=sum(s.count for s in built) if samples is None else samples,
        stacks=built,
        runq=runq,
        held=held,
    )


def census(
    t: float,
    *,
    loop: int = 1,
    total: int = 0,
    by_state: dict[str, int] | None = None,
    by_kind: dict[str, int] | None = None,
    sites: Sequence[AwaitSite] = (),
    resources: Sequence[Resource] = (),
) -> Census:
    return Census(
        t=t,
        loop=loop,
        total=total,
        inspected=total,
        by_state=by_state if by_state is not None else {"waiting": total},
        by_kind=by_kind if by_kind is not None else {},
        sites=tuple(sites),
        resources=tuple(resources),
        cost=0.0002,
    )


def await_site(
    line: int, function: str, kind: str, count: int, oldest: float, file: str = "handlers.py"
) -> AwaitSite:
    return AwaitSite(
        file=f"{APP}/{file}", line=line, function=function, kind=kind, count=count, oldest=oldest
    )


def lifecycle(
    t: float,
    *,
    created: int = 0,
    finished: int = 0,
    failed: int = 0,
    loop: int = 1,
    window: float = 1.0,
    created_by: dict[str, int] | None = None,
) -> Lifecycle:
    return Lifecycle(
        t=t,
        loop=loop,
        window=window,
        created=created,
        finished=finished,
        failed=failed,
        cancelled=0,
        created_by=created_by if created_by is not None else {},
    )


def duplicate_group(
    function: str = "fetch_price",
    args: str = "symbol='ACME'",
    *,
    in_flight: int = 1,
    starts: int = 0,
    instances: int = 1,
    ended: int = 0,
    tasks: int | None = None,
    duration: float | None = None,
    parent: str = "",
    line: int = 12,
    file: str = "prices.py",
    id: str | None = None,
) -> DuplicateGroup:
    """One fingerprint as a duplicates pass reports it."""
    return DuplicateGroup(
        id=id if id is not None else f"{function}({args})",
        parent=parent,
        file=f"{APP}/{file}",
        line=line,
        function=function,
        args=args,
        in_flight=in_flight,
        starts=starts,
        instances=instances,
        ended=ended,
        tasks=instances if tasks is None else tasks,
        duration=duration,
    )


def duplicates(
    t: float, groups: Iterable[DuplicateGroup] = (), *, loop: int = 1, window: float = 0.5
) -> Duplicates:
    return Duplicates(
        t=t,
        loop=loop,
        window=window,
        total=100,
        inspected=100,
        groups=tuple(groups),
        tracked=10,
        cost=0.0003,
    )
