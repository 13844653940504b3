"""LS101: code that blocks the event loop (see docs/findings.md)."""

from __future__ import annotations

from loopscope.model.snapshot import HotFrame, Snapshot
from loopscope.rules._timing import file_line, function_at, short
from loopscope.rules.finding import Finding, Kind, Location

KIND = Kind("LS101", "blocking")

# A location is reported once it blocked the loop this often, or this long in total.
MIN_BLOCKS = 3
MIN_TOTAL_S = 0.100
# It is an error when one block is this long, or its blocks take this share of the session.
ERROR_MAX_S = 0.250
ERROR_SHARE = 0.20
# Blocks no stack sample reached (C code holding the GIL, or, on a busy machine, the sampler
# kept from a core) have no location to act on: they are a problem only when they take this
# share of the session and no located application code blocks the loop as well (they are then
# most likely its blocks, that the sampler missed). Otherwise they are said at info.
UNSAMPLED_SHARE = 0.05

STACK_FRAMES = 5

_IO_LABEL = {
    "http": "HTTP client",
    "subprocess": "subprocess",
    "database": "database client",
    "dns": "DNS lookup",
    "socket": "socket",
    "file": "file",
}

# The async replacement for each kind of sync I/O.
_IO_FIX = {
    "http": "an async HTTP client (aiohttp's `ClientSession`, or `httpx.AsyncClient`)",
    "subprocess": "`await asyncio.create_subprocess_exec(...)` and `await proc.communicate()`",
    "database": "the async driver of this database (asyncpg, aiosqlite, aiomysql, redis.asyncio"
    ", motor)",
    "dns": "`await loop.getaddrinfo(...)` (which resolves in the default executor), or an async "
    "client that resolves names itself",
    "socket": "asyncio streams (`await asyncio.open_connection(...)`) or `loop.sock_recv`/"
    "`loop.sock_sendall` on a non-blocking socket",
    "file": "`await asyncio.to_thread(...)` around the file access (or aiofiles)",
}

_CAUSE_LABEL = {
    "cpu": "CPU",
    "sleep": "sleep",
    "io": "sync I/O",
    "gil": "C code holding the GIL",
    "gc": "garbage collection",
    "machine": "waiting for a core",
    "unknown": "cause unknown",
}


def check(snapshot: Snapshot) -> list[Finding]:
    return [_finding(h, snapshot) for h in snapshot.blocks.hot if _reported(h)]


def code_work(hot: HotFrame) -> bool:
    """Whether the blocks at ``hot`` were its code's work. Blocks that were mostly garbage
    collection are LS301's (gc_pauses): moving the code around them off the loop would not
    help. Blocks the machine made (the thread waited for a core) are no code's: the Blocks
    screen lists them, under "<waiting for a core>", and no finding blames the program for
    them."""
    return hot.cause not in ("gc", "machine")


def _reported(hot: HotFrame) -> bool:
    return code_work(hot) and (hot.blocks >= MIN_BLOCKS or hot.total >= MIN_TOTAL_S)


def _app_blocks_named(snapshot: Snapshot) -> bool:
    """Whether a located application frame is reported as blocking the loop."""
    return any(h.file and h.app and _reported(h) for h in snapshot.blocks.hot)


