"""Attaching and detaching, again and again, to a server under load: no request fails, and the
server is left with the threads, files and sockets it had, and no growing memory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from capabilities import needs
from clirun import assert_no_loopscope_traceback, loopscope
from loaded import LoadedServer
from loopscope.attach import attach
from loopscope.sources.agent import AgentSource
from pythons import find_pythons

# serial: judges RSS growth and failed requests over many cycles, with the cores to itself
pytestmark = [pytest.mark.timeout(180), needs("ptrace"), pytest.mark.serial]

# 50 injections take about 20 s here (about 0.35 s each: inject, first lag window, detach).
CYCLES = int(os.environ.get("LOOPSCOPE_TEST_ATTACH_CYCLES", "50"))
CLI_CYCLES = 3
# The first injection loads the agent's modules into the target for good (about 5 MiB: its
# code, compiled there); later ones reuse them. What a cycle leaves after that is no Python
# object and, under this load, about 80 KiB of resident memory a cycle over the first 50
# cycles, 22 KiB over the next 50: the allocators' fragmentation, settling (see BENCHMARKS.md,
# benchmarks/attach_residue.py). An agent kept alive by a leak would hold at least its event
# backlog (hundreds of KiB after one lag window of the load), so 45 of them could not fit in
# this bound.
RSS_GROWTH_KIB = 6 * 1024
WARM_CYCLES = 5  # RSS is compared from here: the first cycles load modules and warm caches


def _python() -> str:
    path = find_pythons().get("3.12")
    if path is None:
        pytest.skip("Python 3.12 is not installed")
    return path


def _one_cycle(pid: int) -> None:
    """Inject the agent, read until its first lag window, detach, and wait for it to go."""
    attached = attach(pid, timeout=15)
    assert attached.route is not None, attached.how  # injected: no agent was left listening
    source = AgentSource(attached.socket_path, connect_timeout=5)
    kinds = []
    detached = False
    for event in source.events():
        kinds.append(event.kind)
        # Events come in batches: more lag samples may follow the one that asked to detach.
        if event.kind == "lag" and not detached:
            assert source.detach()
            detached = True
    assert "lag" in kinds and kinds[-1] == "source_state", kinds
    _wait(lambda: not os.path.exists(attached.socket_path), "the agent's socket to go")


def _wait(condition: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_attach_detach_cycles_under_load(tmp_path: Path) -> None:
    server = LoadedServer(_python(), tmp_path)
    try:
        server.wait_for_requests(200)
        fds, threads, maps = server.fds(), server.threads(), server.mappings()
        rss = []
        started = time.monotonic()
        for cycle in range(CYCLES):
            _one_cycle(server.pid)
            # The agent's threads end just after its socket goes.
            _wait(lambda: server.threads() == threads, f"the agent's threads to end ({cycle})")
            assert server.fds() == fds, f"cycle {cycle}: {server.fds()} != {fds}"
            rss.append(server.rss_kib())
        for _ in range(CLI_CYCLES):  # and as a user does it
            out = loopscope(
                "attach", "--headless", "--duration", "0.5", str(server.pid), state=tmp_path
            )
            assert out.returncode == 0, out.stderr
            assert_no_loopscope_traceback(out.stderr)
            assert "its agent removed itself" in out.stderr
            _wait(lambda: server.threads() == threads, "the agent's threads to end (cli)")
            assert server.fds() == fds
        elapsed = time.monotonic() - started
        stats = server.stop_load()
        print(
            f"{CYCLES} + {CLI_CYCLES} cycles in {elapsed:.1f} s; {stats['ok']} requests, "
            f"{stats['failed']} failed, slowest {stats['max_latency'] * 1000:.0f} ms; RSS (KiB) "
            f"{rss[0]} after the first, {rss[min(WARM_CYCLES, CYCLES) - 1]} after "
            f"{WARM_CYCLES}, {rss[-1]} after the last; {server.mappings() - maps} more mappings"
        )
        assert stats["failed"] == 0, stats
        assert stats["ok"] > 1000, stats  # the load really ran through the cycles
        assert rss[-1] - rss[min(WARM_CYCLES, CYCLES) - 1] <= RSS_GROWTH_KIB, rss
        # At most a page mapped per injection (the ptrace route's bootstrap page).
        assert server.mappings() - maps <= 60 + CYCLES, server.mappings() - maps
        assert server.server.poll() is None
    finally:
        server.close()
