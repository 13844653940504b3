"""A session's loop figures as one JSON-ready object, for `loopscope diff` and the HTML report.

The snapshot's lag percentiles cover only the last few seconds; a whole recording's come from
every lag window, which `LagTotals` gathers while the recording is read (`read_recording`).

The object (every time in seconds, every share 0..1, ``None`` where the data has no figure)::

    {"lag": {"p50_s", "p99_s", "max_s", "windows"}, "busy_share",
     "blocked": {"count", "total_s", "max_s", "per_min_s"},
     "blocks": [{"location": {"file", "line", "function"}, "count", "total_s", "max_s",
                 "cause"}],
     "routes": [{"route", ...}], "processes": [{"process", ...}]}

``routes`` and ``processes`` hold one object per route or process with numeric figures by name
(``blocked_s``, ``lag_p99_s``...). A block's route is the web framework's name for it (``GET
/invoices/{cid}``), else its endpoint function's (`block_route`): ``blocks`` and ``blocked_s``
per route; ``processes`` stay empty here. `loopscope diff` compares whatever numbers they hold,
key by key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopscope.codemap import CodeMap
from loopscope.events import Block, Event, Hello, Lag
from loopscope.model._lag import merge, percentile
from loopscope.model._routes import block_route
from loopscope.model.flame import FlameTree, add_block
from loopscope.model.snapshot import HotFrame, Snapshot
from loopscope.record.reader import Recording
from loopscope.session import Session, View
from loopscope.sources.replay import ReplaySource

_LAUNCHER = "_launch.py"  # loopscope's launcher of programs (agent/_launch.py)
# Lag windows kept for the chart of lag over time; beyond this, neighbours are merged.
_MAX_POINTS = 20_000


@dataclass(frozen=True, slots=True)
class LagSample:
    """Lag over one window of one loop (or over merged windows): ``t`` is its end."""

    t: float
    p99: float
    max: float


@dataclass
class LagTotals:
    """Every lag window of a session, folded: the whole session's histogram and a series."""

    buckets: list[int] = field(default_factory=list)
    max: float = 0.0
    windows: int = 0
    heartbeats: int = 0
    busy_weighted: float = 0.0
    busy_seconds: float = 0.0
    series: list[LagSample] = field(default_factory=list)

    def add(self, event: Lag) -> None:
        if event.count <= 0 or not (math.isfinite(event.max) and math.isfinite(event.window)):
            return
        self.windows += 1
        self.heartbeats += event.count
        self.buckets = merge((self.buckets, event.buckets))
        self.max = max(self.max, event.max)
        if event.busy is not None and math.isfinite(event.busy) and event.window > 0:
            self.busy_weighted += event.busy * event.window
            self.busy_seconds += event.window
        p99 = percentile(event.buckets, 0.99, event.max) or 0.0
        self.series.append(LagSample(event.t, p99, event.max))
        if len(self.series) > _MAX_POINTS:
            self.series = _halve(self.series)

    @property
    def p50(self) -> float | None:
        return percentile(self.buckets, 0.5, self.max)

    @property
    def p99(self) -> float | None:
        return percentile(self.buckets, 0.99, self.max)

    @property
    def busy(self) -> float | None:
        return self.busy_weighted / self.busy_seconds if self.busy_seconds > 0 else None


def _halve(series: list[LagSample]) -> list[LagSample]:
    out = []
    for i in range(0, len(series) - 1, 2):
        a, b = series[i], series[i + 1]
        out.append(LagSample(b.t, max(a.p99, b.p99), max(a.max, b.max)))
    if len(series) % 2:
        out.append(series[-1])
    return out


class _Tee:
    """A source that hands each event of another to ``seen`` on its way to the model."""

    def __init__(self, source: Any, seen: Callable[[Event], None]) -> None:
        self._source = source
        self._seen = seen

    def events(self) -> Iterator[Event]:
        for event in self._source.events():
            self._seen(event)
            yield event

    def close(self) -> None:
        self._source.close()


@dataclass
class Totals:
    """What a whole recording adds up to beyond its last snapshot: every lag window, and every
    block's stacks merged into one flame tree (weighted by seconds blocked)."""

    lag: LagTotals = field(default_factory=LagTotals)
    blocks: FlameTree = field(default_factory=lambda: FlameTree(root="all blocks"))
    # Blocks by the route that was serving (see `block_route`): route -> [count, seconds].
    routes: dict[str, list[float]] = field(default_factory=dict)

    def add(self, event: Event) -> None:
        if isinstance(event, Lag):
            self.lag.add(event)
        elif isinstance(event, Block):
            route = block_route(event, self.blocks.code)
            if route is not None:
                entry = self.routes.setdefault(route, [0, 0.0])
                entry[0] += 1
                entry[1] += event.duration
            add_block(
                self.blocks,
                event.duration,
                [(s.count, s.frames) for s in event.stacks],
                [s.seconds for s in event.stacks],
            )
        elif isinstance(event, Hello):
            self.blocks.code = CodeMap(event.stdlib_paths, event.site_paths)


