"""LS301: garbage collection pauses stall the loop (see docs/findings.md)."""

from __future__ import annotations

from loopscope.model.snapshot import GcPauseView, GcSiteView, GcView, Snapshot, TimeBin
from loopscope.rules._timing import recent, seconds, short, where
from loopscope.rules.finding import Finding, Kind, Location

KIND = Kind("LS301", "gc")

# A collection this long is felt as lag (the same as the agent's block threshold). Where its CPU
# time is known (full collections), that is what counts: on a machine short of cores a short
# collection can take long in wall time, waiting for a core, and that is not the collector's.
LONG_PAUSE_S = 0.02
# Reported when at least this many collections were long...
MIN_LONG = 3
# ... or when collecting took this share of the time (many medium pauses), over at least
# MIN_SESSION_S of session.
MIN_SHARE = 0.05
MIN_SESSION_S = 2.0
# An error when one collection took this long, or collecting this share of the time.
ERROR_MAX_S = 0.25
ERROR_SHARE = 0.10
# A warning when at least MIN_LONG collections took this long (a pause a request's latency shows
# on its own), or collecting took MIN_SHARE of the time with long collections or explained lag
# spikes; otherwise information. Collections of 20-50 ms a few times a minute are what a
# program that keeps a few thousand tasks or objects makes on a slow machine: worth knowing,
# not a problem to fix.
SEVERE_PAUSE_S = 0.05
# A lag spike (a second whose lag reached LONG_PAUSE_S) is explained by a collection at least
# this share of the spike's lag, in the same second or the one before.
EXPLAINS = 0.5
# The code that triggered the collections is named when it triggered this share of the time
# of the collections the agent listed (those of at least 1 ms).
SITE_SHARE = 0.3

SITES = 3


def check(snapshot: Snapshot) -> list[Finding]:
    gc = snapshot.gc
    if not gc.windows:
        return []
    long = [p for p in gc.longest if _work(p) >= LONG_PAUSE_S]
    duration = snapshot.duration_s
    share = gc.pause / duration if duration > 0 else 0.0
    if len(long) < MIN_LONG and not (share >= MIN_SHARE and duration >= MIN_SESSION_S):
        return []
    spikes, explained = _spikes(recent(snapshot))
    severe = [p for p in long if _work(p) >= SEVERE_PAUSE_S]
    if max(map(_work, gc.longest), default=0.0) >= ERROR_MAX_S or share >= ERROR_SHARE:
        severity = "error"
    elif len(severe) >= MIN_LONG or (share >= MIN_SHARE and (len(long) >= MIN_LONG or explained)):
        severity = "warning"
    else:
        severity = "info"  # collections take time, but not enough to be felt
    site = _site(gc)
    location = Location.of(site) if site else None
    full = gc.collections[2] if len(gc.collections) > 2 else 0
    title = (
        f"Garbage collection pauses stall the loop: up to {gc.max * 1000:.0f} ms, "
        f"{gc.pause / max(duration, 1e-9) * 100:.1f}% of the time"
    )
    if site is not None:
        title += f"; collections are triggered in `{short(site.function)}`"
    evidence = {
        "collections": list(gc.collections),
        "full_per_minute": round(full * 60.0 / max(duration, 1.0), 1),
        "pause_total_s": seconds(gc.pause),
        "max_s": seconds(gc.max),
        "long_pauses": len(long),
        "severe_pauses": len(severe),
        "share_of_time": round(min(1.0, share), 4),
        "lag_spikes": spikes,
        "lag_spikes_explained_share": round(explained / spikes, 3) if spikes else None,
        "collected": gc.collected,
        "uncollectable": gc.uncollectable,
        "threshold": list(gc.threshold),
        "frozen": gc.frozen,
        "sites": [where(s) for s in gc.sites[:SITES]],
        "longest": [
            {"t": p.t, "duration_s": seconds(p.duration), "generation": p.generation}
            for p in gc.longest[:5]
        ],
    }
    return [KIND.finding(severity, title, location, evidence, _fix(gc, site))]


def _work(pause: GcPauseView) -> float:
    """How long the collection took, by its CPU time where known."""
    return pause.duration if pause.cpu is None else min(pause.duration, pause.cpu)


def _spikes(bins: list[TimeBin]) -> tuple[int, int]:
    """Seconds whose lag reached LONG_PAUSE_S, and how many of them a collection explains."""
    spikes = explained = 0
    previous: TimeBin | None = None
    for b in bins:
        if b.heartbeats and b.lag_max >= LONG_PAUSE_S:
            spikes += 1
            near = max(b.gc_max, previous.gc_max if previous and previous.t == b.t - 1 else 0.0)
            explained += near >= EXPLAINS * b.lag_max
        previous = b
    return spikes, explained


def _site(gc: GcView) -> GcSiteView | None:
    if not gc.sites or gc.listed <= 0:
        return None
    top = gc.sites[0]
    return top if top.seconds >= SITE_SHARE * gc.listed else None


def _fix(gc: GcView, site: GcSiteView | None) -> str:
    churn = f" in `{short(site.function)}`" if site else ""
    text = (
        "A collection stops the whole process, and a full one walks every container object "
        "the program keeps. Call `gc.freeze()` once start-up has built its long-lived data "
        "(caches, configuration, loaded models), so collections no longer walk it; allocate "
        f"fewer short-lived container objects{churn} (reuse buffers, tuples or `__slots__` "
        "classes instead of dicts, no reference cycles: `weakref` for back-references); and "
        "make full collections rarer with `gc.set_threshold(...)` (a larger first threshold, "
        "e.g. 50_000)."
    )
    if gc.uncollectable:
        text += " Some objects are uncollectable: look at `gc.garbage`."
    return text
