"""LS611: work queues in the loop's default executor (see docs/findings.md)."""

from __future__ import annotations

from loopscope.model.snapshot import ExecutorView, Snapshot
from loopscope.rules._timing import seconds, short
from loopscope.rules.finding import Finding, Location

CODE = "LS611"
FAMILY = "executor"

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


def check(snapshot: Snapshot) -> list[Finding]:
    ex = snapshot.executor
    if not ex.samples:
        return []
    backlog = ex.backlog_samples >= MIN_BACKLOG_SAMPLES and (
        ex.backlog_samples >= MIN_BACKLOG_SHARE * ex.samples
    )
    waits = ex.started >= MIN_STARTED and (ex.wait_p99 or 0.0) >= WAIT_P99_S
    if not (backlog or waits):
        return []
    worst = max(ex.wait_p99 or 0.0, ex.oldest or 0.0)
    severity = "error" if worst >= ERROR_WAIT_S else "warning"
    location, work = _location(snapshot)
    who = f"work from `{short(location.function)}`" if location else "work"
    p99 = f"{(ex.wait_p99 or 0.0) * 1000:.0f} ms" if ex.wait_p99 is not None else "long"
    duration = max(snapshot.duration_s, 1.0)
    evidence = {
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
    }
    return [
        Finding(
            code=CODE,
            family=FAMILY,
            severity=severity,
            title=f"Default executor backlog: {who} waits {p99} (p99) for one of "
            f"{ex.max_workers} threads, up to {ex.queued_max} items queued",
            location=location,
            evidence=evidence,
            fix=_fix(ex, work),
        )
    ]


def _location(snapshot: Snapshot) -> tuple[Location | None, str | None]:
    """Where the work is submitted: the agent's submitters, else the await sites of tasks
    waiting for an executor; and the function submitted most."""
    ex = snapshot.executor
    if ex.submitters:
        top = ex.submitters[0]
        return Location.of(top), top.work or None
    sites = [s for s in snapshot.await_sites if s.kind == "executor"]
    if sites:
        site = max(sites, key=lambda s: s.count)
        return Location.of(site), None
    return None, None


def _fix(ex: ExecutorView, work: str | None) -> str:
    fn = f"`{short(work)}`" if work else "this work"
    return (
        f"The default executor has {ex.max_workers} threads (min(32, CPUs + 4)) and they are "
        f"all busy, so {fn} queues behind them while its callers wait. Give it an executor of "
        "its own, sized for the concurrency you need (`pool = ThreadPoolExecutor(max_workers="
        "N)`, then `loop.run_in_executor(pool, ...)`), or `loop.set_default_executor(...)`; "
        "bound how many calls are in flight with an `asyncio.Semaphore` so that callers wait "
        "(and can time out) instead of queueing without limit; or make the work async (an "
        "async client instead of a blocking call in a thread). For CPU-bound Python, threads "
        "do not help (the GIL): use a ProcessPoolExecutor."
    )
