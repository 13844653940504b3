"""Attaching to a loop that is never idle (tests/programs/saturation_cpu.py: a hundred requests
always in flight). Such a loop calls select() many times a second and takes the GIL straight
back each time, so other threads of the process get it only at moments up to a second apart:
the agent is loaded on the loop's own thread, and detaching waits for its threads to stop."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from capabilities import needs
from clirun import assert_no_loopscope_traceback, loopscope

pytestmark = [pytest.mark.timeout(120), needs("ptrace")]

PROGRAM = Path(__file__).resolve().parents[1] / "programs" / "saturation_cpu.py"
DURATION_S = 3.0
INJECT_WITHIN_MS = 5000


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


@pytest.fixture
def saturated() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, str(PROGRAM)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20.0
        while _cpu_seconds(proc.pid) < 0.5:  # its loop is running, and busy
            assert proc.poll() is None, "the program exited"
            assert time.monotonic() < deadline, "the program did not get going"
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_attach_and_detach_a_loop_that_is_never_idle(
    saturated: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    started = time.monotonic()
    out = loopscope(
        "attach", "--headless", "--duration", f"{DURATION_S:g}", "--json",
        str(saturated.pid), state=tmp_path / "state",
    )  # fmt: skip
    took = time.monotonic() - started
    print(f"attach, {DURATION_S:g} s watched, detach: {took:.1f} s")
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert "its agent removed itself" in out.stderr
    # Loading the agent takes a fraction of a second (the loop held meanwhile); from a thread
    # starved of the GIL it took 10-15 s, or timed out.
    injected = re.search(r"agent injected with \S+ in (\d+) ms", out.stderr)
    assert injected is not None, out.stderr
    assert int(injected.group(1)) < INJECT_WITHIN_MS, out.stderr
    report = json.loads(out.stdout)
    assert report["duration_s"] >= DURATION_S - 0.5  # watched, not spent injecting
    assert saturated.poll() is None  # the program goes on
