"""The demo service and its load generator, without loopscope: bounded load over loopback,
latency figures. (Each scenario's damage, and none where it is fixed, is checked on the runs of
test_demo_findings.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from loopscope.demos import catalog


def service(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "loopscope.demos.service", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - started


def summary(stdout: str) -> re.Match[str]:
    match = re.search(
        r"load generator done: (\d+) requests in [\d.]+ s, (\d+) errors, "
        r"p50 ([\d.]+) ms, p99 ([\d.]+) ms",
        stdout,
    )
    assert match, stdout
    return match


def test_race_oversells_and_the_load_generator_says_so() -> None:
    result, took = service("race", "--duration", "3", "--every", "1")
    assert result.returncode == 0, result.stderr
    done = summary(result.stdout)
    assert int(done.group(1)) > 50 and int(done.group(2)) == 0
    assert float(done.group(3)) <= float(done.group(4))
    assert took < 30  # bounded in time: it ends on its own
    # Periodic lines while the load runs, then the totals per endpoint.
    assert len(re.findall(r"^load +[\d.]+s: \d+ requests", result.stdout, re.M)) >= 1
    assert re.search(r"^  POST /buy +\d+ requests, p50", result.stdout, re.M)
    oversold = re.search(r"damage: OVERSOLD (\d+) units", result.stdout)
    assert oversold and int(oversold.group(1)) > 0, result.stdout


def test_fixed_race_sells_what_it_has() -> None:
    result, _ = service("race", "--fixed", "--duration", "3")
    assert result.returncode == 0, result.stderr
    summary(result.stdout)
    assert "OVERSOLD" not in result.stdout
    sold = re.search(r"damage: stock right: (\d+) sold, stock fell by (\d+)", result.stdout)
    assert sold and sold.group(1) == sold.group(2) and int(sold.group(1)) > 0, result.stdout


def test_load_is_bounded_in_count() -> None:
    result, _ = service("blocking", "--fixed", "--max-requests", "40", "--duration", "60")
    assert result.returncode == 0, result.stderr
    assert int(summary(result.stdout).group(1)) == 40


def test_load_is_bounded_in_rate() -> None:
    result, _ = service("race", "--fixed", "--rate", "20", "--duration", "2")
    assert result.returncode == 0, result.stderr
    assert 5 <= int(summary(result.stdout).group(1)) <= 2 * 20 + 1


def test_load_generator_talks_only_to_loopback() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopscope.demos.loadgen",
            "race",
            "--host",
            "192.0.2.1",
            "--port",
            "80",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "only talks to loopback" in result.stderr


def test_unknown_scenario() -> None:
    result, _ = service("nosuchdemo")
    assert result.returncode == 2
    assert f"the demos are: {catalog.names()}" in result.stderr
