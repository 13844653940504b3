"""Detection quality: does loopscope find the problem in each program of tests/programs/, and
only that problem?

Each program shows one problem (its first line says which family and function) or is a clean
twin that does the same work correctly. Each runs under ``loopscope run --headless --json`` for
``--duration`` seconds; a problem counts as found when a finding of its family names its
function, and any finding of severity warning or above that the program does not expect is a
false positive (a program may name families its problem also shows as: ``# also: gc``).

    .venv/bin/python benchmarks/detection.py [--duration 8] [--only race,duplicate]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from detection import Expectation, Verdict, judge, programs


def run(expect: Expectation, duration: float) -> tuple[Verdict | None, str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "loopscope",
                "run",
                "--headless",
                "--duration",
                str(duration),
                "--json",
                "--log",
                str(Path(tmp) / "program.log"),
                str(expect.path),
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
        took = time.monotonic() - started
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1:][0] if result.stderr else "", took
    findings = json.loads(result.stdout)["findings"]
    titles = "; ".join(f"{f['code']} {f['severity']}" for f in findings)
    return judge(expect, findings), titles, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per program")
    parser.add_argument("--only", default="", help="comma-separated families (and 'clean')")
    args = parser.parse_args()
    only = {f for f in args.only.split(",") if f}
    chosen = [e for e in programs() if not only or (e.family or "clean") in only]

    print(f"{'program':<28} {'expects':<34} {'result':<8} findings")
    found: dict[str, list[bool]] = defaultdict(list)
    false_positives = 0
    clean_runs = 0
    for expect in chosen:
        verdict, titles, took = run(expect, max(args.duration, expect.seconds))
        wanted = "clean" if expect.family is None else f"{expect.family} {expect.function}"
        if expect.also:
            wanted += f" (also {', '.join(sorted(expect.also))})"
        if verdict is None:
            print(f"{expect.name:<28} {wanted:<34} {'FAILED':<8} {titles}")
            if expect.family is not None:
                found[expect.family].append(False)
            continue
        if expect.family is None:
            clean_runs += 1
        else:
            found[expect.family].append(verdict.found)
        false_positives += len(verdict.false_positives)
        result = "ok" if verdict.ok else ("missed" if not verdict.found else "fp")
        extra = f"  false positives: {', '.join(verdict.false_positives)}" * bool(
            verdict.false_positives
        )
        print(f"{expect.name:<28} {wanted:<34} {result:<8} {titles}{extra}  ({took:.0f} s)")

    print()
    print(f"{'family':<14} {'programs':>8} {'found':>6} {'recall':>7}")
    total = hits = 0
    for family in sorted(found):
        n, k = len(found[family]), sum(found[family])
        total, hits = total + n, hits + k
        print(f"{family:<14} {n:>8} {k:>6} {k / n:>7.0%}")
    if total:
        print(f"{'all':<14} {total:>8} {hits:>6} {hits / total:>7.0%}")
    print(
        f"false positives (warning or above, not expected): {false_positives} "
        f"over {len(chosen)} programs ({clean_runs} clean)"
    )


if __name__ == "__main__":
    main()
