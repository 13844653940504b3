"""`loopscope report FILE --html OUT`: a recording as one self-contained HTML page.

Everything is inline (CSS, SVG charts; no script, no font, no URL), so the file opens offline and
can be attached to a ticket: the target, the loop's figures, the findings with their evidence and
fix, the lag over time, the blocking stacks as a flame graph, blocks per location, and the
per-route and per-process figures when the recording has them.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from loopscope import __version__
from loopscope.figures import LagSample, Totals, figures, program_argv, program_name
from loopscope.model.flame import FlameNode
from loopscope.report import duration, evidence_line
from loopscope.rules.finding import Finding
from loopscope.session import View
from loopscope.tui._format import short_path

_CHART_W, _CHART_H, _CHART_PAD = 960, 220, 48
_FLAME_W, _FLAME_ROW = 960, 20
_FLAME_MAX_DEPTH = 40
_MAX_POINTS = 600

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1d2330; background: #f6f7f9; }
main { max-width: 1000px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.dim { color: #5d6678; } code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace;
  font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 14px; }
.card { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 8px 14px; }
.card b { display: block; font-size: 18px; } .card span { color: #5d6678; font-size: 12px; }
.finding { background: #fff; border: 1px solid #dde1e8; border-left: 5px solid #8a94a6;
  border-radius: 6px; padding: 10px 14px; margin: 10px 0; }
.finding.error { border-left-color: #c62828; } .finding.warning { border-left-color: #e0a800; }
.finding.info { border-left-color: #1e88e5; }
.sev { font-weight: 700; text-transform: uppercase; font-size: 12px; margin-right: 6px; }
.error .sev { color: #c62828; } .warning .sev { color: #a67c00; } .info .sev { color: #1e88e5; }
.fix { margin-top: 6px; } .fix b { color: #2e7d32; }
details pre { white-space: pre-wrap; max-height: 300px; overflow: auto; background: #f2f4f7;
  padding: 8px; border-radius: 4px; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border: 1px solid #dde1e8; padding: 4px 8px; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; display: block; }
svg text { font: 11px ui-monospace, Menlo, Consolas, monospace; }
.legend span { display: inline-block; margin-right: 14px; }
.sw { display: inline-block; width: 12px; height: 3px; vertical-align: middle; margin-right: 4px; }
footer { margin-top: 30px; color: #5d6678; font-size: 12px; }
"""

_FLAME_COLOURS = {
    "root": "#9aa5b8",
    "app": "#f28e2b",
    "folded": "#c9d3e0",
    "marker": "#e15759",
}


def render(
    view: View,
    totals: Totals,
    *,
    source: str,
    recorded: str = "",
    notes: Sequence[str] = (),
) -> str:
    """The whole page. ``source``: the file the data came from; ``recorded``: a line saying
    what the file holds; ``notes``: warnings to show (a damaged file...)."""
    snapshot = view.snapshot
    figs = figures(snapshot, totals.lag, totals.routes)
    target = snapshot.target
    cwd = target.cwd if target is not None else ""
    argv = program_argv(target.argv) if target is not None else []
    program = " ".join([short_path(argv[0], cwd), *argv[1:]]) if argv else "(unknown program)"
    name = (program_name(target.argv) if target is not None else None) or source
    title = f"loopscope report: {name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="mono" id="program">{_e(program)}</div>',
        _target_line(view, source, recorded),
    ]
    parts.extend(f'<p class="dim">note: {_e(n)}</p>' for n in notes)
    parts.append(_cards(figs, len(view.findings)))
    parts.append(_findings(view.findings, cwd))
    parts.append("<h2>Lag over time</h2>")
    parts.append(_lag_chart(totals.lag.series))
    parts.append("<h2>Blocking stacks</h2>")
    parts.append(_flame(totals.blocks.root, cwd))
    parts.append(_blocks_table(figs["blocks"]))
    for heading, key in (("Routes", "routes"), ("Processes", "processes")):
        if figs.get(key):
            parts.append(f"<h2>{heading}</h2>")
            parts.append(_generic_table(figs[key]))
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    parts.append(f"<footer>loopscope {_e(__version__)}, {_e(generated)}</footer>")
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _target_line(view: View, source: str, recorded: str) -> str:
    s = view.snapshot
    bits = []
    if s.target is not None:
        bits.append(f"pid {s.target.pid}")
        bits.append(f"Python {s.target.python}")
    loops = {loop.loop_class.rsplit(".", 1)[-1] for loop in s.loops}
    if loops:
        bits.append(", ".join(sorted(loops)))
    bits.append(f"{s.duration_s:.1f} s observed")
    if s.exited is not None:
        bits.append(s.exited.describe())
    bits.append(f"from {source}")
    if recorded:
        bits.append(recorded)
    return f'<p class="dim" id="target">{_e(" · ".join(bits))}</p>'


