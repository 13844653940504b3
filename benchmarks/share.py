"""What `report --html` and `diff` cost, beside the text report, on short and 1-hour recordings.

The blocking demo and its fixed variant are recorded for ``--seconds`` each (``loopscope demo
... --headless --record``); each recording is then repeated, times shifted, to fill an hour (as
benchmarks/recording.py does). For each length: the text report (`replay_all`), the HTML report
(the same read plus every lag window and block folded, and the page written) with its size, and
the diff of the two.

    .venv/bin/python benchmarks/share.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from recording import hour_long

from loopscope import figures, report_html
from loopscope.commands import diff
from loopscope.record.reader import Recording
from loopscope.replay import replay_all


def record(fixed: bool, seconds: float, d: Path) -> Path:
    out = d / ("fixed.lsrec" if fixed else "blocking.lsrec")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "loopscope",
            "demo",
            "blocking",
            *(["--fixed"] if fixed else []),
            "--headless",
            "--duration",
            str(seconds),
            "--record",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, XDG_STATE_HOME=str(d)),
    )
    return out


def timed(f: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = f()
    return time.perf_counter() - start, result


def text_report(path: Path) -> None:
    with Recording.open(path) as rec:
        replay_all(rec)


def html_report(path: Path, out: Path) -> int:
    with Recording.open(path) as rec:
        view, totals = figures.read_recording(rec)
    out.write_text(report_html.render(view, totals, source=path.name), encoding="utf-8")
    return out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        short = (record(False, args.seconds, d), record(True, args.seconds, d))
        hours = []
        for path in short:
            sub = d / path.stem
            sub.mkdir()
            hours.append(hour_long(path, sub))
        print(
            f"{'recording':<22} {'events':>8} {'MB':>6} {'report':>8} {'--html':>8} "
            f"{'page KB':>8} {'diff':>8}"
        )
        for label, (before, after) in ((f"{args.seconds:g} s", short), ("1 hour", tuple(hours))):
            with Recording.open(before) as rec:
                events = rec.info.count
            size = before.stat().st_size / 1e6
            t_text, _ = timed(lambda p=before: text_report(p))
            t_html, page = timed(lambda p=before: html_report(p, d / "page.html"))
            t_diff, _ = timed(lambda b=before, a=after: diff.compare(diff.load(b), diff.load(a)))
            print(
                f"{label + ' (blocking demo)':<22} {events:>8,} {size:>6.1f} {t_text:>7.2f}s "
                f"{t_html:>7.2f}s {page / 1024:>8.0f} {t_diff:>7.2f}s"
            )


if __name__ == "__main__":
    main()
