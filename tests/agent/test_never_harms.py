"""The agent never harms the program it observes, on every Python: a hook of its that fails is
switched off and reported once while the program carries on; its threads never hold up the
program's exit; and once detached, everything the program had set is still there — the very
same objects."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_harness import LAUNCHER, SRC, Client, wait_until

from capabilities import needs
from loopscope.attach import attach
from loopscope.events import Block, Lag, LoopStarted, Notice

pytestmark = pytest.mark.spread  # no state shared between its tests

# Sets its own exception handler, task factory, signal handlers (the loop's and a plain one),
# excepthooks and a gc callback, then takes commands on stdin: "snapshot" prints what each of
# those is (object ids, so that a replacement with an equal object shows), "sleep" blocks the
# loop for 50 ms, "exit" returns from main.
PROGRAM = r"""
import asyncio, gc, json, os, select, signal, sys, threading, time, warnings

if os.environ.get("BREAK_LAG"):
    # a bug in the agent's lag collector: its bucket function raises
    from loopscope.agent import _lag
    def broken(seconds):
        raise ZeroDivisionError("broken on purpose")
    _lag.lag_bucket = broken


def my_factory(loop, coro, **kwargs):
    return asyncio.Task(coro, loop=loop, **kwargs)


def my_handler(loop, context):
    loop.default_exception_handler(context)


def on_usr1():
    pass


def on_usr2(signum, frame):
    pass


def my_gc_callback(phase, info):
    pass


def say(**message):
    print(json.dumps(message), flush=True)


def snapshot(loop):
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    selector = loop._selector
    return {
        "factory": id(loop.get_task_factory()),
        "handler": id(loop.get_exception_handler()),
        "loop_signal": id(loop._signal_handlers.get(signal.SIGUSR1)),
        "usr1": id(signal.getsignal(signal.SIGUSR1)),
        "usr2": id(signal.getsignal(signal.SIGUSR2)),
        "sigint": id(signal.getsignal(signal.SIGINT)),
        "wakeup_fd": wakeup,
        "selector": id(selector),
        "selector_select_patched": "select" in vars(selector),
        "selector_class_select": id(type(selector).__dict__.get("select")),
        "set_running_loop": [id(asyncio.events._set_running_loop), id(asyncio._set_running_loop)],
        # (the public getter warns from 3.14: the policy system is deprecated)
        "policy": id(
            getattr(asyncio.events, "_get_event_loop_policy", asyncio.get_event_loop_policy)()
        ),
        "excepthook": id(sys.excepthook),
        "threading_excepthook": id(threading.excepthook),
        "unraisablehook": id(sys.unraisablehook),
        "profile": repr(sys.getprofile()),
        "trace": repr(sys.gettrace()),
        "switchinterval": sys.getswitchinterval(),
        # The program's own (the agent's, there while it runs, is not the program's).
        "gc_callbacks": [
            id(c) for c in gc.callbacks if "loopscope" not in (getattr(c, "__module__", "") or "")
        ],
        "agent_gc_callbacks": sum(
            "loopscope" in (getattr(c, "__module__", "") or "") for c in gc.callbacks
        ),
        "debug": loop.get_debug(),
        "slow_callback_duration": loop.slow_callback_duration,
        "threads": sorted(t.name for t in threading.enumerate()),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    }


def fork_while_the_agent_holds_a_lock():
    # One of the agent's threads holds the watchdog's lock at the fork, as the watchdog does
    # whenever it looks at the loops. The fork comes from the loop's thread while the loop runs,
    # as a process pool's does, so asyncio's own at-fork handler resets the running loop in the
    # child. The child has none of the agent's threads: nothing may wait for that lock there.
    agent = getattr(asyncio.events._set_running_loop, "__loopscope_agent__")
    held, release = threading.Event(), threading.Event()

    def hold():
        with agent._watchdog._lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads running
        pid = os.fork()
    if pid == 0:
        os._exit(0 if asyncio.events._get_running_loop() is None else 3)
    release.set()
    holder.join()
    pidfd = os.pidfd_open(pid)
    try:
        exited = bool(select.select([pidfd], [], [], 10)[0])
    finally:
        os.close(pidfd)
    if not exited:
        os.kill(pid, signal.SIGKILL)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return code if exited else "hung"


