"""Soak: loopscope attached to a loaded server for a long time, recording.

A server (`asyncio.start_server`, plain interpreter, no loopscope in its environment) under a
steady loopback load from a separate process (tests/loaded.py), and a twin server with its own
load that nobody attaches to: the baseline. After a warm-up, `loopscope attach --headless
--record FILE PID --duration S` (the real command, as a user runs it) watches the first server.
Every ``--interval`` seconds this samples from /proc: the RSS of the attached server, of the
baseline, and of the loopscope process, and both loads' answered and failed requests. At the end
it checks that the server is left with the threads and files it had, that the recording opens,
and prints a table and a summary:

- the agent's share of the target's memory: the attached server's RSS minus its own RSS just
  before attaching, less whatever the baseline grew by over the same time;
- the slope of each RSS over the second half of the session (KiB per minute): a leak shows as a
  slope that does not flatten; "helpers" is the RSS of loopscope's child processes (the target's
  own interpreter sampling it from outside, `remote_stacks`);
- failed requests, attached and baseline.

With ``--trace-client N`` the client runs under tracemalloc (N frames a trace), snapshots its
heap every ``--interval`` seconds, and at the end prints the allocation sites that grew most over
the second half: where a slope comes from. tracemalloc's own memory is in the client's RSS then.

    nice .venv/bin/python benchmarks/soak.py [--duration 600] [--interval 10] [--python 3.12]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loaded import LoadedServer, rss_kib
from loopscope.record.reader import Recording
from pythons import find_pythons


def slope_per_minute(times: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times`` (seconds), per minute."""
    if len(times) < 2:
        return 0.0
    return statistics.linear_regression(times, values).slope * 60


def children_rss_kib(pid: int) -> int:
    """The RSS of process ``pid``'s children, together (those that end as they are read, 0)."""
    total = 0
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for child in pids:
            with contextlib.suppress(FileNotFoundError, AssertionError):
                total += rss_kib(int(child))
    return total


# The client under tracemalloc: its argv is the snapshot directory, the seconds between
# snapshots, then loopscope's own arguments.
_TRACED = """
import sys, threading, time, tracemalloc
out, every, frames = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
del sys.argv[1:4]
tracemalloc.start(frames)
def snapshots():
    n = 0
    while True:
        time.sleep(every)
        tracemalloc.take_snapshot().dump(f"{out}/{n:05d}.snap")
        n += 1
threading.Thread(target=snapshots, daemon=True).start()
from loopscope.cli import main
sys.exit(main())
"""


