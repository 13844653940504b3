"""LS601: tasks pile up waiting on a Lock, Semaphore or full Queue (see docs/findings.md)."""

from __future__ import annotations

from loopscope.model.snapshot import ContentionView, Snapshot
from loopscope.rules._timing import file_line, function_at, short
from loopscope.rules.finding import Finding, Kind, Location

KIND = Kind("LS601", "contention")

# Waits that mean contention: for a Lock, a Semaphore slot, room in a bounded Queue. (Waiting on
# an Event or in Condition.wait is waiting for a signal; a getter of an empty Queue is an idle
# consumer.)
CONTENDED_KINDS = frozenset(("lock", "semaphore", "queue_put"))
_CONTENDED_TYPES = frozenset(("Lock", "Semaphore", "BoundedSemaphore"))

# Reported when at least MIN_WAITERS wait at SUSTAINED_CENSUSES censuses in a row spanning at
# least SUSTAINED_S, one of them for SUSTAINED_WAIT_S or more; or a wait lasted LONG_WAIT_S (as
# seen at two censuses or more). A busy lock that every census finds with waiters, each of them
# through within milliseconds, queues nobody for long: a wait is only seen to last when the same
# waiter is still there at the next census.
MIN_WAITERS = 3
SUSTAINED_CENSUSES = 4
SUSTAINED_S = 1.5
SUSTAINED_WAIT_S = 0.25
LONG_WAIT_S = 1.0
LONG_WAIT_CENSUSES = 2
# An error when a wait lasted this long, or this many tasks waited at once for a Lock (a
# semaphore or queue bound with many tasks queued may be a deliberate limit: a warning then).
ERROR_WAIT_S = 5.0
ERROR_WAITERS = 100


def check(snapshot: Snapshot) -> list[Finding]:
    findings = []
    for resource in snapshot.contention:
        if not _contended(resource):
            continue
        run = sustained(resource)
        long_wait = resource.wait_max >= LONG_WAIT_S and resource.censuses >= LONG_WAIT_CENSUSES
        if (run >= SUSTAINED_S and resource.wait_max >= SUSTAINED_WAIT_S) or long_wait:
            findings.append(_finding(resource, run))
    return findings


def _contended(resource: ContentionView) -> bool:
    if resource.kind:
        return resource.kind in CONTENDED_KINDS
    return resource.type in _CONTENDED_TYPES


def sustained(resource: ContentionView) -> float:
    """Seconds spanned by the longest run of consecutive censuses, at least
    SUSTAINED_CENSUSES of them, each seeing at least MIN_WAITERS waiters (0.0 if none)."""
    best = 0.0
    start: float | None = None
    length = 0
    for t, waiters, _ in resource.samples:
        if waiters >= MIN_WAITERS:
            if start is None:
                start, length = t, 0
            length += 1
            if length >= SUSTAINED_CENSUSES:
                best = max(best, t - start)
        else:
            start = None
    return best


def _finding(resource: ContentionView, run: float) -> Finding:
    site = resource.site
    noun = _noun(resource)
    is_lock = resource.kind == "lock" or (not resource.kind and resource.type == "Lock")
    crowded = is_lock and resource.peak >= ERROR_WAITERS
    severity = "error" if resource.wait_max >= ERROR_WAIT_S or crowded else "warning"
    if site is not None and site.function:
        title = (
            f"`{short(site.function)}` waits on a contended {noun} "
            f"at {file_line(site)} "
            f"(up to {resource.peak} waiters, longest wait {resource.wait_max:.2f}s)"
        )
    else:
        title = (
            f"Tasks pile up on a {noun} (up to {resource.peak} waiters, "
            f"longest wait {resource.wait_max:.2f}s)"
        )
    evidence = {
        "type": resource.type,
        "label": resource.label,
        "kind": resource.kind or None,
        "waiters_now": resource.waiters,
        "waiters_peak": resource.peak,
        "wait_p50_s": round(resource.wait_p50, 3),
        "wait_p99_s": round(resource.wait_p99, 3),
        "wait_max_s": round(resource.wait_max, 3),
        "sustained_s": round(run, 2) if run else None,
        "censuses": resource.censuses,
        "site": None if site is None else function_at(site),
        "first_t": resource.first_t,
        "last_t": resource.last_t,
    }
    location = Location.of(site) if site is not None else None
    return KIND.finding(severity, title, location, evidence, _fix(resource))


def _noun(resource: ContentionView) -> str:
    if resource.kind == "queue_put":
        return f"full {resource.type}"
    return resource.type


def _fix(resource: ContentionView) -> str:
    if resource.kind == "queue_put":
        return (
            "The queue's consumers keep up slower than its producers: add consumers, make "
            "each item cheaper to handle, or push back on the producers' own callers (reject "
            "or shed work when `queue.full()`, or `asyncio.wait_for(queue.put(x), timeout)`). "
            "A bigger maxsize only absorbs short bursts."
        )
    if resource.kind == "semaphore" or resource.type in ("Semaphore", "BoundedSemaphore"):
        return (
            "The semaphore's bound is the bottleneck: raise it if what it guards can take more "
            "concurrency (a connection pool: raise the pool size with it), make the work done "
            "while holding it faster, or apply backpressure before it (reject or time out "
            "callers: `asyncio.wait_for(sem.acquire(), timeout)`)."
        )
    return (
        "Hold the lock for less time: do not await slow I/O (network calls, disk, sleeps) "
        "while holding it: read what you need under the lock, release it, do the slow work, "
        "then take it again briefly to write. If unrelated callers share it, shard it (one "
        "lock per key) so they no longer queue behind each other."
    )