def install():
    import loopscope.agent
    loopscope.agent.install(socket_path=os.environ["INSTALL_AT"])


async def main():
    loop = asyncio.get_running_loop()
    loop.set_task_factory(my_factory)
    loop.set_exception_handler(my_handler)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    sys.excepthook = lambda *args: sys.__excepthook__(*args)
    threading.excepthook = lambda args: None
    gc.callbacks.append(my_gc_callback)
    if os.environ.get("BREAK_LAG"):
        install()
    done = loop.create_future()
    buffer = b""

    def on_stdin():
        nonlocal buffer
        data = os.read(0, 4096)
        if not data:
            loop.remove_reader(0)
            done.set_result(None)
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            cmd = line.decode().strip()
            if cmd == "snapshot":
                say(**snapshot(loop))
            elif cmd == "install":
                install()
                say(installed=True)
            elif cmd == "sleep":
                time.sleep(0.05)
                say(slept=True)
            elif cmd == "fork":
                say(child=fork_while_the_agent_holds_a_lock())
            elif cmd == "ping":
                async def pong():
                    await asyncio.sleep(0.01)
                    say(pong=True)
                loop.create_task(pong())
            elif cmd == "exit":
                loop.remove_reader(0)
                done.set_result(None)

    loop.add_reader(0, on_stdin)
    say(ready=True)
    await done


