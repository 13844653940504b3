"""Detection quality: does loopscope find the problem in each program of the two corpora,
tests/programs/ (plain asyncio) and tests/services/ (FastAPI, Starlette, uvicorn, aiohttp and
anyio services with their own loopback load), and only that problem?

Each program shows one problem (its first line says which family and function) or is a clean
twin that does the same work correctly. In ``run`` mode each runs under ``loopscope run
--headless --json`` for ``--duration`` seconds; in ``attach`` mode it is started as ``python
PROGRAM`` and loopscope attaches to it for as long. A problem counts as found when a finding of
its family names its function (recall); any finding of severity warning or above that the
program does not expect counts against precision (a program may name families its problem also
shows as: ``# also: gc``). Programs marked ``# expect: skip REASON`` are listed, not judged.

    .venv/bin/python benchmarks/detection.py [--duration 8] [--only race,duplicate]
        [--corpus programs|services|all] [--mode run|attach|both] [--python PATH ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from detection import (
    PROGRAMS,
    SERVICES,
    Expectation,
    Verdict,
    judge,
    program_findings,
    programs,
)

ATTACH_SETTLE_S = 1.5  # the program's loop is running by then (imports of a web stack included)


def _loopscope(args: list[str], duration: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        capture_output=True,
        text=True,
        timeout=duration + 90,
    )


def run(expect: Expectation, duration: float, python: str, mode: str) -> tuple[Verdict | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "program.log"
        if mode == "run":
            result = _loopscope(
                [
                    "run",
                    "--python",
                    python,
                    "--headless",
                    "--duration",
                    str(duration),
                    "--json",
                    "--log",
                    str(log),
                    str(expect.path),
                ],
                duration,
            )
        else:
            result = _attach(expect, duration, python, log)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return None, lines[-1] if lines else f"exit {result.returncode}"
    findings = program_findings(json.loads(result.stdout), expect.path)
    titles = "; ".join(
        f"{f['code']} {f['severity']} {(f.get('location') or {}).get('function', '-')}"
        for f in findings
    )
    return judge(expect, findings), titles


def _attach(
    expect: Expectation, duration: float, python: str, log: Path
) -> subprocess.CompletedProcess[str]:
    with log.open("wb") as out:
        program = subprocess.Popen(
            [python, str(expect.path)],
            cwd=expect.path.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        time.sleep(ATTACH_SETTLE_S)
        return _loopscope(
            [
                "attach",
                "--headless",
                "--children",
                "--duration",
                str(duration),
                "--json",
                str(program.pid),
            ],
            duration,
        )
    finally:
        for sig, grace in ((signal.SIGINT, 3.0), (signal.SIGKILL, 3.0)):
            if program.poll() is not None:
                break
            os.killpg(program.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                program.wait(grace)


def _version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per program")
    parser.add_argument("--only", default="", help="comma-separated families (and 'clean')")
    parser.add_argument("--corpus", choices=("programs", "services", "all"), default="all")
    parser.add_argument("--mode", choices=("run", "attach", "both"), default="run")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        help="the interpreter the programs run on (repeat for several; default: this one)",
    )
    parser.add_argument("--programs", default="", help="comma-separated program names only")
    args = parser.parse_args()
    only = {f for f in args.only.split(",") if f}
    names = {n for n in args.programs.split(",") if n}
    folders = {"programs": [PROGRAMS], "services": [SERVICES], "all": [PROGRAMS, SERVICES]}
    chosen = [
        e
        for folder in folders[args.corpus]
        for e in programs(folder)
        if (not only or (e.family or "clean") in only) and (not names or e.name in names)
    ]
    modes = ("run", "attach") if args.mode == "both" else (args.mode,)
    pythons = [os.path.abspath(p) for p in args.python] or [sys.executable]

    # (corpus, family) -> found flags; (corpus, mode, python) columns
    table: dict[tuple[str, str], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    noisy: dict[tuple[str, str], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    columns = [(mode, _version(py), py) for mode in modes for py in pythons]
    for mode, version, python in columns:
        column = f"{mode} {version}"
        print(f"== {column}")
        print(f"{'program':<30} {'expects':<36} {'result':<8} findings")
        for expect in chosen:
            corpus = expect.path.parent.name
            wanted = "clean" if expect.family is None else f"{expect.family} {expect.function}"
            if expect.skip is not None:
                print(f"{expect.name:<30} {'-':<36} {'skipped':<8} {expect.skip}")
                continue
            started = time.monotonic()
            verdict, titles = run(expect, max(args.duration, expect.seconds), python, mode)
            took = time.monotonic() - started
            family = expect.family or "clean"
            if verdict is None:
                print(f"{expect.name:<30} {wanted:<36} {'FAILED':<8} {titles}")
                table[(corpus, family)][column].append(False)
                continue
            table[(corpus, family)][column].append(verdict.found)
            noisy[(corpus, family)][column].append(bool(verdict.false_positives))
            result = "ok" if verdict.ok else ("missed" if not verdict.found else "fp")
            extra = f"  false positives: {', '.join(verdict.false_positives)}" * bool(
                verdict.false_positives
            )
            print(f"{expect.name:<30} {wanted:<36} {result:<8} {titles}{extra}  ({took:.0f} s)")
        print()

    heads = [f"{m} {v}" for m, v, _ in columns]
    print("recall: problems named with the right family and function (found/programs);")
    print("false positives: programs with a warning-or-worse finding they do not expect")
    print(f"{'corpus':<10} {'family':<12} " + " ".join(f"{h:>16}" for h in heads))
    for key in sorted(table):
        corpus, family = key
        cells = []
        for h in heads:
            flags = table[key][h]
            fps = sum(noisy[key][h])
            if family == "clean":
                cells.append(f"{len(flags) - fps}/{len(flags)} clean")
            else:
                cells.append(f"{sum(flags)}/{len(flags)}" + (f" fp{fps}" if fps else ""))
        print(f"{corpus:<10} {family:<12} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
