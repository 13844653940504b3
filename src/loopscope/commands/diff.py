"""`loopscope diff BEFORE AFTER`: what changed between two sessions.

Each side is a recording or a `loopscope report --json` file. Findings are matched by code and
location (file and function: a fix moves lines); loop figures (lag, busy share, blocked time,
blocks per location, routes, processes) are compared where both sides have them. See
docs/recording.md for the JSON this prints with ``--json``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from loopscope import figures as figures_
from loopscope.commands._common import say
from loopscope.record._format import SQLITE_MAGIC, RecordingError
from loopscope.record.reader import Recording
from loopscope.report import duration
from loopscope.rules.finding import SEVERITIES, severity_rank

DEFAULT_THRESHOLD = 20.0  # percent
# Lag p99 changes smaller than this never count as a regression: the histogram's buckets are
# about 19% apart, and sub-millisecond lag is noise.
LAG_FLOOR_S = 0.001
# A location's blocked time per minute must also rise by this much (1% of the time) to count:
# one startup block a few milliseconds longer on a busy machine is no regression.
BLOCKED_FLOOR_PER_MIN_S = 0.6
_MAX_JSON_BYTES = 64 * 1024 * 1024


class DiffError(Exception):
    """Bad input: the message is printed and the exit code is 2."""


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a diff: what a recording or a report file says."""

    path: Path
    kind: str  # "recording" | "report"
    target: dict[str, Any] | None
    duration_s: float | None
    findings: list[dict[str, Any]]
    figures: dict[str, Any] | None  # None: a file without them (a live run's --json)
    damaged: str | None = None

    def header(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "kind": self.kind,
            "target": self.target,
            "duration_s": self.duration_s,
            "findings": len(self.findings),
        }


def load(path: Path) -> Side:
    """Read one side. Raises RecordingError (the messages `report` gives) or DiffError."""
    try:
        return _load_recording(path)
    except RecordingError:
        if not _other_file(path):
            raise
    return _load_report(path)


def _other_file(path: Path) -> bool:
    """Whether ``path`` can be read and is not an SQLite file (so perhaps a report)."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError:
        return False
    return bool(head) and head != SQLITE_MAGIC


def _load_recording(path: Path) -> Side:
    from loopscope import report

    with Recording.open(path) as recording:
        view, totals = figures_.read_recording(recording)
        damaged = recording.damaged
    data = report.report_json(view)
    return Side(
        path=path,
        kind="recording",
        target=data["target"],
        duration_s=data["duration_s"],
        findings=data["findings"],
        figures=figures_.figures(view.snapshot, totals.lag, totals.routes),
        damaged=damaged,
    )


def _load_report(path: Path) -> Side:
    not_ours = f"{path} is neither a loopscope recording nor a 'loopscope report --json' file"
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            raise DiffError(f"{not_ours} (too big)")
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise DiffError(not_ours) from None
    except OSError as e:
        raise RecordingError(f"cannot read {path}: {e.strerror}") from None
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise DiffError(not_ours)
    findings = [
        f for f in data["findings"] if isinstance(f, dict) and isinstance(f.get("code"), str)
    ]
    target = data.get("target")
    figs = data.get("figures")
    seconds: Any = data.get("duration_s")
    return Side(
        path=path,
        kind="report",
        target=target if isinstance(target, dict) else None,
        duration_s=float(seconds) if _is_number(seconds) else None,
        findings=findings,
        figures=figs if isinstance(figs, dict) else None,
    )


# -- comparing ---------------------------------------------------------------------------------


def compare(before: Side, after: Side, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The diff of two sides, as the JSON `diff --json` prints."""
    unrelated = _unrelated(before.target, after.target)
    result: dict[str, Any] = {
        "before": before.header(),
        "after": after.header(),
        "unrelated": unrelated,
        "threshold_pct": threshold,
        "findings": _findings(before.findings, after.findings),
        "loop": None,
        "blocks": [],
        "routes": [],
        "processes": [],
    }
    b, a = before.figures, after.figures
    if b is not None and a is not None:
        result["loop"] = _loop(b, a)
        result["blocks"] = _keyed(b.get("blocks"), a.get("blocks"), _location_key)
        result["routes"] = _keyed(b.get("routes"), a.get("routes"), lambda r: r.get("route"))
        result["processes"] = _keyed(
            b.get("processes"), a.get("processes"), lambda p: p.get("process")
        )
    result["regressions"] = regressions(result, threshold)
    return result