def _finding(hot: HotFrame, snapshot: Snapshot) -> Finding:
    located = bool(hot.file)
    duration = snapshot.duration_s
    share = min(1.0, hot.total / duration) if duration > 0 else 1.0
    severity = "error" if hot.max >= ERROR_MAX_S or share >= ERROR_SHARE else "warning"
    cause = _CAUSE_LABEL.get(hot.cause, hot.cause)
    if hot.cause == "io" and hot.io is not None:
        cause = f"{cause}: {_IO_LABEL.get(hot.io, hot.io)}"
    if located and hot.app:
        title = f"`{short(hot.function)}` blocks the loop ({cause}) at {file_line(hot)}"
    elif located:
        # No frame of the application's on the stack: the framework's or asyncio's own frame
        # is where the loop was, not code to blame (C code under it, a collection, or the
        # thread waiting for a core on a busy machine). Said, not raised as a problem.
        severity = "info"
        title = (
            f"The loop blocks with no application code on its stack ({cause}), "
            f"in `{short(hot.function)}` at {file_line(hot)}"
        )
    else:
        title = "Code holding the GIL blocks the loop (no stack could be sampled)"
        if hot.cause != "gil":
            # Nothing sampled, and no sign of C code holding the GIL (the thread's CPU time
            # did not advance while the watchdog waited for it): nothing to name.
            severity = "info"
            title = f"The loop blocks ({cause}) and no stack could be sampled"
        elif share < UNSAMPLED_SHARE or _app_blocks_named(snapshot):
            severity = "info"
        else:
            severity = "error" if share >= ERROR_SHARE else "warning"
    evidence = {
        "count": hot.blocks,
        "total_s": round(hot.total, 4),
        "max_s": round(hot.max, 4),
        "mean_s": round(hot.total / hot.blocks, 4) if hot.blocks else 0.0,
        "per_minute": round(hot.blocks * 60.0 / max(duration, 1.0), 1),
        "cause": hot.cause,
        **({"io": hot.io} if hot.io is not None else {}),
        "cpu_share": None if hot.cpu_share is None else round(hot.cpu_share, 3),
        "share_of_time": round(share, 4),
        "samples": hot.samples,
        "tasks": list(hot.tasks),
        **({"routes": list(hot.routes)} if hot.routes else {}),
        "stack": [function_at(f) for f in hot.stack[:STACK_FRAMES]],
        "first_t": hot.first_t,
        "last_t": hot.last_t,
    }
    location = Location.of(hot) if located else None
    if (located and hot.app) or (not located and hot.cause == "gil"):
        fix = _fix(hot.cause, short(hot.function) if located else "the call", hot.io)
    else:
        fix = _UNATTRIBUTED_FIX
    return KIND.finding(severity, title, location, evidence, fix)


_UNATTRIBUTED_FIX = (
    "No application function was running in these blocks. If they are few and short, they are "
    "likely the machine's doing (the loop's thread waiting for a core) or C code in the loop or "
    "an extension (uvloop, httptools) at work on many requests; if they recur under load, open "
    "the Blocks screen: their stacks show the framework or library call that held the loop."
)


def _fix(cause: str, fn: str, io: str | None = None) -> str:
    if cause == "cpu":
        return (
            f"Move the CPU work off the loop: `await asyncio.to_thread({fn}, ...)`; for "
            f"pure-Python work (threads share the GIL) use a ProcessPoolExecutor with "
            f"`await loop.run_in_executor(pool, {fn}, ...)`. Or split it into chunks with "
            f"`await asyncio.sleep(0)` between them."
        )
    if cause == "sleep":
        return (
            "Replace the blocking `time.sleep(...)` with `await asyncio.sleep(...)` "
            "(which lets other tasks run while this one waits)."
        )
    if cause == "io" and io in _IO_FIX:
        return (
            f"`{fn}` does blocking {_IO_LABEL[io]} I/O on the loop: use {_IO_FIX[io]}; or, "
            f"keeping the sync call, run it in a thread: `await asyncio.to_thread({fn}, ...)`."
        )
    if cause == "io":
        return (
            f"Use an async client for this I/O (e.g. httpx.AsyncClient or aiohttp for HTTP, "
            f"asyncio streams for sockets, an async database driver), or run the blocking call "
            f"in a thread: `await asyncio.to_thread({fn}, ...)`."
        )
    if cause == "gil":
        return (
            "A C extension call holds the GIL for the whole block: run it in a "
            "ProcessPoolExecutor via `await loop.run_in_executor(pool, ...)`, or use a variant "
            "of the call that releases the GIL (then `asyncio.to_thread` is enough)."
        )
    return (
        f"Find what `{fn}` does during these blocks (the stack above) and move it off the loop "
        f"with `await asyncio.to_thread({fn}, ...)` or an async equivalent."
    )
