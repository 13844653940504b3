"""LS611: work queues in a thread pool the loop waits on: its default executor, another
ThreadPoolExecutor, or anyio's worker threads (Starlette/FastAPI ``def`` endpoints) (see
docs/findings.md)."""

from __future__ import annotations

from loopscope.model.snapshot import ExecutorView, Snapshot
from loopscope.rules._timing import seconds, short
from loopscope.rules.finding import Finding, Kind, Location

KIND = Kind("LS611", "executor")

# Reported when work was queued with every worker busy in at least this many samples (the agent
# sends two a second while the executor works), making at least this share of them...
MIN_BACKLOG_SAMPLES = 3
MIN_BACKLOG_SHARE = 0.3
# ... or when work waited this long for a thread at the 99th percentile, over at least
# MIN_STARTED work items.
WAIT_P99_S = 0.1
MIN_STARTED = 20
# An error when work waited this long (p99, or the oldest item waiting now).
ERROR_WAIT_S = 1.0


ANYIO = "anyio worker threads"
DEFAULT = "default executor"


def check(snapshot: Snapshot) -> list[Finding]:
    pools = snapshot.executors or ((snapshot.executor,) if snapshot.executor.samples else ())
    return [f for ex in pools if (f := _check_pool(snapshot, ex)) is not None]


def _check_pool(snapshot: Snapshot, ex: ExecutorView) -> Finding | None:
    if not ex.samples:
        return None
    backlog = ex.backlog_samples >= MIN_BACKLOG_SAMPLES and (
        ex.backlog_samples >= MIN_BACKLOG_SHARE * ex.samples
    )
    waits = ex.started >= MIN_STARTED and (ex.wait_p99 or 0.0) >= WAIT_P99_S
    if waits and not ex.backlog_samples:
        # Waits with a thread free in every sample are the hand-off's (a loaded machine, the
        # GIL), not the pool's size: that is no backlog.
        waits = False
    if not (backlog or waits):
        return None
    worst = max(ex.wait_p99 or 0.0, ex.oldest or 0.0)
    severity = "error" if worst >= ERROR_WAIT_S else "warning"
    location, work = _location(snapshot, ex)
    p99 = f"{(ex.wait_p99 or 0.0) * 1000:.0f} ms" if ex.wait_p99 is not None else "long"
    duration = max(snapshot.duration_s, 1.0)
    evidence = {
        "pool": ex.pool,
        "max_workers": ex.max_workers,
        "workers": ex.workers,
        "busy": ex.busy,
        "queued": ex.queued,
        "queued_max": ex.queued_max,
        "queued_mean": round(ex.queued_mean, 1),
        "backlog_share": round(ex.backlog_samples / ex.samples, 3),
        "wait_p50_s": seconds(ex.wait_p50),
        "wait_p99_s": seconds(ex.wait_p99),
        "wait_max_s": seconds(ex.wait_max),
        "oldest_s": seconds(ex.oldest),
        "submitted_per_second": round(ex.submitted / duration, 1),
        "run_mean_s": seconds(ex.run / ex.started) if ex.started else None,
        "work": work,
        "submitters": [
            f"{short(s.function)} ({s.file.rsplit('/', 1)[-1]}:{s.line}) x{s.count}: {s.work}"
            for s in ex.submitters[:3]
        ],
        "busy_threads_run": [
            f"{short(s.function)} ({s.file.rsplit('/', 1)[-1]}:{s.line}) x{s.count}"
            for s in ex.running[:3]
        ],
    }
    if ex.pool == ANYIO:
        name = work or (location.function if location is not None else None)
        what = f"`{short(name)}`" if name else "sync work"
        title = (
            f"anyio worker threads backlog: {what} waits {p99} (p99) for one of "
            f"{ex.max_workers} threads (anyio's CapacityLimiter), up to {ex.queued_max} waiting"
        )
    elif ex.pool == DEFAULT:
        who = f"work from `{short(location.function)}`" if location else "work"
        title = (
            f"Default executor backlog: {who} waits {p99} (p99) for one of "
            f"{ex.max_workers} threads, up to {ex.queued_max} items queued"
        )
    else:
        who = f"work from `{short(location.function)}`" if location else "work"
        title = (
            f"{ex.pool} backlog: {who} waits {p99} (p99) for one of {ex.max_workers} threads, "
            f"up to {ex.queued_max} items queued"
        )
    return KIND.finding(severity, title, location, evidence, _fix(ex, work))


