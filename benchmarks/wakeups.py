"""How often each thread of the target wakes up, and its CPU, at a fixed load.

Starts the server of ``benchmarks/overhead.py`` plain or under the agent (a client reading
every event), waits ``--settle`` seconds, then for ``--seconds`` idle and for ``--seconds`` at
``--rate`` requests/s (open loop) reads each thread's voluntary and involuntary context
switches (``/proc/PID/task/TID/status``) and CPU time (``schedstat``). A voluntary switch is a
wait: in ``select()`` for the loop thread, for the GIL or a timer for the agent's threads. The
loop thread is the first row; the agent's threads follow in the order they were started
(server, watchdog, race scanner).

    python benchmarks/wakeups.py                      # the agent beside this script
    python benchmarks/wakeups.py --plain
    python benchmarks/wakeups.py --agent-dir /tmp/before/src/loopscope/agent
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OVERHEAD = HERE / "overhead.py"


def _threads(pid: int) -> dict[int, tuple[int, int, int]]:
    """tid -> (voluntary switches, involuntary switches, CPU nanoseconds)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                cpu = int(f.read().split()[0])
        except (OSError, ValueError):
            continue  # exited meanwhile
        out[int(tid)] = (
            int(fields["voluntary_ctxt_switches"]),
            int(fields["nonvoluntary_ctxt_switches"]),
            cpu,
        )
    return out


def _phase(pid: int, port: int, rate: int, args: argparse.Namespace) -> None:
    before = _threads(pid)
    started = time.perf_counter()
    answered = 0
    if rate:
        load = subprocess.run(
            [sys.executable, str(OVERHEAD), "--role", "load", "--port", str(port), "--rate",
             str(rate), "--seconds", str(args.seconds), "--warmup", "0", "--conns", "32"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        answered = json.loads(load.stdout.strip().splitlines()[-1])["answered"]
    else:
        time.sleep(args.seconds)
    span = time.perf_counter() - started
    after = _threads(pid)
    print(f"{'idle' if not rate else f'{rate}/s'}: {answered} answered over {span:.1f} s")
    for tid in sorted(after):
        if tid not in before:
            continue
        (v0, n0, c0), (v1, n1, c1) = before[tid], after[tid]
        row = (
            f"  {'loop' if tid == pid else 'thread'} {tid}: wake-ups {(v1 - v0) / span:7.1f}/s"
            f"  preempted {(n1 - n0) / span:7.1f}/s  CPU {(c1 - c0) / 1e6 / span:7.2f} ms/s"
        )
        if answered:
            row += f"  {(c1 - c0) / 1e3 / answered:.2f} us/request"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", action="store_true", help="no agent")
    parser.add_argument("--agent-dir", help="an agent package directory (default: this one's)")
    parser.add_argument("--collectors", help="$LOOPSCOPE_COLLECTORS for the agent")
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from loopscope.runner import launcher_path
    from loopscope.sources.agent import AgentSource

    tmp = tempfile.TemporaryDirectory(prefix="loopscope-wakeups-")
    socket_path = os.path.join(tmp.name, "agent.sock")
    env = dict(os.environ, LOOPSCOPE_SOCKET=socket_path)
    env.pop("LOOPSCOPE_COLLECTORS", None)
    if args.collectors:
        env["LOOPSCOPE_COLLECTORS"] = args.collectors
    launcher = Path(args.agent_dir) / "_launch.py" if args.agent_dir else launcher_path()
    prefix = [sys.executable] if args.plain else [sys.executable, str(launcher)]
    target = subprocess.Popen(
        [*prefix, str(OVERHEAD), "--role", "target"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    assert target.stdout is not None and target.stdin is not None
    try:
        port = int(target.stdout.readline())
        if not args.plain:
            source = AgentSource(socket_path, alive=lambda: target.poll() is None)
            threading.Thread(target=lambda: all(True for _ in source.events()), daemon=True).start()
        time.sleep(args.settle)
        print(f"load average {os.getloadavg()[0]:.1f}; {'plain' if args.plain else launcher}")
        _phase(target.pid, port, 0, args)
        _phase(target.pid, port, args.rate, args)
    finally:
        target.stdin.close()
        target.wait(30)
        tmp.cleanup()


if __name__ == "__main__":
    main()