def _unrelated(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str | None:
    """Why the two sides look like different programs, or None."""
    names = [_program(t) for t in (before, after)]
    if names[0] is None or names[1] is None or names[0] == names[1]:
        return None
    return f"the two sides ran different programs ({names[0]} and {names[1]})"


def _program(target: dict[str, Any] | None) -> str | None:
    argv = (target or {}).get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return None
    return figures_.program_name(argv)


def _finding_key(f: dict[str, Any]) -> tuple[str, str, str]:
    loc = f.get("location")
    if not isinstance(loc, dict):
        return (str(f.get("code")), "", "")
    return (
        str(f.get("code")),
        os.path.basename(str(loc.get("file", ""))),
        str(loc.get("function")),
    )


def _findings(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    left: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for f in before:
        left.setdefault(_finding_key(f), []).append(f)
    new, still = [], []
    for f in after:
        matches = left.get(_finding_key(f))
        if matches:
            old = matches.pop(0)
            still.append(_still(old, f))
        else:
            new.append(f)
    fixed = [f for fs in left.values() for f in fs]
    return {"fixed": fixed, "new": new, "still": still}


def _still(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    changes = {}
    ev_old, ev_new = old.get("evidence") or {}, new.get("evidence") or {}
    if isinstance(ev_old, dict) and isinstance(ev_new, dict):
        for key in ev_new:
            old_value, new_value = ev_old.get(key), ev_new[key]
            if _is_number(old_value) and _is_number(new_value) and old_value != new_value:
                changes[key] = _change(old_value, new_value)
    return {
        "code": new.get("code"),
        "severity": new.get("severity"),
        "severity_before": old.get("severity"),
        "title": new.get("title"),
        "location": new.get("location"),
        "evidence": changes,
    }


def _change(before: Any, after: Any) -> dict[str, Any]:
    """``{"before", "after", "change_pct"}``; change_pct None when it has no meaning."""
    pct = None
    if _is_number(before) and _is_number(after):
        if before:
            pct = round((after - before) / abs(before) * 100.0, 1)
        elif after == 0:
            pct = 0.0
    return {"before": before, "after": after, "change_pct": pct}


def _loop(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    def get(figs: dict[str, Any], group: str, key: str | None = None) -> Any:
        value = figs.get(group)
        if key is not None:
            value = value.get(key) if isinstance(value, dict) else None
        return value if _is_number(value) else None

    rows = {
        "lag_p50_s": ("lag", "p50_s"),
        "lag_p99_s": ("lag", "p99_s"),
        "lag_max_s": ("lag", "max_s"),
        "busy_share": ("busy_share", None),
        "blocks": ("blocked", "count"),
        "blocked_s": ("blocked", "total_s"),
        "blocked_per_min_s": ("blocked", "per_min_s"),
    }
    return {name: _change(get(before, *where), get(after, *where)) for name, where in rows.items()}


def _location_key(block: dict[str, Any]) -> Any:
    loc = block.get("location")
    if not isinstance(loc, dict):
        return None
    return (os.path.basename(str(loc.get("file", ""))), str(loc.get("function")))


def _keyed(before: Any, after: Any, key: Any) -> list[dict[str, Any]]:
    """Items of two lists matched by ``key``: each with its numbers before and after."""
    b = {key(x): x for x in (before or []) if isinstance(x, dict) and key(x) is not None}
    a = {key(x): x for x in (after or []) if isinstance(x, dict) and key(x) is not None}
    out = []
    for k in list(a) + [k for k in b if k not in a]:
        old, new = b.get(k), a.get(k)
        shown = new if new is not None else old
        assert shown is not None
        label = {f: v for f, v in shown.items() if not _is_number(v)}
        numbers = sorted({f for x in (old, new) if x for f, v in x.items() if _is_number(v)})
        figs = {f: _change((old or {}).get(f), (new or {}).get(f)) for f in numbers}
        out.append({**label, "status": _status(old, new), "figures": figs})
    return out


def _status(old: object, new: object) -> str:
    return "new" if old is None else "gone" if new is None else "both"


def regressions(diff: dict[str, Any], threshold: float) -> list[str]:
    """Why ``diff`` is a regression, one line each; empty when it is not."""
    out = []
    warning = severity_rank("warning")
    for f in diff["findings"]["new"]:
        if f.get("severity") in SEVERITIES and severity_rank(f["severity"]) >= warning:
            out.append(f"new finding {f.get('code')} ({f.get('severity')}): {f.get('title')}")
    loop = diff.get("loop")
    if loop:
        p99 = loop["lag_p99_s"]
        if _rose(p99, threshold) and p99["after"] - p99["before"] >= LAG_FLOOR_S:
            out.append(
                f"lag p99 rose from {duration(p99['before'])} to {duration(p99['after'])} "
                f"({_pct(p99)})"
            )
    # A location or route seen on one side only is not compared: one that blocks enough to
    # matter after has a blocking finding of its own (a new finding), and a single short block
    # of a busy machine must not fail a build.
    for block in diff.get("blocks", []):
        rise = _blocked_rise(block, "total_s", threshold)
        if rise is not None:
            out.append(f"blocked time at {_where(block.get('location') or {})} rose {rise}")
    for route in diff.get("routes", []):
        rise = _blocked_rise(route, "blocked_s", threshold)
        if rise is not None:
            out.append(f"blocked time of route {route.get('route')} rose {rise}")
    return out


def _blocked_rise(entry: dict[str, Any], total_key: str, threshold: float) -> str | None:
    """How the blocked time of a location or route seen on both sides rose ("from 10 ms to 40 ms
    a minute (+300%)"), None when it did not rise by more than ``threshold`` percent and the
    floor. Per minute where known: the two sessions need not be equally long."""
    if entry["status"] != "both":
        return None
    figs = entry["figures"]
    key, unit = ("per_min_s", " a minute") if "per_min_s" in figs else (total_key, "")
    rate = figs.get(key)
    floor = BLOCKED_FLOOR_PER_MIN_S if key == "per_min_s" else 0.0
    if rate is None or not _rose(rate, threshold) or rate["after"] - rate["before"] < floor:
        return None
    before, after = _value(key, rate["before"]), _value(key, rate["after"])
    return f"from {before} to {after}{unit} ({_pct(rate)})"


def _rose(change: dict[str, Any], threshold: float) -> bool:
    """Whether the figure rose by more than ``threshold`` percent (from 0: any rise)."""
    before, after = change["before"], change["after"]
    if not (_is_number(before) and _is_number(after)) or after <= before:
        return False
    return bool(before <= 0 or (after - before) / before * 100.0 > threshold)


def _pct(change: dict[str, Any]) -> str:
    pct = change.get("change_pct")
    return "new" if pct is None else f"{pct:+.0f}%"


def _where(loc: dict[str, Any]) -> str:
    file = os.path.basename(str(loc.get("file", "?")))
    return f"{file}:{loc.get('line', '?')} in {loc.get('function', '?')}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- rendering ---------------------------------------------------------------------------------

_SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


def render(diff: dict[str, Any]) -> RenderableType:
    """The diff as rich tables."""
    parts: list[RenderableType] = []
    b, a = diff["before"], diff["after"]
    for name, side in (("before", b), ("after", a)):
        seconds = side["duration_s"]
        over = f" over {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
        parts.append(
            Text(f"{name}: {side['file']} ({side['kind']}{over}, {side['findings']} findings)")
        )
    if diff["unrelated"]:
        parts.append(
            Text(f"note: {diff['unrelated']}; comparing what they have in common", style="yellow")
        )
    parts.append(Text())
    parts.append(_findings_table(diff["findings"]))
    loop = diff["loop"]
    if loop is None:
        parts.append(
            Text("\nLoop figures: not compared (a report file without them).", style="dim")
        )
    else:
        parts.append(_loop_table(loop))
        if diff["blocks"]:
            parts.append(_blocks_table(diff["blocks"]))
    for what, key in (("Routes", "route"), ("Processes", "process")):
        if diff[what.lower()]:
            parts.append(_keyed_table(what, key, diff[what.lower()]))
    parts.append(Text())
    if diff["regressions"]:
        parts.append(Text("Regressions:", style="bold red"))
        parts.extend(Text(f"  {line}") for line in diff["regressions"])
    else:
        parts.append(Text(f"No regression (threshold {diff['threshold_pct']:g}%).", style="green"))
    return Group(*parts)


def _findings_table(findings: dict[str, Any]) -> RenderableType:
    table = Table(title="Findings", title_justify="left", expand=False)
    table.add_column("", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("finding", min_width=30)
    table.add_column("evidence, before → after")
    rows = (
        [("new", "bold red", f, "") for f in findings["new"]]
        + [("still", "yellow", f, _evidence(f["evidence"])) for f in findings["still"]]
        + [("fixed", "green", f, "") for f in findings["fixed"]]
    )
    if not rows:
        return Text("Findings: none on either side.", style="green")
    for status, style, f, evidence in rows:
        severity = str(f.get("severity"))
        table.add_row(
            Text(status, style=style),
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            str(f.get("code")),
            str(f.get("title")),
            evidence,
        )
    return table


def _evidence(changes: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.replace('_', ' ')} {_value(k, c['before'])} → {_value(k, c['after'])}"
        for k, c in list(changes.items())[:6]
    )


def _value(key: str, value: Any) -> str:
    if not _is_number(value):
        return "-"
    if key.endswith("_s"):
        return duration(float(value))
    if "share" in key:
        return f"{value * 100:.0f}%"
    return f"{value:g}"


def _loop_table(loop: dict[str, Any]) -> RenderableType:
    table = Table(title="Loop", title_justify="left")
    for name, justify in (
        ("figure", "left"),
        ("before", "right"),
        ("after", "right"),
        ("change", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    names = {
        "lag_p50_s": "lag p50",
        "lag_p99_s": "lag p99",
        "lag_max_s": "lag max",
        "busy_share": "busy",
        "blocks": "blocks",
        "blocked_s": "blocked",
        "blocked_per_min_s": "blocked per minute",
    }
    for key, label in names.items():
        c = loop[key]
        table.add_row(label, _value(key, c["before"]), _value(key, c["after"]), _change_text(c))
    return table


def _change_text(change: dict[str, Any]) -> Text:
    pct = change["change_pct"]
    if pct is None:
        return Text("new" if _is_number(change["after"]) else "-")
    return Text(f"{pct:+.0f}%", style="red" if pct > 0 else "green" if pct < 0 else "")


def _blocks_table(blocks: list[dict[str, Any]]) -> RenderableType:
    table = Table(title="Blocks per location", title_justify="left")
    table.add_column("where", min_width=24)
    table.add_column("", no_wrap=True)
    for col in ("count", "total", "max", "per minute"):
        table.add_column(col, justify="right")
    for block in blocks:
        figs = block["figures"]
        cells = []
        for key in ("count", "total_s", "max_s", "per_min_s"):
            c = figs.get(key)
            cells.append(
                "-" if c is None else f"{_value(key, c['before'])} → {_value(key, c['after'])}"
            )
        status = {"new": "new", "gone": "gone", "both": ""}[block["status"]]
        table.add_row(_where(block.get("location") or {}), status, *cells)
    return table


def _keyed_table(title: str, key: str, items: Iterable[dict[str, Any]]) -> RenderableType:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    table.add_column("figure, before → after")
    for item in items:
        figs = item["figures"]
        table.add_row(
            str(item.get(key)),
            ", ".join(
                f"{k} {_value(k, c['before'])} → {_value(k, c['after'])}" for k, c in figs.items()
            ),
        )
    return table


# -- the command ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffRequest:
    """``diff BEFORE AFTER``."""

    before: Path
    after: Path
    json: bool = False
    fail_on_regression: bool = False
    threshold: float = DEFAULT_THRESHOLD


def run(request: DiffRequest) -> int:
    """Run `loopscope diff`; RecordingError and DiffError reach the caller."""
    if not (request.threshold >= 0 and math.isfinite(request.threshold)):
        raise DiffError("diff: --threshold must be a percentage, 0 or more")
    before, after = load(request.before), load(request.after)
    for side in (before, after):
        if side.damaged is not None:
            say(f"{side.path}: {side.damaged}; comparing what could be read")
    result = compare(before, after, request.threshold)
    if result["unrelated"]:
        say(f"{result['unrelated']}; comparing what they have in common")
    if request.json:
        print(json.dumps(result, indent=2))
    else:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
        console.print(render(result))
    return 1 if request.fail_on_regression and result["regressions"] else 0
