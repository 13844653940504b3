"""A session's figures and findings as text: one summary line, rich text, or JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from loopscope.model import RECENT_SECONDS
from loopscope.rules.finding import Finding
from loopscope.session import View

_SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


def duration(seconds: float | None) -> str:
    """A short human duration: "0.4ms", "52ms", "1.25s", "-" for none."""
    if seconds is None:
        return "-"
    if seconds < 0.010:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s"


def summary_line(view: View) -> str:
    """One line: time, lag (last 10 s), live tasks, blocks (with those of the last 10 s)."""
    s = view.snapshot
    lag = s.lag
    recent = int(RECENT_SECONDS)
    parts = [
        f"{s.duration_s:.1f}s lag p50 {duration(lag.p50)} p99 {duration(lag.p99)} "
        f"max {duration(lag.max)}",
        f"tasks {s.tasks.total}",
        f"blocks {s.blocks.count} (+{s.blocks.recent_count} in {recent}s)",
    ]
    if view.findings:
        parts.append(f"findings {len(view.findings)}")
    if s.exited is not None:
        parts.append(s.exited.describe())
    return " | ".join(parts)


def render_findings(view: View) -> RenderableType:
    """Each finding: severity, code, title; its key evidence on one line; where; the fix."""
    if not view.findings:
        return Text("No findings.", style="green")
    parts: list[RenderableType] = []
    for i, f in enumerate(view.findings):
        if i:
            parts.append(Text())
        head = Text()
        head.append(f"{f.severity.upper()} ", style=_SEVERITY_STYLE.get(f.severity, "bold"))
        head.append(f"{f.code} ", style="bold")
        head.append(f.title)
        parts.append(head)
        evidence = evidence_line(f)
        if evidence:
            parts.append(Text(f"  {evidence}", style="dim"))
        if f.location is not None:
            where = f"  at {f.location.file}:{f.location.line} in {f.location.function}"
            parts.append(Text(where, style="dim"))
        if f.fix:
            fix = Text("  fix: ", style="bold green")
            fix.append(f.fix)
            parts.append(fix)
    return Group(*parts)


def evidence_line(finding: Finding) -> str:
    """The finding's scalar evidence, formatted by what its names say it is."""
    items = []
    for key, value in finding.evidence.items():
        if value is None or isinstance(value, (list, tuple, dict)) or key.endswith("_t"):
            continue
        items.append(_evidence_item(key, value))
    return ", ".join(items)


def _evidence_item(key: str, value: Any) -> str:
    name = key.replace("_", " ")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} {value}"
    if key.endswith("_s"):
        return f"{name[:-2]} {duration(float(value))}"
    if key.endswith("share") or key.startswith("share"):
        return f"{name} {value * 100:.0f}%"
    if isinstance(value, float):
        return f"{name} {value:g}"
    return f"{name} {value}"


def report_json(view: View) -> dict[str, Any]:
    """The `loopscope report --json` object: target, duration_s, findings."""
    s = view.snapshot
    target = (
        None
        if s.target is None
        else {
            "pid": s.target.pid,
            "python": s.target.python,
            "executable": s.target.executable,
            "argv": list(s.target.argv),
        }
    )
    return {
        "target": target,
        "duration_s": round(s.duration_s, 3),
        "findings": [f.to_json() for f in view.findings],
    }
