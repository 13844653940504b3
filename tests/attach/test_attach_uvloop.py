"""uvloop on Python 3.14 and 3.15: `loopscope run` of a uvloop program, and `attach` to one by
every injection route, then detach. The interpreters are Debian unstable's, in another root (see
tests/pythons.py); uvloop is PyPI's wheel for them, which `make pythons` unpacks in that root
(the root has no pip). uvloop's loop is C code: no Python selector, no Python `run_forever`
frame, its own task factory and exception handler slots. The agent's lag, blocks and task census
must work on it, and detach must leave the loop and asyncio as they were."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attach_targets import PlainTarget

from capabilities import needs, route_params
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.agent.events import Block, Census, Hello, Lag, LoopStarted
from loopscope.events import Event
from loopscope.record.reader import Recording
from pythons import find_pythons, missing_reason, uvloop_missing_reason, uvloop_path

pytestmark = pytest.mark.timeout(120)

WAITERS = 20

# A uvloop program driven on stdin: a ticker, a handler that blocks the loop for 40 ms every
# 250 ms, and WAITERS tasks queued on an asyncio.Lock that another task holds. `state` says what
# loopscope could have left behind; `ping` that the loop still runs.
SERVICE = r"""
import asyncio, json, os, sys, threading, time
sys.path.insert(0, UVLOOP)
import uvloop

ORIGINAL = (asyncio.events._set_running_loop, asyncio._set_running_loop)


def say(**message):
    print(json.dumps(message), flush=True)


def render_report():
    end = time.thread_time() + 0.04  # CPU, not wall time: a loaded machine stretches it
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


async def ticker():
    while True:
        await asyncio.sleep(0.005)


async def blocker():
    while True:
        await asyncio.sleep(0.25)
        render_report()


async def hold(lock, held):
    async with lock:
        held.set()
        await asyncio.Event().wait()


async def wait_for_lock(lock):
    async with lock:
        pass


async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    lock, held = asyncio.Lock(), asyncio.Event()
    tasks = [asyncio.create_task(ticker()), asyncio.create_task(blocker()),
             asyncio.create_task(hold(lock, held))]
    await held.wait()
    tasks += [asyncio.create_task(wait_for_lock(lock)) for _ in range(WAITERS)]
    buffer = b""

    def on_stdin():
        nonlocal buffer
        data = os.read(0, 4096)
        if not data:
            done.set_result(None)
            loop.remove_reader(0)
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            cmd = line.decode().strip()
            if cmd == "state":
                say(
                    loop=f"{type(loop).__module__}.{type(loop).__qualname__}",
                    threads=sorted(t.name for t in threading.enumerate()),
                    main_names=sorted(n for n in vars(sys.modules["__main__"]) if "loopscope" in n),
                    maps="loopscope" in open("/proc/self/maps").read(),
                    set_running_loop=[asyncio.events._set_running_loop is ORIGINAL[0],
                                      asyncio._set_running_loop is ORIGINAL[1]],
                    task_factory=repr(loop.get_task_factory()),
                    exception_handler=repr(loop.get_exception_handler()),
                    tasks=len(asyncio.all_tasks(loop)),
                )
            elif cmd == "ping":
                say(pong=True)
            elif cmd == "exit":
                done.set_result(None)

    loop.add_reader(0, on_stdin)
    say(ready=True)
    await done
    for task in tasks:
        task.cancel()


uvloop.run(main())
"""

# What the program says before loopscope comes, and must say again after it went.
AS_IT_WAS = {
    "loop": "uvloop.Loop",
    "threads": ["MainThread"],
    "main_names": [],
    "maps": False,
    "set_running_loop": [True, True],
    "task_factory": "None",
    "exception_handler": "None",
    "tasks": 3 + WAITERS + 1,  # and main()
}


def _uvloop(version: str) -> str:
    """The directory of uvloop inside the root, or skip saying why there is none."""
    if find_pythons().get(version) is None:
        pytest.skip(missing_reason(version))
    path = uvloop_path(version)
    if path is None:
        pytest.skip(uvloop_missing_reason(version))
    return path


@pytest.fixture(scope="module", params=["3.14", "3.15"], ids=lambda v: f"py{v}")
def target_python(request: pytest.FixtureRequest) -> str:
    """Overrides conftest's: only the Pythons that run in the Debian root, with its uvloop."""
    version: str = request.param
    _uvloop(version)
    python = find_pythons()[version]
    assert python is not None
    return python