def _cards(figs: dict[str, Any], findings: int) -> str:
    lag, blocked = figs["lag"], figs["blocked"]
    busy = figs["busy_share"]
    cards = [
        ("lag p50", duration(lag["p50_s"])),
        ("lag p99", duration(lag["p99_s"])),
        ("lag max", duration(lag["max_s"])),
        ("busy", "-" if busy is None else f"{busy * 100:.0f}%"),
        ("blocks", str(blocked["count"])),
        ("blocked", duration(blocked["total_s"]) if blocked["count"] else "0"),
        ("findings", str(findings)),
    ]
    inner = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
    return f'<div class="cards" id="figures">{inner}</div>'


def _findings(findings: Sequence[Finding], cwd: str) -> str:
    out = [f"<h2>Findings ({len(findings)})</h2>"]
    if not findings:
        out.append("<p>No findings.</p>")
    for f in findings:
        where = ""
        if f.location is not None:
            file = short_path(f.location.file, cwd)
            where = (
                f'<div class="mono dim">{_e(file)}:{f.location.line} in '
                f"{_e(f.location.function)}</div>"
            )
        evidence = evidence_line(f)
        rest = {k: v for k, v in f.evidence.items() if isinstance(v, (list, tuple, dict))}
        details = ""
        if rest:
            text = json.dumps(rest, indent=1, default=str)[:20_000]
            details = f"<details><summary>more evidence</summary><pre>{_e(text)}</pre></details>"
        out.append(
            f'<section class="finding {_e(f.severity)}">'
            f'<div><span class="sev">{_e(f.severity)}</span><b>{_e(f.code)}</b> {_e(f.title)}</div>'
            f"{where}"
            + (f'<div class="dim">{_e(evidence)}</div>' if evidence else "")
            + details
            + (f'<div class="fix"><b>fix:</b> {_e(f.fix)}</div>' if f.fix else "")
            + "</section>"
        )
    return "\n".join(out)


def _downsample(series: Sequence[LagSample]) -> list[LagSample]:
    if len(series) <= _MAX_POINTS:
        return list(series)
    step = math.ceil(len(series) / _MAX_POINTS)
    out = []
    for i in range(0, len(series), step):
        chunk = series[i : i + step]
        out.append(LagSample(chunk[-1].t, max(c.p99 for c in chunk), max(c.max for c in chunk)))
    return out


def _nice_top(value: float) -> float:
    """A round number at or above ``value`` for an axis' top."""
    if value <= 0:
        return 0.001
    exp = 10.0 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= value:
            return m * exp
    return 10 * exp  # pragma: no cover


def _lag_chart(series: Sequence[LagSample]) -> str:
    points = _downsample(series)
    if len(points) < 2:
        return (
            '<p class="dim" id="lag-chart">No lag was measured (the agent\'s lag collector '
            "reports every 250 ms).</p>"
        )
    t0, t1 = points[0].t, points[-1].t
    span = max(t1 - t0, 1e-9)
    top = _nice_top(max(p.max for p in points))
    w, h, pad = _CHART_W, _CHART_H, _CHART_PAD
    inner_w, inner_h = w - pad - 12, h - 24 - 30

    def x(t: float) -> float:
        return pad + (t - t0) / span * inner_w

    def y(v: float) -> float:
        return 12 + inner_h - min(v, top) / top * inner_h

    out = [
        f'<svg id="lag-chart" viewBox="0 0 {w} {h}" width="100%" role="img">'
        "<title>Lag over time</title>"
    ]
    for i in range(5):
        v = top * i / 4
        yy = y(v)
        out.append(
            f'<line x1="{pad}" y1="{yy:.1f}" x2="{w - 12}" y2="{yy:.1f}" stroke="#e6e9ef"/>'
            f'<text x="{pad - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#5d6678">'
            f"{_e(duration(v) if v else '0')}</text>"
        )
    for i in range(6):
        t = t0 + span * i / 5
        at = f"{t - t0:.1f}" if span < 20 else f"{t - t0:.0f}"
        anchor = "end" if i == 5 else "start" if i == 0 else "middle"
        out.append(
            f'<text x="{x(t):.1f}" y="{h - 10}" text-anchor="{anchor}" fill="#5d6678">{at} s</text>'
        )
    for attr, colour in (("max", "#e15759"), ("p99", "#4e79a7")):
        coords = " ".join(f"{x(p.t):.1f},{y(getattr(p, attr)):.1f}" for p in points)
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{coords}"/>'
        )
    out.append("</svg>")
    out.append(
        '<div class="legend dim"><span><i class="sw" style="background:#e15759"></i>max per '
        'window</span><span><i class="sw" style="background:#4e79a7"></i>p99 per window</span>'
        "<span>(the agent's windows of about 250 ms)</span></div>"
    )
    return "".join(out)


