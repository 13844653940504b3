"""Following child processes: `loopscope run` follows a program's multiprocessing workers with
every start method, `attach --children` a supervisor's; real programs, real workers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clirun import assert_no_loopscope_traceback, log_path_from, loopscope
from loopscope.fleet._procs import descendants

pytestmark = pytest.mark.timeout(120)

# Workers whose loops block in `busy_in_child`: one that exits after 4 s, one that lives, one
# started 4.5 s later; and a process pool's worker, which runs no loop. (Attaching takes up to a
# second or two on a loaded machine: the short one must be seen before it exits, the late one
# before the run ends.)
PROGRAM = r"""
import asyncio, multiprocessing as mp, os, sys, time
from concurrent.futures import ProcessPoolExecutor


def busy_in_child():
    end = time.thread_time() + 0.05  # CPU, not wall time: a loaded machine stretches it
    while time.thread_time() < end:
        pass


async def serve(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.02)
        busy_in_child()


def worker(seconds):
    asyncio.run(serve(seconds))


def pool_pid():
    return os.getpid()


if __name__ == "__main__":
    print("main ran in", os.getpid(), flush=True)
    ctx = mp.get_context(sys.argv[1])
    short = ctx.Process(target=worker, args=(4.0,))
    first = ctx.Process(target=worker, args=(60.0,))
    short.start()
    first.start()
    print("short worker", short.pid, flush=True)
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        print("pool worker", pool.submit(pool_pid).result(), flush=True)
        time.sleep(4.5)
        late = ctx.Process(target=worker, args=(60.0,))
        late.start()
        print("late worker", late.pid, flush=True)
        while first.is_alive():  # a supervisor's watch, in Python: attachable at any time
            time.sleep(0.1)
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("children") / "workers.py"
    path.write_text(PROGRAM)
    return path


def _pid_in_log(log: str, what: str) -> int:
    found = re.search(rf"^{what} (\d+)$", log, re.MULTILINE)
    assert found, log
    return int(found.group(1))