def read_recording(recording: Recording) -> tuple[View, Totals]:
    """The view at the end of ``recording`` (what `report` shows) and its totals, in one
    pass."""
    totals = Totals()
    end = recording.info.end
    session = Session(_Tee(ReplaySource(recording), totals.add), clock=lambda: end)
    session.feed_all()
    return session.view(), totals


def figures(
    snapshot: Snapshot, lag: LagTotals | None = None, routes: dict[str, list[float]] | None = None
) -> dict[str, Any]:
    """The loop figures of a session; ``lag``: its lag over the whole session (without it, the
    snapshot's recent lag stands in); ``routes``: its blocks by route (`Totals.routes`)."""
    blocks = snapshot.blocks
    minutes = snapshot.duration_s / 60.0
    if lag is not None:
        lag_json = {"p50_s": lag.p50, "p99_s": lag.p99, "max_s": lag.max if lag.windows else None}
        busy = lag.busy
    else:
        recent = snapshot.lag
        lag_json = {"p50_s": recent.p50, "p99_s": recent.p99, "max_s": recent.session_max}
        busy = snapshot.lag.busy
    return {
        "lag": {key: _round(value) for key, value in lag_json.items()},
        "busy_share": _round(busy),
        "blocked": {
            "count": blocks.count,
            "total_s": _round(blocks.total),
            "max_s": _round(blocks.max) if blocks.count else None,
            "per_min_s": _round(blocks.total / minutes) if minutes > 0 else None,
        },
        "blocks": [_hot(h, minutes) for h in blocks.hot],
        "routes": [
            {
                "route": route,
                "blocks": int(n),
                "blocked_s": _round(seconds),
                "per_min_s": _round(seconds / minutes) if minutes > 0 else None,
            }
            for route, (n, seconds) in sorted((routes or {}).items(), key=lambda r: -r[1][1])
        ],
        "processes": [],
    }


def _hot(hot: HotFrame, minutes: float) -> dict[str, Any]:
    return {
        "location": {"file": hot.file, "line": hot.line, "function": hot.function},
        "count": hot.blocks,
        "total_s": _round(hot.total),
        "max_s": _round(hot.max),
        "per_min_s": _round(hot.total / minutes) if minutes > 0 else None,
        "cause": hot.cause,
    }


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


def program_argv(argv: Sequence[str]) -> list[str]:
    """The program's command line, without loopscope's launcher in front where the agent said
    hello before the launcher handed over to the program."""
    if argv and os.path.basename(argv[0]) == _LAUNCHER:
        return list(argv[1:])
    return list(argv)


def program_name(argv: Sequence[str], *, interpreter: bool = False) -> str | None:
    """The program's name from its command line: a script's name without ``.py`` (its directory's
    for a ``__main__.py``), or a module's last component; None when it cannot be told.

    ``argv`` is the program's ``sys.argv``, or with ``interpreter`` what follows the interpreter
    on a process's command line (its options are passed over, and ``-m MODULE`` names a module).
    Either way loopscope's launcher in front is passed over: the program follows it."""
    words = _past_options(argv) if interpreter else list(argv)
    launched = bool(words) and os.path.basename(words[0]) == _LAUNCHER
    if launched:
        words = words[1:]
    if (launched or interpreter) and words and words[0].startswith("-m"):
        module = words[0][2:] or (words[1] if len(words) >= 2 else "")
        return module.rsplit(".", 1)[-1] or None
    if not words or words[0] in ("", "-m", "-c"):
        return None
    path = words[0].replace("\\", "/").rstrip("/")
    name = os.path.basename(path)
    if name == "__main__.py":
        name = os.path.basename(os.path.dirname(path)) or name
    return name[:-3] if name.endswith(".py") else name


def _past_options(args: Sequence[str]) -> list[str]:
    """An interpreter's arguments from its first that is not an option: the script, ``-m`` (and
    its module) or ``-c``."""
    words = list(args)
    while words and words[0].startswith("-") and words[0] != "-c" and not words[0].startswith("-m"):
        words = words[2:] if words[0] in ("-X", "-W") else words[1:]  # an option with a value
    return words
