"""What one read of a 3.10-3.13 target's stack costs `_unwind` (`remote_stacks`'s reader there).

A target of the given interpreter runs a loop that alternates a regular expression and a burn
(9 frames deep, 3.10: 8). The same interpreter, as `remote_stacks` runs it, learns the layout,
then reads the target's main thread stack ``--reads`` times in a row; the report gives the time
to learn the layout and the mean time per read, for each interpreter given.

    .venv/bin/python benchmarks/unwind_reads.py [--reads 500] [PYTHON ...]

Without PYTHON: every 3.10-3.13 interpreter tests/pythons.py finds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pythons import find_pythons

SOURCES = Path(__file__).resolve().parents[1] / "src" / "loopscope" / "sources"

TARGET = r"""
import asyncio, re, time
PATTERN = re.compile(r"(a+)+$")
def check_input(n):
    return PATTERN.match("a" * n + "b")
def burn():
    end = time.perf_counter() + 0.06
    while time.perf_counter() < end:
        pass
async def main():
    print("ready", flush=True)
    while True:
        await asyncio.sleep(0.1)
        check_input(22)
        burn()
asyncio.run(main())
"""

READER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import _unwind
start = time.perf_counter()
unwinder = _unwind.RemoteUnwinder(int(sys.argv[2]))
learned = time.perf_counter() - start
reads = int(sys.argv[3])
depth = len(unwinder.get_stack_trace()[0].frame_info)
start = time.perf_counter()
for _ in range(reads):
    unwinder.get_stack_trace()
each = (time.perf_counter() - start) / reads
print(f"{sys.version.split()[0]:<10} {learned * 1000:8.1f} ms {each * 1e6:8.1f} us  {depth}")
"""


def measure(python: str, reads: int) -> str:
    target = subprocess.Popen([python, "-c", TARGET], stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None and target.stdout.readline() == "ready\n"
        out = subprocess.run(
            [python, "-I", "-S", "-c", READER, str(SOURCES), str(target.pid), str(reads)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        return out.stdout.strip() if out.returncode == 0 else f"{python}: {out.stderr.strip()}"
    finally:
        target.kill()
        target.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("pythons", nargs="*", help="interpreters (default: 3.10-3.13 found)")
    args = parser.parse_args()
    found = find_pythons()
    pythons = args.pythons or [p for v in ("3.10", "3.11", "3.12", "3.13") if (p := found[v])]
    if not pythons:
        sys.exit("no Python 3.10-3.13 found")
    print(f"{'python':<10} {'learning':>11} {'per read':>11}  frames")
    for python in pythons:
        print(measure(python, args.reads))


if __name__ == "__main__":
    main()