def _blocking_functions(process: dict[str, Any]) -> list[str]:
    """The functions its blocking findings name (on a loaded machine a block may also go
    unsampled: a blocking finding without a function)."""
    return [
        f["location"]["function"]
        for f in process["findings"]
        if f["code"] == "LS101" and f["location"] is not None
    ]


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_run_follows_the_workers_of_every_start_method(
    program: Path, method: str, tmp_path: Path
) -> None:
    out = loopscope(
        "run", "--headless", "--duration", "9", "--json", str(program), method,
        state=tmp_path, cwd=program.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    log = log_path_from(out.stderr).read_text()
    # The launcher ran the program's main once: never again in a spawned child.
    assert log.count("main ran in") == 1, log
    report = json.loads(out.stdout)
    processes = {p["pid"]: p for p in report["processes"]}
    short, late = _pid_in_log(log, "short worker"), _pid_in_log(log, "late worker")
    pool = _pid_in_log(log, "pool worker")
    looping = [p for p in processes.values() if p["loop"]]
    assert {short, late} <= {p["pid"] for p in looping}, report["processes"]
    assert len(looping) == 3, report["processes"]
    for p in looping:
        assert p["process"] == "workers"
        # Its own agent: a forked child also holds its parent's listening agent socket.
        assert p["target"]["pid"] == p["pid"]
        assert "busy_in_child" in _blocking_functions(p), p
    assert processes[short]["state"] == "gone"
    # The pool's worker runs no loop, and is listed as such.
    assert processes[pool]["loop"] is False
    # The summary lines name each process.
    assert f"pid {late} workers:" in out.stderr


def test_every_process_goes_into_one_recording(program: Path, tmp_path: Path) -> None:
    recording = tmp_path / "workers.lsrec"
    out = loopscope(
        "run", "--headless", "--duration", "5", "--record", str(recording), str(program),
        "spawn", state=tmp_path, cwd=program.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    main_pid = int(re.search(r"\(pid (\d+)\)", out.stderr).group(1))  # type: ignore[union-attr]

    out = loopscope("report", "--json", str(recording), state=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["target"]["pid"] == main_pid
    looping = [p for p in report["processes"] if p["findings"]]
    assert len(looping) >= 2, report["processes"]
    for p in looping:
        assert p["target"]["pid"] == p["pid"]  # each child's own events, its own hello
        assert "busy_in_child" in _blocking_functions(p), p
    child = looping[0]["pid"]
    # The block every worker shares is one finding across processes, with all their pids.
    across = [
        f
        for f in report["across_processes"]
        if f["family"] == "blocking" and (f["location"] or {}).get("function") == "busy_in_child"
    ]
    assert len(across) == 1, report["across_processes"]
    assert {p["pid"] for p in looping} <= set(across[0]["pids"]), across

    out = loopscope("report", "--json", "--pid", str(child), str(recording), state=tmp_path)
    assert out.returncode == 0, out.stderr
    alone = json.loads(out.stdout)
    assert alone["target"]["pid"] == child and "processes" not in alone

    out = loopscope("report", str(recording), state=tmp_path)
    assert f"child process {child}: " in out.stdout
    times = f"\u00d7{len(across[0]['pids'])}"
    assert re.search(rf"{times} .*busy_in_child.*\(pids .*{child}", out.stdout), out.stdout

    trace = tmp_path / "child.json"
    out = loopscope(
        "export", str(recording), "--format", "perfetto", "-o", str(trace), "--pid", str(child),
        state=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    slices = [e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]
    assert slices and {e["pid"] for e in slices} == {child}

    everyone = tmp_path / "all.json"
    out = loopscope(
        "export", str(recording), "--format", "perfetto", "-o", str(everyone), state=tmp_path
    )
    assert out.returncode == 0, out.stderr
    trace_events = json.loads(everyone.read_text())["traceEvents"]
    blocked = {e["pid"] for e in trace_events if e["ph"] == "X" and e["cat"] == "block"}
    assert {p["pid"] for p in looping} <= blocked  # every worker's blocks, side by side
    names = {e["pid"] for e in trace_events if e["ph"] == "M" and e["name"] == "process_name"}
    assert {main_pid, *(p["pid"] for p in looping)} <= names
    assert min(e["ts"] for e in trace_events if "ts" in e) >= 0  # one clock for all

    out = loopscope("report", "--pid", "1", str(recording), state=tmp_path)
    assert out.returncode == 2
    assert "holds no child process 1 (the child processes it holds: " in out.stderr


def test_no_children_follows_none(program: Path, tmp_path: Path) -> None:
    out = loopscope(
        "run", "--headless", "--duration", "2", "--json", "--no-children", str(program), "spawn",
        state=tmp_path, cwd=program.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert "processes" not in report
    assert "agent injected" not in out.stderr


@pytest.fixture
def supervisor(program: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, str(program), "spawn"],
        cwd=program.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while len(descendants(proc.pid)) < 3:  # the tracker, two workers
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.05)
    yield proc
    for pid in descendants(proc.pid):
        subprocess.run(["kill", "-9", str(pid)], check=False)
    proc.kill()
    proc.wait()


def test_attach_to_a_supervisor_suggests_children_then_follows_them(
    supervisor: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pid = supervisor.pid
    out = loopscope("attach", "--headless", "--duration", "1", "--json", str(pid), state=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"no asyncio event loop is running in process {pid}, but its Python children" in (
        out.stderr
    )
    assert f"loopscope attach --children {pid}" in out.stderr

    out = loopscope(
        "attach", "--headless", "--duration", "4", "--json", "--children", str(pid),
        state=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    processes: list[dict[str, Any]] = json.loads(out.stdout)["processes"]
    looping = [p for p in processes if p["loop"]]
    assert len(looping) >= 2, processes
    assert all(p["process"] == "workers" for p in looping)
    assert any(p["process"] == "resource_tracker" and p["state"] == "no loop" for p in processes)
    assert "detached from process" in out.stderr


def test_children_without_a_terminal_needs_headless(tmp_path: Path) -> None:
    out = loopscope("attach", "--children", "1", state=tmp_path)
    assert out.returncode == 2
    assert "the dashboard needs a terminal; use --headless" in out.stderr