def _version(python: str) -> str:
    return Path(python).name.removeprefix("python")


@pytest.fixture(scope="module")
def target(target_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainTarget]:
    source = SERVICE.replace("UVLOOP", repr(_uvloop(_version(target_python)))).replace(
        "WAITERS", str(WAITERS)
    )
    t = PlainTarget(target_python, tmp_path_factory.mktemp("uvloop"), source=source)
    try:
        assert t.read() == {"ready": True}, t.stderr()
        assert t.ask("state") == AS_IT_WAS
        yield t
    finally:
        t.close()


def _of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def _assert_agent_saw_uvloop(events: list[Event], version: str) -> None:
    """The agent's collectors on the uvloop loop: lag, blocks (named), the task census."""
    hello = _of(events, Hello)
    assert hello and hello[0].python.startswith(version + ".")
    started = _of(events, LoopStarted)
    assert [s.loop_class for s in started] == ["uvloop.Loop"]
    assert {"lag", "blocks", "census", "lifecycle"} <= set(started[0].features)
    # No Python selector to wrap: said to be unavailable, not silently missing.
    assert "utilisation" not in started[0].features
    assert any(u.startswith("utilisation") for u in started[0].unavailable)

    lags = _of(events, Lag)
    assert sum(lag.count for lag in lags) > 50
    assert max(lag.max for lag in lags) >= 0.03  # render_report's 40 ms
    blocks = _of(events, Block)
    named = [
        b for b in blocks if any(f.function == "render_report" for s in b.stacks for f in s.frames)
    ]
    assert len(named) >= 3, blocks
    assert all(0.03 <= b.duration <= 0.5 for b in named)
    censuses = _of(events, Census)
    assert censuses[-1].total == AS_IT_WAS["tasks"]
    # The latest census that walked every waiting task counts the waiters exactly; on a slow
    # machine the census walks a sample, and its counts are the sample's, scaled.
    full = [c for c in censuses if c.inspected >= c.total]
    census = full[-1] if full else censuses[-1]
    least = WAITERS if full else int(0.7 * WAITERS)
    assert census.by_kind.get("lock", 0) >= least, census
    sites = {(s.function, s.kind): s.count for s in census.sites}
    assert sites.get(("wait_for_lock", "lock"), 0) >= least, census.sites


def _blamed(report: dict[str, Any], program: str) -> list[str]:
    """The functions of the program that blocking findings name. On a loaded machine the loop
    thread also waits for a core while uvloop runs C code; such a block has no frame of the
    program to name and is left out here."""
    return [
        f["location"]["function"]
        for f in report["findings"]
        if f["family"] == "blocking"
        and f["location"] is not None
        and f["location"]["file"].endswith(program)
    ]


