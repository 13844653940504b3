"""loopscope beside the anchors that live on Python 3.14/3.15, on one loaded program.

The target (Debian unstable's 3.15 and 3.14, in another root: see tests/pythons.py) is an asyncio
line server on loopback with three faults: `blocking_checksum` burns ~60 ms on the loop every
``BLOCK_EVERY``th request, every request takes `shared_lock` (an asyncio.Lock held 8 ms, so the
load's connections queue on it) and leaves a `leaked_waiter` task behind that never ends. A
separate process sends it a bounded, paced load over loopback.

Each tool runs for one window of ``--window`` seconds beside the load; the tool's own command is
the target's interpreter run inside the target's root (nsenter into its mount namespace and
root), except loopscope, which runs on the host and reaches into the root itself. Recorded:

- names: whether the tool's output names the blocking function (`blocking_checksum`), the lock
  (`shared_lock`, or a task waiting in `Lock.acquire`) and the leak (`leaked_waiter`);
- CPU/request: the target's utime+stime (/proc/PID/stat) over the window per request served,
  relative to the window with no tool (the `none` row) of the same target;
- first data: seconds from starting the tool to its first line of output that names a function
  of the target (for tools that print only at the end, that is when they end).

One-shot tools (`asyncio ps/pstree`, `sgrud dump` without -n) are run once a second through the
window, as a user watching would.

    .venv/bin/python benchmarks/anchors.py [--window 6] [--rate 100]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pythons import find_pythons, missing_reason, sid_root

REPO = Path(__file__).resolve().parents[1]
BLOCK_EVERY = 100
SGRUD_PATH = "/opt/sgrud"  # inside the Debian root: sgrud's wheels, unpacked (see BENCHMARKS.md)

TARGET = r"""
import asyncio, os, sys, time

BLOCK_EVERY = int(sys.argv[1])
shared_lock = asyncio.Lock()
served = 0
leaked = []


def blocking_checksum(data):
    end = time.perf_counter() + 0.06
    total = 0
    while time.perf_counter() < end:
        for byte in data:
            total = (total * 31 + byte) & 0xFFFFFFFF
    return total


async def leaked_waiter(event):
    await event.wait()


async def update_under_lock():
    async with shared_lock:
        await asyncio.sleep(0.008)


async def handle(reader, writer):
    global served
    while line := await reader.readline():
        served += 1
        if served % BLOCK_EVERY == 0:
            blocking_checksum(line * 64)
        await update_under_lock()
        leaked.append(asyncio.get_running_loop().create_task(leaked_waiter(asyncio.Event())))
        writer.write(b"ok\n")
        await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
"""

LOAD = r"""
import asyncio, sys, time

port, rate, seconds, connections = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), 4
done = 0


async def client(index):
    global done
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    interval = connections / rate
    start = time.perf_counter() + index * interval / connections
    sent = 0
    while True:
        due = start + sent * interval
        if due - start > seconds or sent >= rate * seconds:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        writer.write(b"payload\n")
        await writer.drain()
        await reader.readline()
        sent += 1
        done += 1
    writer.close()


async def main():
    await asyncio.gather(*(client(i) for i in range(connections)))
    print(done, flush=True)