def print_growth(snapshots: list[Path], top: int = 12) -> None:
    """The allocation sites whose memory grew most from the middle snapshot to the last."""
    import tracemalloc

    if len(snapshots) < 2:
        print("tracemalloc: fewer than two snapshots")
        return
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    middle = tracemalloc.Snapshot.load(str(snapshots[len(snapshots) // 2])).filter_traces(keep)
    last = tracemalloc.Snapshot.load(str(snapshots[-1])).filter_traces(keep)
    span = (len(snapshots) - 1 - len(snapshots) // 2) or 1
    total = sum(s.size for s in last.statistics("filename")) / 1024
    print(f"\nclient heap (tracemalloc) at the end: {total:.0f} KiB; grew most, per snapshot "
          f"interval, from the middle snapshot to the last:")  # fmt: skip
    for stat in last.compare_to(middle, "traceback")[:top]:
        if stat.size_diff <= 0:
            break
        print(f"  {stat.size_diff / 1024 / span:+8.1f} KiB {stat.count_diff / span:+8.1f} blocks")
        for frame in list(stat.traceback)[-6:]:
            print(f"      {frame.filename}:{frame.lineno}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds attached")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of load before")
    parser.add_argument("--python", default="3.12", help="the servers' Python version")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--think", type=float, default=0.005, help="seconds between requests")
    parser.add_argument(
        "--trace-client", type=int, default=0, metavar="N",
        help="run the client under tracemalloc with N frames a trace (see above)",
    )  # fmt: skip
    args = parser.parse_args()
    python = find_pythons().get(args.python)
    if python is None:
        sys.exit(f"Python {args.python} is not installed")

    with tempfile.TemporaryDirectory(prefix="loopscope-soak-") as tmp:
        root = Path(tmp)
        (root / "target").mkdir()
        (root / "baseline").mkdir()
        target = LoadedServer(python, root / "target", clients=args.clients, think=args.think)
        baseline = LoadedServer(python, root / "baseline", clients=args.clients, think=args.think)
        client: subprocess.Popen[bytes] | None = None
        try:
            time.sleep(args.warmup)
            fds, threads = target.fds(), target.threads()
            target_before, baseline_before = target.rss_kib(), baseline.rss_kib()
            recording = root / "soak.lsrec"
            log = (root / "loopscope.log").open("wb")
            command = ["attach", "--headless", "--record", str(recording), "--duration",
                       str(args.duration), str(target.pid)]  # fmt: skip
            traces = root / "traces"
            traces.mkdir()
            start = (
                ["-c", _TRACED, str(traces), str(args.interval), str(args.trace_client)]
                if args.trace_client
                else ["-m", "loopscope"]
            )
            client = subprocess.Popen(
                [sys.executable, *start, *command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
            started = time.monotonic()
            print(
                f"Python {args.python} servers, {args.clients} clients each (think "
                f"{args.think * 1000:g} ms); attached for {args.duration:g} s, sampled every "
                f"{args.interval:g} s. RSS in KiB; requests are cumulative since the start."
            )
            header = (
                f"{'t (s)':>6} {'target':>8} {'baseline':>8} {'client':>8} {'helpers':>8} "
                f"{'target ok':>10} {'failed':>6} {'base ok':>10} {'failed':>6}"
            )
            print(header)
            rows: list[tuple[float, int, int, int, int]] = []
            while client.poll() is None:
                now = time.monotonic() - started
                try:
                    client_rss = rss_kib(client.pid)
                    helpers_rss = children_rss_kib(client.pid)
                except (FileNotFoundError, AssertionError):  # it just ended
                    break
                t_stats, b_stats = target.stats(), baseline.stats()
                row = (now, target.rss_kib(), baseline.rss_kib(), client_rss, helpers_rss)
                rows.append(row)
                print(
                    f"{now:6.0f} {row[1]:8d} {row[2]:8d} {row[3]:8d} {row[4]:8d} "
                    f"{t_stats['ok']:10d} {t_stats['failed']:6d} "
                    f"{b_stats['ok']:10d} {b_stats['failed']:6d}",
                    flush=True,
                )
                deadline = started + len(rows) * args.interval
                while client.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
            code = client.wait(timeout=60)
            log.close()
            ended = time.monotonic() - started
            time.sleep(1.0)  # the agent's threads end just after its socket goes
            target_after = target.rss_kib()
            left_threads = target.threads() != threads
            left_fds = target.fds() != fds
            t_final, b_final = target.stop_load(), baseline.stop_load()
            opened = time.perf_counter()
            with Recording.open(recording) as rec:
                info = rec.info
                events = sum(1 for _ in rec.events())
            read_s = time.perf_counter() - opened
            size = recording.stat().st_size
            if args.trace_client:
                print_growth(sorted(traces.glob("*.snap")))
        finally:
            if client is not None and client.poll() is None:
                client.kill()
                client.wait()
            target.close()
            baseline.close()

        second_half = [r for r in rows if r[0] >= ended / 2]
        times = [r[0] for r in second_half]
        last = rows[-1]
        share = (last[1] - target_before) - (last[2] - baseline_before)
        print()
        print(f"loopscope exited with code {code} after {ended:.0f} s")
        print(
            f"target RSS: {target_before} before attaching, {last[1]} at the end "
            f"(+{last[1] - target_before}), {target_after} after detaching; slope over the "
            f"second half {slope_per_minute(times, [r[1] for r in second_half]):+.1f} KiB/min"
        )
        print(
            f"baseline RSS: {baseline_before} -> {last[2]} (+{last[2] - baseline_before}); slope "
            f"{slope_per_minute(times, [r[2] for r in second_half]):+.1f} KiB/min"
        )
        print(f"agent's share of the target's RSS at the end (vs the baseline): {share} KiB")
        print(
            f"client RSS: {rows[0][3]} at the first sample, {last[3]} at the last; slope over "
            f"the second half {slope_per_minute(times, [r[3] for r in second_half]):+.1f} KiB/min"
        )
        print(
            f"helpers' RSS: {rows[0][4]} at the first sample, {last[4]} at the last; slope over "
            f"the second half {slope_per_minute(times, [r[4] for r in second_half]):+.1f} KiB/min"
        )
        print(
            f"requests: target {t_final['ok']} answered, {t_final['failed']} failed (slowest "
            f"{t_final['max_latency'] * 1000:.0f} ms); baseline {b_final['ok']} answered, "
            f"{b_final['failed']} failed (slowest {b_final['max_latency'] * 1000:.0f} ms)"
        )
        print(
            f"recording: {size / 1024:.0f} KiB ({size / 1024 / max(info.duration, 1):.1f} KiB/s), "
            f"{events} events over {info.duration:.0f} s, complete={info.complete}, read back in "
            f"{read_s:.2f} s"
        )
        print(
            "after detach: "
            + ("threads differ; " if left_threads else "same threads; ")
            + ("open files differ" if left_fds else "same open files and sockets")
        )
        ok = code == 0 and t_final["failed"] == 0 and not left_threads and not left_fds
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