asyncio.run(main())
say(returned=True)
"""

MODES = ("launcher", "in-code", "injected")
# Injecting needs ptrace rights on this machine.
MODE_PARAMS = [pytest.param(m, marks=needs("ptrace")) if m == "injected" else m for m in MODES]


class Program:
    """PROGRAM, with the agent started as ``mode`` says."""

    def __init__(self, python: str, directory: Path, mode: str, **env: str) -> None:
        script = directory / "program.py"
        script.write_text(PROGRAM)
        self.socket_path = str(directory / "agent.sock")
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
        environ.update(env)
        cmd = [python, str(script)]
        if mode == "launcher":
            environ["LOOPSCOPE_SOCKET"] = self.socket_path
            cmd = [python, LAUNCHER, str(script)]
        elif mode == "in-code":
            environ["PYTHONPATH"] = SRC
            environ["INSTALL_AT"] = self.socket_path
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            cwd=directory,
        )
        self._buffer = b""
        assert self.read() == {"ready": True}
        if mode == "injected":
            self.socket_path = attach(self.proc.pid, timeout=30).socket_path

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def ask(self, command: str) -> dict[str, Any]:
        self.send(command)
        return self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            data = self._read_some()
            if not data:
                raise AssertionError(f"the program exited: {self.stderr()}")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def _read_some(self) -> bytes:
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], 30)
        assert readable, "the program said nothing for 30 s"
        return os.read(fd, 65536)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    started: list[Program] = []
    yield started
    for program in started:
        program.close()


@pytest.mark.parametrize("mode", MODE_PARAMS)
def test_detach_leaves_the_programs_own_objects(
    target_python: str, tmp_path: Path, mode: str, programs: list[Program]
) -> None:
    before = None
    if mode == "injected":  # the agent comes after the program set everything up
        program = Program(target_python, tmp_path, "none")
        before = program.ask("snapshot")
        program.socket_path = attach(program.proc.pid, timeout=30).socket_path
    elif mode == "in-code":  # the same, installed by the program's own code
        program = Program(target_python, tmp_path, mode)
        before = program.ask("snapshot")
        assert program.ask("install") == {"installed": True}
    else:  # the agent comes first, then the program sets everything up
        program = Program(target_python, tmp_path, mode)
    programs.append(program)
    client = Client(program.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        program.ask("sleep")
        client.wait_for(lambda e: isinstance(e, Block))
        during = program.ask("snapshot")
        assert during["selector_select_patched"]  # the agent is really in there
        client.send({"op": "detach"})
        client.read_until_eof()
    finally:
        client.close()
    after = wait_until(
        lambda: (s := program.ask("snapshot"))["threads"] == ["MainThread"] and s,
        what="the agent's threads to end",
    )
    # Everything the program set is the same object as before the agent came (injected,
    # in-code) or, when the agent was there first (launcher), as the program set it.
    for key in ("factory", "handler", "loop_signal", "usr1", "usr2", "sigint", "wakeup_fd",
                "selector", "selector_class_select", "policy", "excepthook",
                "threading_excepthook", "unraisablehook", "profile", "trace", "switchinterval",
                "gc_callbacks", "debug", "slow_callback_duration"):  # fmt: skip
        assert after[key] == (during if before is None else before)[key], key
    assert not after["selector_select_patched"]
    assert during["agent_gc_callbacks"] == 1 and after["agent_gc_callbacks"] == 0
    assert not os.path.exists(program.socket_path)
    if before is not None:
        assert after["set_running_loop"] == before["set_running_loop"]
        assert after["fds"] == before["fds"]
    assert program.ask("ping") == {"pong": True}
    program.send("exit")
    assert program.read() == {"returned": True}
    assert program.proc.wait(timeout=15) == 0
    assert program.stderr() == ""


@pytest.mark.parametrize("mode", MODE_PARAMS)
def test_the_program_exits_promptly_with_the_agent_installed(
    target_python: str, tmp_path: Path, mode: str, programs: list[Program]
) -> None:
    program = Program(target_python, tmp_path, mode)
    programs.append(program)
    if mode == "in-code":
        assert program.ask("install") == {"installed": True}
    # A client that connected and then stopped reading: the worst case for the server thread.
    client = Client(program.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, Lag))
        program.ask("sleep")
        program.send("exit")
        started = time.monotonic()
        code = program.proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        client.close()
    assert program.read() == {"returned": True}
    print(f"{mode}: exited {took * 1000:.0f} ms after main returned")
    assert code == 0
    assert took < 3.0  # the agent sends what it has queued for at most 1 s
    assert program.stderr() == ""  # nothing printed by a thread dying at exit
    assert not os.path.exists(program.socket_path)


@pytest.mark.parametrize("mode", MODE_PARAMS)
def test_a_child_forked_while_an_agent_thread_holds_a_lock_runs_on(
    target_python: str, tmp_path: Path, mode: str, programs: list[Program]
) -> None:
    """A forked child leaves the parent's agent alone, even where asyncio's at-fork handler
    (3.12+) runs before the agent's: a process pool's worker once hung there for good, waiting
    for a lock of the watchdog's, and its program with it."""
    program = Program(target_python, tmp_path, mode)
    programs.append(program)
    if mode == "in-code":
        assert program.ask("install") == {"installed": True}
    client = Client(program.socket_path)
    try:
        client.wait_for(lambda e: isinstance(e, LoopStarted))
        assert program.ask("fork") == {"child": 0}
        # The parent's agent goes on observing.
        program.ask("sleep")
        client.wait_for(lambda e: isinstance(e, Block))
    finally:
        client.close()
    program.send("exit")
    assert program.read() == {"returned": True}
    assert program.proc.wait(timeout=15) == 0
    assert program.stderr() == ""


def test_a_failing_hook_is_switched_off_reported_once_and_the_program_carries_on(
    target_python: str, tmp_path: Path, programs: list[Program]
) -> None:
    program = Program(target_python, tmp_path, "in-code", BREAK_LAG="1")
    programs.append(program)
    client = Client(program.socket_path)
    try:
        notice = client.wait_for(lambda e: isinstance(e, Notice))
        assert isinstance(notice, Notice) and notice.level == "error"
        assert "disabled its lag" in notice.message and "broken on purpose" in notice.message
        for _ in range(3):  # the program runs on, and the other collectors with it
            assert program.ask("ping") == {"pong": True}
            program.ask("sleep")
            client.wait_for(lambda e: isinstance(e, Block))
        client.send({"op": "detach"})
        client.read_until_eof()
    finally:
        client.close()
    assert [e.kind for e in client.events].count("notice") == 1
    assert not [e for e in client.events if isinstance(e, Lag)]
    program.send("exit")
    assert program.read() == {"returned": True}
    assert program.proc.wait(timeout=15) == 0
    assert program.stderr() == ""  # the error never reached the program
