"""Many workers at once: `loopscope serve`'s CPU and memory per process followed, the time of a
/metrics scrape, the agent's cost in each worker, and the dashboard's CPU with the process list.

A supervisor (multiprocessing, spawn) runs N workers, each a small asyncio service: a ticker
every 5 ms and a 30 ms block every 2 s. For each N of ``--workers`` (side by side in one run):
the workers' CPU over a window without loopscope; then `loopscope serve --children` attaches to
all of them, and over the same window: serve's CPU (share of one core) and resident memory,
each worker's CPU again (the agent's cost is the difference), and ``--scrapes`` scrapes of
/metrics (wall time, size). Then the dashboard (Textual, headless) follows the same workers
with the process list on screen, and this process's CPU share is measured over the window.

    .venv/bin/python benchmarks/fleet.py [--workers 1,16] [--window 15] [--scrapes 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from loopscope.fleet._procs import descendants

SUPERVISOR = r"""
import asyncio, multiprocessing as mp, sys, time


async def serve():
    next_block = time.monotonic() + 2.0
    while True:
        await asyncio.sleep(0.005)
        sum(range(200))
        if time.monotonic() >= next_block:
            next_block += 2.0
            end = time.perf_counter() + 0.03
            while time.perf_counter() < end:
                pass


def worker():
    asyncio.run(serve())


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=worker) for _ in range(int(sys.argv[1]))]
    for w in workers:
        w.start()
    while all(w.is_alive() for w in workers):
        time.sleep(0.1)
"""

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def workers_of(supervisor: int) -> list[int]:
    out = []
    for pid in descendants(supervisor):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def wait_for(what: str, probe: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def cpu_share(pids: list[int], window: float) -> list[float]:
    before = [cpu_seconds(p) for p in pids]
    time.sleep(window)
    return [(cpu_seconds(p) - b) / window for p, b in zip(pids, before, strict=True)]


def dashboard_cpu(supervisor: int, n: int, window: float) -> float:
    """The share of a core this process takes while the dashboard follows the ``n`` workers of
    ``supervisor`` with the process list on screen (Textual headless, 160x48)."""
    import asyncio

    from loopscope.fleet.follow import Children
    from loopscope.fleet.views import FleetViews
    from loopscope.session import Session
    from loopscope.sources.base import ListSource
    from loopscope.tui.app import LoopscopeApp

    children = Children(supervisor, log=lambda message: None)
    children.start()
    main = Session(ListSource([]))  # the supervisor runs no loop: only its children show
    main.feed_all()
    views = FleetViews(main, supervisor, "supervisor", children)

    def looping() -> bool:
        return sum(1 for m in children.fleet.members() if m.has_loop) == n

    async def run() -> float:
        app = LoopscopeApp(views)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("p")
            await pilot.pause(2.0)
            before = time.process_time()
            await pilot.pause(window)
            return (time.process_time() - before) / window

    try:
        wait_for(f"the dashboard to attach to {n} workers", looping)
        return asyncio.run(run())
    finally:
        children.close()


def measure(n: int, window: float, scrapes: int, where: Path) -> dict[str, float]:
    script = where / "supervisor.py"
    script.write_text(SUPERVISOR)
    supervisor = subprocess.Popen([sys.executable, str(script), str(n)], cwd=where)
    serve = None
    try:
        wait_for(f"{n} workers", lambda: len(workers_of(supervisor.pid)) == n)
        workers = workers_of(supervisor.pid)
        time.sleep(1.0)  # past the workers' start-up
        bare = cpu_share(workers, window)
        port = free_port()
        serve = subprocess.Popen(
            [sys.executable, "-m", "loopscope", "serve", "--children",
             "--listen", f"127.0.0.1:{port}", str(supervisor.pid)],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"

        def all_live() -> bool:
            try:
                health = json.loads(get(f"{base}/healthz"))
            except OSError:
                return False
            live = [t for t in health["targets"] if t["loop"]]
            return len(live) == n

        started = time.monotonic()
        wait_for(f"serve to attach to {n} workers", all_live)
        attach_s = time.monotonic() - started
        time.sleep(2.0)  # past the attaches
        serve_before = cpu_seconds(serve.pid)
        with_agent = cpu_share(workers, window)
        serve_cpu = (cpu_seconds(serve.pid) - serve_before) / window
        rss = rss_mib(serve.pid)
        serve.send_signal(signal.SIGTERM)  # before the dashboard attaches in its turn
        serve.wait(60)
        serve = None
        tui_cpu = dashboard_cpu(supervisor.pid, n, window)
        serve = subprocess.Popen(
            [sys.executable, "-m", "loopscope", "serve", "--children",
             "--listen", f"127.0.0.1:{port}", str(supervisor.pid)],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(f"serve to attach to {n} workers again", all_live)
        time.sleep(2.0)
        times, size = [], 0
        for _ in range(scrapes):
            t0 = time.perf_counter()
            body = get(f"{base}/metrics")
            times.append(time.perf_counter() - t0)
            size = len(body)
            time.sleep(0.1)
        return {
            "workers": n,
            "attach_all_s": attach_s,
            "serve_cpu": serve_cpu,
            "serve_cpu_per_process": serve_cpu / n,
            "serve_rss_mib": rss,
            "scrape_ms_median": statistics.median(times) * 1000,
            "scrape_ms_max": max(times) * 1000,
            "metrics_kib": size / 1024,
            "worker_cpu_bare": statistics.mean(bare),
            "worker_cpu_with_agent": statistics.mean(with_agent),
            "tui_cpu": tui_cpu,
        }
    finally:
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
        for pid in descendants(supervisor.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        supervisor.kill()
        supervisor.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,16")
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.workers.split(",")):
            rows.append(measure(n, args.window, args.scrapes, Path(tmp)))
    head = (
        "workers  attach all  serve CPU  per process  serve RSS  scrape median/max  "
        "/metrics  worker CPU bare -> with agent  dashboard CPU"
    )
    print(head)
    for r in rows:
        print(
            f"{r['workers']:>7}  {r['attach_all_s']:>8.1f} s  {r['serve_cpu'] * 100:>7.1f} %"
            f"  {r['serve_cpu_per_process'] * 100:>9.2f} %  {r['serve_rss_mib']:>5.0f} MiB"
            f"  {r['scrape_ms_median']:>6.1f} / {r['scrape_ms_max']:>5.1f} ms"
            f"  {r['metrics_kib']:>4.0f} KiB"
            f"  {r['worker_cpu_bare'] * 100:>6.1f} % -> {r['worker_cpu_with_agent'] * 100:.1f} %"
            f"  {r['tui_cpu'] * 100:>10.1f} %"
        )


if __name__ == "__main__":
    main()