def _flame(root: FlameNode, cwd: str) -> str:
    if root.weight <= 0:
        return '<p id="flame">No blocks: nothing held the loop for 20 ms or more.</p>'
    rows: list[str] = []
    depth = min(root.depth, _FLAME_MAX_DEPTH)
    height = depth * _FLAME_ROW + 4
    scale = _FLAME_W / root.weight

    def draw(node: FlameNode, x0: float, level: int) -> None:
        width = node.weight * scale
        if width < 0.5 or level >= _FLAME_MAX_DEPTH:
            return
        yy = level * _FLAME_ROW + 2
        share = node.weight / root.weight * 100
        tip = f"{node.label} — {duration(node.weight)} ({share:.1f}%)"
        if node.kind == "app" and node.file:
            tip += f"\n{short_path(node.file, cwd)}:{node.line}"
        elif node.kind == "folded":
            tip += "\n(library and standard library frames, folded)"
        colour = _FLAME_COLOURS.get(node.kind, "#c9d3e0")
        chars = int((width - 6) / 6.6)
        text = ""
        if chars >= 3:
            label = node.label if len(node.label) <= chars else node.label[: chars - 1] + "…"
            text = f'<text x="{x0 + 3:.1f}" y="{yy + 14}">{_e(label)}</text>'
        rows.append(
            f'<g class="frame {node.kind}"><title>{_e(tip)}</title>'
            f'<rect x="{x0:.1f}" y="{yy}" width="{max(width - 1, 0.5):.1f}" '
            f'height="{_FLAME_ROW - 2}" rx="2" fill="{colour}"/>{text}</g>'
        )
        cx = x0
        for child in node.sorted_children():
            draw(child, cx, level + 1)
            cx += child.weight * scale

    draw(root, 0.0, 0)
    return (
        f'<svg id="flame" viewBox="0 0 {_FLAME_W} {height}" width="100%" role="img">'
        f"<title>Blocking stacks, weighted by time blocked</title>{''.join(rows)}</svg>"
        '<p class="dim">Every block\'s sampled stacks, outermost call at the top, each as wide '
        "as the time it blocked the loop. Orange: the application's code; grey: library and "
        "standard library frames, folded. Hover for the time and the file.</p>"
    )


def _blocks_table(blocks: Sequence[dict[str, Any]]) -> str:
    if not blocks:
        return ""
    out = [
        "<h2>Blocks per location</h2>",
        '<table id="blocks"><tr><th>where</th><th>cause</th><th class="n">count</th>'
        '<th class="n">total</th><th class="n">max</th><th class="n">per minute</th></tr>',
    ]
    for b in blocks:
        loc = b["location"]
        out.append(
            f'<tr><td class="mono">{_e(os.path.basename(loc["file"]))}:{loc["line"]} in '
            f'{_e(loc["function"])}</td><td>{_e(b["cause"])}</td><td class="n">{b["count"]}'
            f'</td><td class="n">{_e(duration(b["total_s"]))}</td><td class="n">'
            f'{_e(duration(b["max_s"]))}</td><td class="n">{_e(duration(b["per_min_s"]))}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def _generic_table(items: Sequence[dict[str, Any]]) -> str:
    """Rows of per-route or per-process figures: a column per key."""
    keys: list[str] = []
    for item in items:
        keys.extend(k for k in item if k not in keys)
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    rows = []
    for item in items:
        cells = []
        for k in keys:
            v = item.get(k)
            if isinstance(v, float) and k.endswith("_s"):
                cells.append(f'<td class="n">{_e(duration(v))}</td>')
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<td class="n">{_e(f"{v:g}")}</td>')
            else:
                cells.append(f"<td>{_e('' if v is None else v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"
