"""Reading a 3.14+ target's tasks from outside: the target's own interpreter with
``_remote_debugging`` (loopscope's `RemoteTasksSource`) beside a py-spy dump of its threads.

For each Python (3.14, 3.15: in another root, see tests/pythons.py) and each task count, a target
holds that many pending tasks (each in a 3-deep coroutine chain, waiting on a sleep) and runs a
1 ms heartbeat that records the longest gap between its runs (the stall). Measured over
``--passes`` passes: the time one pass of the helper takes to read every task and its await chain
(median / max), how long a `py-spy dump` of the same process takes, and the target's longest
stall while each reads it (the load's own is the `none` row).

    .venv/bin/python benchmarks/remote_tasks.py [--passes 20] [--tasks 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loopscope.attach import inspect
from loopscope.sources.pyspy import find_pyspy
from loopscope.sources.remote_tasks import helper_argv
from pythons import find_pythons

TARGET = r"""
import asyncio, json, os, sys, time

stall = 0.0


async def leaf():
    await asyncio.sleep(3600)


async def middle():
    await leaf()


async def top():
    await middle()


def heartbeat(loop, due):
    global stall
    stall = max(stall, time.perf_counter() - due)
    loop.call_later(0.001, heartbeat, loop, time.perf_counter() + 0.001)


async def main():
    global stall
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(top()) for _ in range(int(sys.argv[1]))]
    await asyncio.sleep(0.2)
    heartbeat(loop, time.perf_counter())
    done = loop.create_future()

    def on_stdin():
        global stall
        line = os.read(0, 100)
        if not line:
            done.set_result(None)
            loop.remove_reader(0)
        elif line.startswith(b"reset"):
            stall = 0.0
            print("{}", flush=True)
        else:
            print(json.dumps({"stall": stall}), flush=True)

    loop.add_reader(0, on_stdin)
    print("{}", flush=True)
    await done


asyncio.run(main())
"""


def ask(proc: subprocess.Popen[bytes], command: str) -> dict[str, float]:
    assert proc.stdin is not None and proc.stdout is not None
    if command:
        proc.stdin.write(command.encode() + b"\n")
        proc.stdin.flush()
    readable, _, _ = select.select([proc.stdout], [], [], 60)
    assert readable, "the target did not answer"
    return json.loads(proc.stdout.readline())  # type: ignore[no-any-return]


def helper_passes(pid: int, passes: int) -> list[float]:
    argv = helper_argv(inspect(pid), 0.05)
    assert argv is not None
    helper = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert helper.stdout is not None and helper.stdin is not None
    took = []
    for line in helper.stdout:
        took.append(float(json.loads(line)["took"]))
        if len(took) == passes:
            break
    helper.stdin.close()  # the helper's signal to end
    helper.stdout.read()
    helper.stdout.close()
    helper.wait()
    return took


def pyspy_dumps(pid: int, passes: int) -> list[float]:
    pyspy = find_pyspy()
    assert pyspy is not None
    took = []
    for _ in range(passes):
        started = time.perf_counter()
        subprocess.run([pyspy, "dump", "--pid", str(pid)], capture_output=True, check=True)
        took.append(time.perf_counter() - started)
    return took


def row(version: str, n: int, reader: str, took: list[float], stall: float) -> str:
    text = f"{statistics.median(took) * 1e3:.1f} / {max(took) * 1e3:.1f}" if took else "-"
    return f"{version:<8}{n:<8}{reader:<12}{text:<26}{stall * 1e3:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--tasks", default="100,1000,10000")
    parser.add_argument("--pythons", default="3.14,3.15")
    args = parser.parse_args()
    print(f"{'python':<8}{'tasks':<8}{'reader':<12}{'one pass ms (median / max)':<26}stall ms")
    for version in args.pythons.split(","):
        python = find_pythons().get(version)
        if python is None:
            print(f"{version:<8}(not installed)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "tasks.py"
            script.write_text(TARGET)
            for n in map(int, args.tasks.split(",")):
                env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
                proc = subprocess.Popen(
                    [python, str(script), str(n)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                try:
                    ask(proc, "")
                    for reader in ("none", "helper", "py-spy"):
                        ask(proc, "reset")
                        if reader == "helper":
                            took = helper_passes(proc.pid, args.passes)
                        elif reader == "py-spy":
                            took = pyspy_dumps(proc.pid, args.passes)
                        else:
                            time.sleep(1.0)
                            took = []
                        stall = ask(proc, "stall")["stall"]
                        print(row(version, n, reader, took, stall), flush=True)
                finally:
                    proc.kill()
                    proc.communicate()


if __name__ == "__main__":
    main()
