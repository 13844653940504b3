"""The task list, in real target processes: the longest waits with their await chains and
arguments, where tasks were created, and how the listed tasks ended."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from agent_harness import Client
from test_census import line_of

import loopscope.agent
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.agent._tasklist import MAX_BYTES, MAX_TASKS, TaskListCollector
from loopscope.events import Event, TaskList, decode, encode

SRC = str(Path(__file__).resolve().parents[2] / "src")

TARGET = """
import asyncio, importlib, sys, types

package = types.ModuleType("_ls_agent")
package.__path__ = [sys.argv[1]]
sys.modules["_ls_agent"] = package
tasklist = importlib.import_module("_ls_agent._tasklist")
events = importlib.import_module("_ls_agent.events")
Guard = importlib.import_module("_ls_agent._guard").Guard
LoopContext = importlib.import_module("_ls_agent._periodic").LoopContext


class Secret:
    def __repr__(self):
        raise RuntimeError("an application __repr__ must not be called")


async def fetch_user(user_id, secret, tags):
    async with LOCK:  # target: lock
        pass


async def nap():
    await asyncio.sleep(60)  # target: sleep


async def fails(gate):
    await gate.wait()
    raise ValueError("boom")


async def succeeds(gate):
    await gate.wait()
    return 1


async def main():
    global LOCK
    loop = asyncio.get_running_loop()
    loop.set_debug(True)  # asyncio records where each task was created
    LOCK = asyncio.Lock()
    await LOCK.acquire()
    gate = asyncio.Event()
    call = fetch_user(7, Secret(), ["a", "b"])
    waiter = asyncio.create_task(call, name="waiter")  # target: created
    others = [
        asyncio.create_task(nap(), name="napper"),
        asyncio.create_task(fails(gate), name="failer"),
        asyncio.create_task(succeeds(gate), name="succeeder"),
    ]
    for _ in range(1000):
        await asyncio.sleep(0.001)
        if all(t._fut_waiter is not None for t in [waiter, *others]):
            break
    out = []
    context = LoopContext(loop, id(loop), out.append, Guard(out.append))
    collector = tasklist.TaskListCollector(context)
    print(events.encode(collector.take()), flush=True)
    await asyncio.sleep(0.01)
    print(events.encode(collector.take()), flush=True)  # the waits have aged
    gate.set()
    others[0].cancel()
    await asyncio.gather(*others, return_exceptions=True)
    await asyncio.sleep(0)
    print(events.encode(collector.take()), flush=True)
    collector.stop()
    assert not out, out  # no hook failed
    waiter.cancel()
    LOCK.release()
    await asyncio.gather(waiter, return_exceptions=True)

asyncio.run(main())
"""


def test_lists_tasks_with_chains_and_how_they_ended(target_python: str, tmp_path: Path) -> None:
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    agent_dir = os.path.join(SRC, "loopscope", "agent")
    done = subprocess.run(
        [target_python, str(script), agent_dir],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert done.returncode == 0, done.stderr
    first, second, third = (decode(line) for line in done.stdout.strip().splitlines()[-3:])
    assert isinstance(first, TaskList) and isinstance(second, TaskList)
    assert isinstance(third, TaskList)

    assert first.total == second.total == 5  # main and the four tasks
    assert not first.sampled
    tasks = {t.name: t for t in second.tasks}
    waiter = tasks["waiter"]
    assert (waiter.state, waiter.kind, waiter.file, waiter.line) == (
        "waiting",
        "lock",
        str(script),
        line_of("target: lock", str(script)),
    )
    assert waiter.waited > 0  # first seen by the first list
    assert tasks["napper"].kind == "sleep" and tasks["napper"].resource == 0
    assert waiter.resource != 0  # the Lock
    # The chain, innermost first: asyncio's Lock.acquire, ..., the task's own coroutine.
    assert waiter.chain[-1].function == "fetch_user"
    assert waiter.chain[-1].args == ("user_id=7", "secret=<Secret>", "tags=['a', 'b']")
    assert waiter.chain[0].function.endswith("acquire")
    assert waiter.created is not None
    assert (waiter.created.file, waiter.created.line) == (
        str(script),
        line_of("target: created", str(script)),
    )
    # main() is running the list: it is listed too, after the waits.
    assert second.tasks[-1].state == "running"

    ended = {f.name: f for f in third.finished}
    assert ended["failer"].result == "exception"
    assert ended["failer"].error == "ValueError: boom"
    assert ended["succeeder"].result == "ok" and ended["succeeder"].error == ""
    assert ended["napper"].result == "cancelled"
    assert all(f.lived > 0 for f in ended.values())
    assert "waiter" not in ended and {t.name for t in third.tasks} >= {"waiter"}


def test_a_list_of_many_tasks_stays_bounded() -> None:
    async def main() -> tuple[TaskList, list[Event]]:
        lock = asyncio.Lock()
        await lock.acquire()

        async def hold() -> None:
            async with lock:
                pass

        tasks = [asyncio.create_task(hold()) for _ in range(10_000)]
        await asyncio.sleep(0.01)
        out: list[Event] = []
        collector = TaskListCollector(
            LoopContext(asyncio.get_running_loop(), 1, out.append, Guard(out.append))
        )
        try:
            lists = [collector.take() for _ in range(3)]
        finally:
            collector.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return lists[-1], out

    listed, failures = asyncio.run(main())
    assert not failures
    # As many of the longest waits as fit in MAX_BYTES.
    assert 15 <= len(listed.tasks) <= MAX_TASKS
    assert listed.sampled and 8_000 <= listed.total <= 12_000
    # What one list costs the recording (sent every 2 s): see BENCHMARKS.md.
    assert len(encode(listed).encode()) <= MAX_BYTES * 1.1


def test_the_agent_sends_task_lists(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")

    async def main() -> Any:
        loopscope.agent.install(socket_path=path)
        client = Client(path)
        sleeper = asyncio.create_task(asyncio.sleep(60), name="sleeper")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, client.wait_for, lambda e: isinstance(e, TaskList)
            )
        finally:
            loopscope.agent.uninstall()
            client.close()
            sleeper.cancel()

    event = asyncio.run(main())
    assert isinstance(event, TaskList)
    assert "sleeper" in {t.name for t in event.tasks}
