"""LS801: task exceptions nobody retrieved; LS802: coroutines never awaited; LS803: aiohttp
ClientSessions freed without being closed (docs/findings.md)."""

from __future__ import annotations

from loopscope.events import Frame
from loopscope.model.snapshot import NeverAwaitedView, Snapshot, TaskErrorView
from loopscope.rules._timing import file_line, function_at, short
from loopscope.rules.finding import Finding, Kind, Location

FAMILY = "exception"
UNRETRIEVED = Kind("LS801", FAMILY)
NEVER_AWAITED = Kind("LS802", FAMILY)
UNCLOSED = Kind("LS803", FAMILY)
# The error kind the agent keeps aiohttp's "Unclosed client session" reports under.
UNCLOSED_SESSION = "unclosed aiohttp.ClientSession"
MIN_UNRETRIEVED = 1  # a single lost exception is an error: its failure went unseen
MIN_NEVER_AWAITED = 1
STACK_FRAMES = 5


def check(snapshot: Snapshot) -> list[Finding]:
    errors = [e for e in snapshot.task_errors if e.count >= MIN_UNRETRIEVED]
    findings = [_unretrieved(e) for e in errors if e.error != UNCLOSED_SESSION]
    sessions = [e for e in errors if e.error == UNCLOSED_SESSION]
    # Where a session was created is known from the agent's second report on; the first ones
    # are kept where they were dropped, and stand only when no creation site is known.
    created = [e for e in sessions if e.coroutine == "created"]
    findings += [_unclosed(e) for e in (created or sessions)]
    findings += [_never(n) for n in snapshot.never_awaited if n.count >= MIN_NEVER_AWAITED]
    return findings


def _unretrieved(error: TaskErrorView) -> Finding:
    where = error.location
    at = f" at {file_line(where)}" if where is not None else ""
    title = (
        f"Task `{short(error.coroutine)}` failed with {error.error}{at} "
        f"and nobody retrieved the exception ({error.count} times)"
    )
    evidence = {
        "coroutine": error.coroutine,
        "error": error.error,
        "message": error.message,
        "count": error.count,
        "raised_at": _describe(where),
        "created_at": _describe(error.created),
        "stack": [_describe(f) for f in error.stack[:STACK_FRAMES]],
        "first_t": error.first_t,
        "last_t": error.last_t,
    }
    fn = short(error.coroutine)
    return UNRETRIEVED.finding(
        severity="error",
        title=title,
        location=_location(where),
        evidence=evidence,
        fix=(
            f"Nothing awaited the `{fn}` tasks, so their exceptions went unseen until the "
            f"tasks were freed. Await them (`await task`, or `await asyncio.gather(*tasks)`), "
            f"or run them in an `asyncio.TaskGroup`; for fire-and-forget tasks keep a "
            f"reference and add a done callback that logs failures "
            f"(`task.add_done_callback(log_failure)`), or handle the error inside `{fn}`."
        ),
    )


def _unclosed(error: TaskErrorView) -> Finding:
    where = error.location
    verb = "created" if error.coroutine == "created" else "dropped"
    at = f" {verb} in `{short(where.function)}` at {file_line(where)}" if where is not None else ""
    return UNCLOSED.finding(
        severity="error",
        title=f"aiohttp ClientSession{at} is never closed ({error.count} sessions freed unclosed)",
        location=_location(where),
        evidence={
            "count": error.count,
            f"{verb}_at": _describe(where),
            "stack": [_describe(f) for f in error.stack[:STACK_FRAMES]],
            "first_t": error.first_t,
            "last_t": error.last_t,
        },
        fix=(
            "Each unclosed `ClientSession` leaves its connector and its connections open until "
            "it is freed, and a session per request opens a new connection every time. Create "
            "one session for the program (or per long-lived component), reuse it for all "
            "requests, and close it when done: `async with aiohttp.ClientSession() as session:` "
            "around the work, or `await session.close()` on shutdown."
        ),
    )


def _never(never: NeverAwaitedView) -> Finding:
    where = never.location
    fn = short(never.coroutine)
    if where is not None and where.function:
        title = f"`{short(where.function)}` calls `{fn}` without awaiting it at {file_line(where)}"
    elif where is not None:
        title = f"Coroutine `{fn}` is never awaited at {file_line(where)}"
    else:
        title = f"Coroutine `{fn}` is never awaited"
    return NEVER_AWAITED.finding(
        severity="warning",
        title=title,
        location=_location(where),
        evidence={
            "coroutine": never.coroutine,
            "dropped_at": _describe(never.frame or where),
            "count": never.count,
            "first_t": never.first_t,
            "last_t": never.last_t,
        },
        fix=(
            f"Calling `{fn}(...)` only creates a coroutine object: its code never runs. "
            f"`await {fn}(...)`, or to run it in the background, "
            f"`task = asyncio.create_task({fn}(...))` and keep a reference to the task "
            f"until it is done."
        ),
    )


def _location(frame: Frame | None) -> Location | None:
    return Location.of(frame) if frame is not None else None


def _describe(frame: Frame | None) -> str | None:
    if frame is None:
        return None
    return function_at(frame) if frame.function else file_line(frame)