asyncio.run(main())
"""


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def in_root(pid: int, version: str, *args: str) -> list[str]:
    """The target's interpreter, run inside the target's root (as its wrapper runs it)."""
    return [
        "nsenter",
        "-t",
        str(pid),
        "-m",
        "-r",
        "--wd=/",
        "env",
        f"PYTHONPATH={SGRUD_PATH}",
        f"/usr/bin/python{version}",
        *args,
    ]


def tools(pid: int, version: str, window: float) -> dict[str, tuple[list[str], bool]]:
    """name -> (argv, repeated once a second)."""
    seconds = str(int(window))
    found: dict[str, tuple[list[str], bool]] = {}
    if version == "3.15":
        sampling = ("-m", "profiling.sampling", "attach", "-d", seconds, "-l", "40")
        found["profiling.sampling attach"] = (in_root(pid, version, *sampling, str(pid)), False)
        found["profiling.sampling --async-aware"] = (
            in_root(pid, version, *sampling, "--async-aware", "--async-mode", "all", str(pid)),
            False,
        )
        found["profiling.sampling --live (tmux)"] = (
            in_root(
                pid,
                version,
                "-m",
                "profiling.sampling",
                "attach",
                "--live",
                "-d",
                seconds,
                str(pid),
            ),
            False,
        )
        found["sgrud dump (1/s)"] = (in_root(pid, version, "-m", "sgrud", "dump", str(pid)), True)
        found["sgrud profile --mode async"] = (
            in_root(
                pid, version, "-m", "sgrud", "profile", "-d", seconds, "--mode", "async", str(pid)
            ),
            False,
        )
    if version == "3.14":
        found["asyncio ps (1/s)"] = (in_root(pid, version, "-m", "asyncio", "ps", str(pid)), True)
        found["asyncio pstree (1/s)"] = (
            in_root(pid, version, "-m", "asyncio", "pstree", str(pid)),
            True,
        )
    found["loopscope attach --headless"] = (
        [
            str(REPO / ".venv/bin/loopscope"),
            "attach",
            "--headless",
            "--duration",
            seconds,
            "--json",
            str(pid),
        ],
        False,
    )
    return found


NAMES = {
    "blocking": re.compile(r"blocking_checksum"),
    "lock": re.compile(r"shared_lock|Lock\.acquire|locks\.py.*\bacquire\b"),
    "leak": re.compile(r"leaked_waiter"),
}
TARGET_FUNCTION = re.compile(r"blocking_checksum|update_under_lock|leaked_waiter|handle")


def run_in_tmux(argv: list[str], window: float) -> tuple[str, float | None, str]:
    """A terminal tool (--live) in a detached tmux session, its screen read every 0.25 s."""
    session = f"anchors-{os.getpid()}"
    start = time.perf_counter()
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "60", shlex.join(argv)],
        check=True,
    )
    screens: list[str] = []
    first: float | None = None
    try:
        while time.perf_counter() - start < window:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            screens.append(screen)
            if first is None and TARGET_FUNCTION.search(screen):
                first = time.perf_counter() - start
            time.sleep(0.25)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    return "".join(screens), first, ""


def run_tool(argv: list[str], repeated: bool, window: float) -> tuple[str, float | None, str]:
    """Runs the tool through the window: (its output, seconds to first useful line, error)."""
    if "--live" in argv:
        if shutil.which("tmux") is None:
            return "", None, "--live needs a terminal and tmux is not installed"
        return run_in_tmux(argv, window)
    start = time.perf_counter()
    output: list[str] = []
    first: float | None = None
    error = ""
    runs = 0
    while True:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        deadline = start + window + 30
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if first is None and TARGET_FUNCTION.search(line):
                first = time.perf_counter() - start
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            error = (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:150]
            output.append(err)
        runs += 1
        if not repeated or time.perf_counter() - start >= window:
            break
        time.sleep(max(0.0, start + runs - time.perf_counter()))
    return "".join(output), first, error


def measure(version: str, python: str, window: float, rate: float) -> list[dict[str, object]]:
    target = subprocess.Popen(
        [python, "-c", TARGET, str(BLOCK_EVERY)], stdout=subprocess.PIPE, text=True
    )
    rows: list[dict[str, object]] = []
    try:
        assert target.stdout is not None
        port = int(target.stdout.readline())
        pid = target.pid
        for name, (argv, repeated) in [("none", ([], False)), *tools(pid, version, window).items()]:
            load = subprocess.Popen(
                [sys.executable, "-c", LOAD, str(port), str(rate), str(window)],
                stdout=subprocess.PIPE,
                text=True,
            )
            before = cpu_ticks(pid)
            if argv:
                output, first, error = run_tool(argv, repeated, window)
            else:
                output, first, error = "", None, ""
            served = int(load.communicate()[0] or 0)
            used = cpu_ticks(pid) - before
            per_request = used * 1000 / os.sysconf("SC_CLK_TCK") / max(served, 1)
            rows.append(
                {
                    "python": version,
                    "tool": name,
                    "served": served,
                    "cpu_ms_per_request": per_request,
                    "first_data_s": first,
                    "names": {what: bool(rx.search(output)) for what, rx in NAMES.items()}
                    if argv
                    else {},
                    "error": error,
                    "output": output[-4000:],
                }
            )
            print(f"{version} {name}: {rows[-1]['names']} {error}", file=sys.stderr, flush=True)
    finally:
        target.kill()
        target.wait()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--raw", help="write every tool's output (JSON) here")
    args = parser.parse_args()
    pythons = find_pythons()
    rows: list[dict[str, object]] = []
    for version in ("3.15", "3.14"):
        python = pythons.get(version)
        if python is None:
            print(f"skipped: {missing_reason(version)}")
            continue
        if not (sid_root() / SGRUD_PATH.lstrip("/") / "sgrud").is_dir() and version == "3.15":
            print(f"note: sgrud is not unpacked in {sid_root()}{SGRUD_PATH}; its rows will fail")
        rows += measure(version, python, args.window, args.rate)
    if args.raw:
        Path(args.raw).write_text(json.dumps(rows, indent=1))
    print(
        f"{'python':7} {'tool':36} {'blocking':9} {'lock':5} {'leak':5} "
        f"{'CPU/req':>8} {'first data s':>12}  error"
    )
    base: dict[object, float] = {}
    for row in rows:
        cost = float(row["cpu_ms_per_request"])  # type: ignore[arg-type]
        if row["tool"] == "none":
            base[row["python"]] = cost
        relative = cost / base[row["python"]] if base.get(row["python"]) else float("nan")
        names = row["names"]
        marks = [
            ("yes" if names.get(k) else "no") if names else "-"  # type: ignore[union-attr]
            for k in ("blocking", "lock", "leak")
        ]
        first = row["first_data_s"]
        print(
            f"{row['python']:7} {row['tool']:36} {marks[0]:9} {marks[1]:5} {marks[2]:5} "
            f"{relative:7.2f}x {'-' if first is None else f'{first:.1f}':>12}  {row['error']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
