"""Race evidence in real target processes: the source scan, tasks caught inside a window
together, and lost updates from loopscope.watch, on every interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agent_harness import LAUNCHER, SRC, Client

from loopscope.events import LostUpdate, RaceWindow, RaceWindows

TARGET = """
import asyncio, sys
import loopscope


class Account:
    def __init__(self):
        self.balance = 10**9
        self.lock = asyncio.Lock()

    async def withdraw(self, amount):
        balance = self.balance  # read
        await asyncio.sleep(0.01)  # await
        self.balance = balance - amount  # write

    async def careful(self, amount):
        async with self.lock:
            balance = self.balance
            await asyncio.sleep(0.01)
            self.balance = balance - amount


class Counter:
    def __init__(self):
        self.hits = 0


async def bump(counter):
    seen = getattr(counter, "hits")  # watched read
    await asyncio.sleep(0.01)
    counter.hits = seen + 1  # watched write


async def forever(step):
    while True:
        await step()


async def main():
    shared, careful = Account(), Account()
    counter = loopscope.watch(Counter(), "hits")
    tasks = []
    for i in range(3):
        tasks.append(asyncio.create_task(forever(lambda: shared.withdraw(1)), name=f"shared-{i}"))
        solo = Account()
        tasks.append(asyncio.create_task(forever(lambda s=solo: s.withdraw(1)), name=f"solo-{i}"))
        tasks.append(asyncio.create_task(forever(lambda: careful.careful(1)), name=f"careful-{i}"))
    # Named here: 3.13.0 names tasks "None" that gather() makes through a task factory.
    bumps = [asyncio.create_task(bump(counter), name=f"bump-{i}") for i in range(2)]
    await asyncio.gather(*bumps)
    await asyncio.sleep(float(sys.argv[1]))


asyncio.run(main())
"""


def line_of(script: Path, marker: str) -> int:
    lines = [
        i for i, text in enumerate(script.read_text().splitlines(), 1) if f"# {marker}" in text
    ]
    assert len(lines) == 1, marker
    return lines[0]


def run_target(python: str, tmp_path: Path, seconds: float) -> tuple[Path, list[object]]:
    script = tmp_path / "bank.py"
    script.write_text(TARGET)
    sock = str(tmp_path / "agent.sock")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
    env.update(LOOPSCOPE_SOCKET=sock, PYTHONPATH=SRC)
    proc = subprocess.Popen(
        [python, LAUNCHER, str(script), str(seconds)], env=env, stderr=subprocess.PIPE
    )
    try:
        client = Client(sock)
        events: list[object] = list(client.read_until_eof(timeout=seconds + 20))
        client.close()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    return script, events


def test_tasks_inside_one_window_on_one_object(target_python: str, tmp_path: Path) -> None:
    started = time.monotonic()
    script, events = run_target(target_python, tmp_path, 3.5)
    read, wait, write = (line_of(script, m) for m in ("read", "await", "write"))

    scans = [e for e in events if isinstance(e, RaceWindows)]
    spans = [w for e in scans for w in e.windows]
    withdraw = [w for w in spans if w.function == "Account.withdraw"]
    assert [(w.target, w.read_line, w.await_lines, w.write_line) for w in withdraw] == [
        ("self.balance", read, (wait,), write)
    ]
    careful = [w for w in spans if w.function == "Account.careful"]
    assert careful and all(w.guarded for w in careful)
    assert sum(e.files for e in scans) == 1  # the script alone: not asyncio, not loopscope

    seen = [e for e in events if isinstance(e, RaceWindow)]
    assert seen, f"no race_window in {time.monotonic() - started:.1f}s"
    for event in seen:
        assert event.window.function == "Account.withdraw", event
        assert event.count >= 2 and set(event.lines) == {wait}
        # Each solo account has one task: never counted with the shared account's.
        assert all(name.startswith("shared-") for name in event.tasks), event.tasks

    (lost,) = [e for e in events if isinstance(e, LostUpdate)]
    assert lost.target == "Counter.hits"
    assert (lost.read.line, lost.write.line, lost.other_write.line) == (
        line_of(script, "watched read"),
        line_of(script, "watched write"),
        line_of(script, "watched write"),
    )
    assert lost.write.file == str(script)
    assert {lost.task, lost.other_task} == {"bump-0", "bump-1"}
    assert (lost.version_read, lost.version_now) == (0, 1)


BUFFERED = """
import asyncio, sys
import loopscope
import loopscope.agent


class Box:
    value = 0


async def bump(box):
    seen = box.value
    await asyncio.sleep(0.01)
    box.value = seen + 1


async def main():
    box = loopscope.watch(Box(), "value", label="box")
    await asyncio.gather(bump(box), bump(box))
    loopscope.agent.install(socket_path=sys.argv[1])
    print("installed", flush=True)
    sys.stdin.readline()
    loopscope.agent.uninstall()


asyncio.run(main())
"""


def test_lost_updates_before_the_agent_wait_for_it(tmp_path: Path) -> None:
    script = tmp_path / "box.py"
    script.write_text(BUFFERED)
    sock = str(tmp_path / "agent.sock")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
    env["PYTHONPATH"] = SRC
    proc = subprocess.Popen(
        [sys.executable, str(script), sock],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "installed"
        client = Client(sock)
        event = client.wait_for(lambda e: isinstance(e, LostUpdate), what="lost_update")
        assert isinstance(event, LostUpdate) and event.target == "box.value"
        proc.stdin.write("\n")
        proc.stdin.flush()
        client.read_until_eof()
        client.close()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_a_late_client_still_gets_the_source_scan(tmp_path: Path) -> None:
    """The scan is sent once: the server keeps it for clients that connect after it aged out of
    the backlog, as it keeps the loops' loop_started."""
    from agent_harness import wait_until

    from loopscope.agent._guard import Guard
    from loopscope.agent._server import Outbox, Server
    from loopscope.events import Hello, Notice, RaceSpan

    outbox = Outbox()
    hello = Hello(
        t=0.0,
        protocol=1,
        agent_version="0",
        pid=1,
        python="3",
        implementation="cpython",
        executable="",
        argv=(),
        cwd="",
        stdlib_paths=(),
        site_paths=(),
        monotonic=0.0,
    )
    path = str(tmp_path / "s.sock")
    server = Server(
        path,
        outbox,
        Guard(outbox.emit),
        lambda: hello,
        lambda: None,
        private_dir=False,
        backlog_seconds=0.0,
    )
    server.start()
    try:
        span = RaceSpan("/app/a.py", "f", 1, "self.x", 2, (3,), 4)
        outbox.emit(RaceWindows(t=1.0, windows=(span,), files=1, functions=1, cost=0.0))
        wait_until(lambda: server._scans, what="the scan taken")
        outbox.emit(Notice(t=2.0, level="info", message="later"))  # ages the scan out
        wait_until(lambda: server._aged_scans, what="the scan aged out")
        client = Client(path)
        event = client.wait_for(lambda e: isinstance(e, RaceWindows), timeout=5)
        assert isinstance(event, RaceWindows) and event.windows == (span,)
        client.close()
    finally:
        server.stop()