def busiest(snapshot: Snapshot) -> ExecutorView:
    """The pool whose work waited most (the default executor when no pool was seen)."""
    pools = [p for p in snapshot.executors if p.samples]
    if not pools:
        return snapshot.executor
    return max(pools, key=lambda p: (p.backlog_samples, p.wait_p99 or 0.0, p.submitted))


def _location(snapshot: Snapshot, ex: ExecutorView) -> tuple[Location | None, str | None]:
    """Where the work is submitted: the agent's submitters (for anyio's threads, the
    synchronous function itself: a Starlette ``def`` endpoint is submitted by the framework),
    else the await sites of tasks waiting for an executor; and the function submitted most."""
    if ex.submitters:
        top = ex.submitters[0]
        return Location.of(top), top.work or None
    if ex.pool != DEFAULT:
        return None, None
    sites = [s for s in snapshot.await_sites if s.kind == "executor"]
    if sites:
        site = max(sites, key=lambda s: s.count)
        return Location.of(site), None
    return None, None


def _fix(ex: ExecutorView, work: str | None) -> str:
    fn = f"`{short(work)}`" if work else "this work"
    running = (
        f" The busy threads were seen running `{short(ex.running[0].function)}` "
        f"({ex.running[0].file.rsplit('/', 1)[-1]}:{ex.running[0].line})."
        if ex.running
        else ""
    )
    if ex.pool == ANYIO:
        return (
            f"{fn} is synchronous, so Starlette/FastAPI (or `run_in_threadpool`, "
            f"`anyio.to_thread.run_sync`) run it in anyio's worker threads, at most "
            f"{ex.max_workers} at once (anyio's default CapacityLimiter), and every request "
            f"beyond that waits for a thread while the loop looks idle.{running} Make it "
            f"`async def` and call an async client (httpx.AsyncClient, an async database "
            f"driver) so that it needs no thread; or, if the blocking calls must stay, raise "
            f"the limit at startup (`anyio.to_thread.current_default_thread_limiter()"
            f".total_tokens = 100` in the lifespan); or give them a pool of their own (a "
            f"`CapacityLimiter` passed as `limiter=`, or a ThreadPoolExecutor) so that they "
            f"do not starve the other sync endpoints."
        )
    if ex.pool != DEFAULT:
        return (
            f"This {ex.pool} has {ex.max_workers} threads and they are all busy, so {fn} "
            f"queues behind them while its callers wait.{running} Raise its `max_workers` to "
            f"the concurrency you need; bound how many calls are in flight with an "
            f"`asyncio.Semaphore` so that callers wait (and can time out) instead of queueing "
            f"without limit; or make the work async (an async client instead of a blocking "
            f"call in a thread). For CPU-bound Python, threads do not help (the GIL): use a "
            f"ProcessPoolExecutor."
        )
    return (
        f"The default executor has {ex.max_workers} threads (min(32, CPUs + 4)) and they are "
        f"all busy, so {fn} queues behind them while its callers wait.{running} Give it an "
        "executor of its own, sized for the concurrency you need (`pool = "
        "ThreadPoolExecutor(max_workers=N)`, then `loop.run_in_executor(pool, ...)`), or "
        "`loop.set_default_executor(...)`; "
        "bound how many calls are in flight with an `asyncio.Semaphore` so that callers wait "
        "(and can time out) instead of queueing without limit; or make the work async (an "
        "async client instead of a blocking call in a thread). For CPU-bound Python, threads "
        "do not help (the GIL): use a ProcessPoolExecutor."
    )