@pytest.mark.parametrize("method", route_params("remote-exec", "ptrace", "gdb", "pyinjector"))
def test_attach_to_a_uvloop_program(
    target_python: str, target: PlainTarget, method: str, tmp_path: Path
) -> None:
    recording = tmp_path / "uvloop.lsrec"
    out = loopscope(
        "attach", "--headless", "--duration", "2.5", "--json", "--no-pyspy",
        "--record", str(recording), "--method", method, str(target.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert f"agent injected with {method}" in out.stderr
    # uvloop's run_forever has no Python frame: the loop is still found, at once.
    assert "no asyncio event loop is running" not in out.stderr
    assert "its agent removed itself" in out.stderr
    report = json.loads(out.stdout)
    assert report["target"]["pid"] == target.pid
    assert _blamed(report, "/service.py") == ["render_report"], report
    with Recording.open(recording) as rec:
        events = list(rec.events())
    _assert_agent_saw_uvloop(events, _version(target_python))
    # Detach left uvloop's loop and asyncio as they were, and the program runs on.
    assert target.ask("state") == AS_IT_WAS
    assert target.ask("ping") == {"pong": True}


def test_the_program_ends_as_if_never_attached(target: PlainTarget) -> None:
    assert target.finish() == (0, "")


BURN = """\
import asyncio, time
import uvloop


def crunch_numbers():
    end = time.thread_time() + 0.06  # CPU, not wall time: a loaded machine stretches it
    while time.thread_time() < end:
        pass


async def wait_for_lock(lock):
    async with lock:
        pass


async def main():
    lock = asyncio.Lock()
    await lock.acquire()
    waiters = [asyncio.create_task(wait_for_lock(lock)) for _ in range(WAITERS)]
    while True:
        crunch_numbers()
        await asyncio.sleep(0.05)


uvloop.run(main())
"""


def test_run_a_uvloop_program(target_python: str, tmp_path: Path) -> None:
    """uvloop on the program's PYTHONPATH, as a venv would put it; loopscope passes it on."""
    version = _version(target_python)
    app = tmp_path / "burn.py"
    app.write_text(BURN.replace("WAITERS", str(WAITERS)))
    recording = tmp_path / "run.lsrec"
    out = loopscope(
        "run", "--headless", "--duration", "2.5", "--json", "--record", str(recording),
        "--python", target_python, str(app),
        state=tmp_path / "state", env={"PYTHONPATH": _uvloop(version)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    report = json.loads(out.stdout)
    assert report["target"]["python"].startswith(version + ".")
    assert _blamed(report, "/burn.py") == ["crunch_numbers"], report
    with Recording.open(recording) as rec:
        events = list(rec.events())
    # (the loop starts again for a moment at the end, as asyncio.run shuts it down)
    assert {s.loop_class for s in _of(events, LoopStarted)} == {"uvloop.Loop"}
    assert any(
        any(f.function == "crunch_numbers" for s in b.stacks for f in s.frames)
        for b in _of(events, Block)
    )
    census = _of(events, Census)[-1]
    assert census.by_kind.get("lock", 0) >= WAITERS


IN_A_THREAD = """\
import asyncio, select, sys, threading, time
sys.path.insert(0, UVLOOP)
import uvloop


def render_report():
    end = time.thread_time() + 0.04  # CPU, not wall time: a loaded machine stretches it
    while time.thread_time() < end:
        pass


async def work():
    while True:
        render_report()
        await asyncio.sleep(0.1)


worker = threading.Thread(target=uvloop.run, args=(work(),), name="worker", daemon=True)
worker.start()
print('{"ready": true}', flush=True)
while True:  # in Python code often (a safe point), not blocked in a read
    if select.select([sys.stdin], [], [], 0.05)[0] and sys.stdin.readline().strip() == "exit":
        break
"""


@needs("ptrace")  # the default route: remote-exec on 3.14 falls back to it, the host's is it
@pytest.mark.parametrize("python", ["3.14", "host"], ids=["py3.14", "host"])
def test_attach_finds_a_uvloop_loop_in_another_thread(python: str, tmp_path: Path) -> None:
    """A loop running in C has no run_forever frame to find it by: the agent finds it by what the
    thread's frames hold (asyncio.Runner's loop). On the host's Python (3.10-3.12 read frame
    locals another way) uvloop is loopscope's own dev dependency."""
    if python == "host":
        pytest.importorskip("uvloop", reason="uvloop is a dev dependency of loopscope")
        interpreter, directory = sys.executable, ""
    else:
        directory = _uvloop(python)
        interpreter = find_pythons()[python] or ""
    source = IN_A_THREAD.replace("UVLOOP", repr(directory))
    target = PlainTarget(interpreter, tmp_path, source=source)
    try:
        assert target.read() == {"ready": True}, target.stderr()
        out = loopscope(
            "attach", "--headless", "--duration", "2", "--json", "--no-pyspy", str(target.pid),
            state=tmp_path / "state",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "no asyncio event loop is running" not in out.stderr
        assert "its agent removed itself" in out.stderr
        assert _blamed(json.loads(out.stdout), "/service.py") == ["render_report"], out.stdout
        assert target.finish() == (0, "")
    finally:
        target.close()
